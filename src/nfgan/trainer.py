"""Training NFGAN: Algorithm 1 with the gradient routing of Sec. 4.6, a run folder, and ``nfgan train``.

One step (``NFGANTrainer.train_step``), all losses computed with the current parameters, then all three
networks updated (Algorithm 1's simultaneous update):

    z = Enc(x);  x~ = Dec(z)
    L_feat  = eq. (2)  perceptual net:  phi(x~) vs phi(y)      (phi(y) cached: the net is frozen)
    L_id    = eq. (6)  identity net:    psi(x~) vs psi(x)      (psi(x) cached)
    L_pixel = eq. (7)  |x~ - y|
    L_sym   = eq. (3)  Laplacian symmetry of x~
    L_GAN-Dec = eq. (5) on Dis(x~);  L_GAN-Dis = eq. (4) on Dis(g), Dis(x~)

    Enc <- grad_Enc (L_feat + l1 L_id + l2 L_pixel)                          "encoder loss" L_E
    Dec <- grad_Dec (L_E + eta L_GAN-Dec + l3 L_sym)
    Dis <- grad_Dis  L_GAN-Dis

Routing, exactly and with one forward pass: ``L_E.backward(inputs=Enc+Dec params)`` gives Enc its whole
gradient and Dec the L_E part; ``(eta L_GAN-Dec + l3 L_sym).backward(inputs=Dec params)`` adds the rest to
Dec only - autograd never propagates it into z, so the adversarial and symmetry signals cannot reach Enc; and
``L_GAN-Dis.backward(inputs=Dis params)`` touches the discriminator alone (the generator's adversarial loss
never writes Dis gradients). The second backward re-walks the decoder (the price of exactness: a detached
second decoder pass would cost a forward *and* a backward). ``tests/test_routing.py`` proves the three claims.

Loss weights (config ``loss``): ``feat`` (1, the paper has no weight), ``id`` = lambda_1 = 3e-3,
``pixel`` = lambda_2 = 1e-3, ``sym`` = lambda_3 = 0.3, ``gan`` = eta = 0.1 (Sec. 5.2).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from nfgan import losses as L
from nfgan.atomic import save_image, write_text
from nfgan.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint, save_checkpoint
from nfgan.dataset import PreparedDataset
from nfgan.device import DEVICE_HELP, resolve_device
from nfgan.networks import build_networks
from nfgan.pairs import build_pairs, load_splits, occluded_left

DEFAULT_CONFIG: dict = {
    "name": "nfgan",
    "seed": 0,
    "data": {
        "root": "out/london64",              # a folder written by `nfgan prepare`
        "splits": "configs/splits/london.json",
        "input_poses": None,                  # null = all prepared poses
        "input_expressions": None,            # null = all expressions
        "target_pose": "frontal",
        "target_expression": "neutral",
        "flip_left_poses": True,              # Sec. 4.2: mirror left-turned inputs (unless `prepare` did)
                                              # so the occluded side is on the image's right
        "frontalize_inputs": False,           # feed turned inputs to the generator landmark-frontalised
                                              # (nfgan.frontalize; L_id still compares with the real input)
        "turned_targets": "frontal",          # or "same_pose": a turned input's target is the subject's
                                              # neutral face in the same pose, frontalised (nfgan.pairs;
                                              # needs frontalize_inputs)
        "mirror_pairs": False,                # also train on the mirror image of every frontal (input,
                                              # target) pair (TrainingPairs.with_mirrors)
    },
    "model": {"latent_dim": 256, "image_size": 64, "lrelu_alpha": 0.3, "init_std": 0.02},
    "feature_nets": {                         # specs for nfgan.feature_nets.build_feature_net
        "perceptual": {"type": "dlib_perceptual"},   # L_feat (paper: VGG-Face conv5)
        "identity": {"type": "dlib_identity"},       # L_id (paper: Light CNN, last two layers)
    },
    "loss": {"feat": 1.0, "id": 3.0e-3, "pixel": 1.0e-3, "sym": 0.3, "gan": 0.1},
    "optim": {
        "enc": {"lr": 2.0e-4, "betas": [0.5, 0.999], "weight_decay": 0.0},
        "dec": {"lr": 2.0e-4, "betas": [0.5, 0.999], "weight_decay": 0.0},
        "dis": {"lr": 2.0e-4, "betas": [0.5, 0.999], "weight_decay": 0.0},
    },
    "train": {
        "steps": 5000,
        "batch_size": 64,
        "device": "cpu",
        "bf16": False,            # bf16 autocast (CPU with AVX512-BF16 / AMX, or CUDA)
        "channels_last": True,
        "threads": 2,             # torch CPU threads
        "feature_batch": 64,      # chunk size when filling the frozen-feature caches
        "share_trunk": True,      # one pass on x~ when both aux nets are stages of one network (SharedTrunk)
    },
    "log": {"every": 1, "sample_every": 250, "checkpoint_every": 250, "keep_checkpoints": 3, "sample_count": 8},
}

LOSS_NAMES = ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis")


class ConfigError(ValueError):
    pass


class NonFiniteLossError(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------- config
def _merge(base: dict, override: dict, source: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        where = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(f"{source}: unknown key {where!r} (known here: {sorted(base)})")
        if where == "feature_nets":  # each net's spec is replaced as a whole (specs differ per type)
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: 'feature_nets' must be a mapping, got {v!r}")
            out[k] = {**base[k], **copy.deepcopy(v)}
            unknown = sorted(set(v) - {"perceptual", "identity"})
            if unknown:
                raise ConfigError(f"{source}: unknown key(s) feature_nets.{unknown} (known: identity, perceptual)")
        elif isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: {where!r} must be a mapping, got {v!r}")
            out[k] = _merge(base[k], v, source, where + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Defaults <- YAML file <- overrides (same nesting). Unknown keys are errors naming the file and key."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        cfg = _merge(cfg, data, str(path))
    if overrides:
        cfg = _merge(cfg, overrides, "overrides")
    for k, w in cfg["loss"].items():
        if not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"loss.{k} must be a non-negative number, got {w!r}")
    return cfg


def resolve_feature_net(spec: dict | None) -> nn.Module | None:
    """A frozen feature net from its config spec. ``None`` disables the loss. A spec with ``factory:
    "module:callable"`` calls that (with the other keys as arguments); otherwise
    ``nfgan.feature_nets.build_feature_net(spec)``."""
    if spec is None:
        return None
    spec = dict(spec)
    if "factory" in spec:
        module, _, attr = spec.pop("factory").partition(":")
        net = getattr(importlib.import_module(module), attr)(**spec)
    else:
        from nfgan import feature_nets

        if not hasattr(feature_nets, "build_feature_net"):
            raise ConfigError("nfgan.feature_nets.build_feature_net is not available in this install; "
                              "give the feature net as {factory: 'module:callable'} in the config")
        net = feature_nets.build_feature_net(spec)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


# ----------------------------------------------------------------------------------------------- helpers
def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``B x S x S`` -> float ``B x 1 x S x S`` in [-1, 1]."""
    return images_u8.unsqueeze(1).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``B x 1 x S x S`` in [-1, 1] -> uint8 ``B x S x S``."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)[:, 0].cpu().numpy()


class FeatureCache:
    """Frozen-net features of fixed dataset rows, computed once (the nets never change during training)."""

    def __init__(self, net: nn.Module, images: torch.Tensor, rows: np.ndarray, device: torch.device,
                 autocast, chunk: int = 64, channels_last: bool = False):
        rows = np.unique(rows)
        self.position = torch.full((len(images),), -1, dtype=torch.long)
        self.position[torch.from_numpy(rows)] = torch.arange(len(rows))
        parts: list[list[torch.Tensor]] = []
        with torch.no_grad(), autocast():
            for i in range(0, len(rows), chunk):
                x = to_unit(images[torch.from_numpy(rows[i:i + chunk])]).to(device)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                parts.append([m.float() for m in net(x)])
        self.maps = [torch.cat([p[j] for p in parts]) for j in range(len(parts[0]))] if parts else []

    def __call__(self, rows: np.ndarray) -> list[torch.Tensor]:
        pos = self.position[torch.from_numpy(np.asarray(rows))]
        if (pos < 0).any():
            raise KeyError("feature cache asked for rows it does not hold")
        pos = pos.to(self.maps[0].device)
        return [m[pos] for m in self.maps]


class SharedTrunk:
    """Runs the two auxiliary nets as ONE forward pass on x~ when they are stages of the same network.

    The default pair (``dlib_perceptual`` level-2 maps for L_feat, ``dlib_identity`` last two layers for
    L_id) are prefixes of the same dlib ResNet with the same weights: the identity pass computes the
    perceptual maps on its way, so running both separately would do the costly early layers (at 150 px)
    twice, forward and backward. ``SharedTrunk.maybe(perceptual, identity)`` returns a fused runner when the
    weights really are identical, else ``None``; its outputs equal the two nets' outputs exactly.
    """

    def __init__(self, perceptual, identity):
        self.perceptual, self.identity = perceptual, identity

    @staticmethod
    def maybe(perceptual, identity) -> "SharedTrunk | None":
        if perceptual is None or identity is None:
            return None
        if (getattr(perceptual, "name", "") != "dlib_perceptual" or getattr(identity, "name", "") != "dlib_identity"
                or not hasattr(identity, "resnet") or not hasattr(perceptual, "resnet")):
            return None
        full = identity.resnet.state_dict()
        part = perceptual.resnet.state_dict()
        if any(k not in full or full[k].shape != v.shape or not torch.equal(full[k], v) for k, v in part.items()):
            return None
        return SharedTrunk(perceptual, identity)

    def __call__(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        from nfgan.feature_nets import check_faces

        check_faces(x, "shared dlib trunk")
        f = self.identity.trunk_features(x)
        return [f[s] for s in self.perceptual.stages], [f["pooled"], f["descriptor"]]


def plain_losses(nets: dict, perceptual, identity, x, y, g, weights: dict) -> dict[str, torch.Tensor]:
    """The step's losses written plainly (fp32, eager, features recomputed): the reference the fast path
    is checked against (tests) and timed against (benchmarks/train_throughput.py)."""
    xt = nets["dec"](nets["enc"](x))
    out = {"feat": L.feature_loss(perceptual(xt), perceptual(y)) if perceptual is not None else xt.new_zeros(()),
           "id": L.identity_loss(identity(xt), identity(x)) if identity is not None else xt.new_zeros(()),
           "pixel": L.pixel_loss(xt, y), "sym": L.symmetry_loss(xt)}
    fake_logits = nets["dis"](xt)
    out["gan_dec"] = L.generator_adversarial_loss(fake_logits)
    out["gan_dis"] = L.discriminator_loss(nets["dis"](g), fake_logits)
    return out


def routed_backward(nets: dict, losses: dict[str, torch.Tensor], weights: dict) -> None:
    """Sec. 4.6 routing: accumulate each network's gradient from its own objective only (see module doc)."""
    enc_p = [p for p in nets["enc"].parameters() if p.requires_grad]
    dec_p = [p for p in nets["dec"].parameters() if p.requires_grad]
    dis_p = [p for p in nets["dis"].parameters() if p.requires_grad]
    enc_loss = weights["feat"] * losses["feat"] + weights["id"] * losses["id"] + weights["pixel"] * losses["pixel"]
    dec_extra = weights["gan"] * losses["gan_dec"] + weights["sym"] * losses["sym"]
    enc_loss.backward(inputs=enc_p + dec_p, retain_graph=True)
    if dec_extra.requires_grad:
        dec_extra.backward(inputs=dec_p, retain_graph=True)
    losses["gan_dis"].backward(inputs=dis_p)


def _grid(rows: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Columns input | output | target for each example: ``rows`` is a list of uint8 B x S x S stacks."""
    b, s = rows[0].shape[0], rows[0].shape[1]
    out = np.full((b * (s + pad) + pad, len(rows) * (s + pad) + pad), 255, dtype=np.uint8)
    for c, stack in enumerate(rows):
        for r in range(b):
            out[pad + r * (s + pad): pad + r * (s + pad) + s, pad + c * (s + pad): pad + c * (s + pad) + s] = stack[r]
    return out


# ----------------------------------------------------------------------------------------------- trainer
class NFGANTrainer:
    """Holds the networks, optimizers, data and caches of one run; ``train_step`` is Algorithm 1's loop body."""

    def __init__(self, config: dict, run_dir: str | Path | None = None, device: str | None = None,
                 base_dir: str | Path = "."):
        self.cfg = config
        tcfg = config["train"]
        self.device = resolve_device(device or tcfg["device"])
        if self.device.type == "cpu" and tcfg.get("threads"):
            torch.set_num_threads(int(tcfg["threads"]))
        self.run_dir = Path(run_dir) if run_dir else None
        self.base_dir = Path(base_dir)
        self.weights = dict(config["loss"])
        self.bf16 = bool(tcfg["bf16"])
        self.channels_last = bool(tcfg["channels_last"])
        torch.manual_seed(int(config["seed"]))
        self.sampler = torch.Generator().manual_seed(int(config["seed"]))

        m = config["model"]
        self.nets = build_networks(m["latent_dim"], m["image_size"], m["lrelu_alpha"], m["init_std"])
        for net in self.nets.values():
            net.to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
        self.optimizers = {
            name: torch.optim.Adam(self.nets[name].parameters(), lr=float(o["lr"]), betas=tuple(o["betas"]),
                                   weight_decay=float(o.get("weight_decay", 0.0)))
            for name, o in config["optim"].items()}
        self.step = 0
        self._load_data()
        fn = config["feature_nets"]
        self.perceptual = resolve_feature_net(fn.get("perceptual")) if self.weights["feat"] > 0 else None
        self.identity = resolve_feature_net(fn.get("identity")) if self.weights["id"] > 0 else None
        for net in (self.perceptual, self.identity):
            if net is not None:
                net.to(self.device)
                if self.channels_last:
                    net.to(memory_format=torch.channels_last)
        self.shared_trunk = SharedTrunk.maybe(self.perceptual, self.identity) if tcfg["share_trunk"] else None
        chunk = int(tcfg["feature_batch"])
        all_targets = np.concatenate(self.train.target_choices) if len(self.train) else np.zeros(0, np.int64)
        self.target_cache = (FeatureCache(self.perceptual, self.images, all_targets, self.device, self.autocast,
                                          chunk, self.channels_last) if self.perceptual is not None else None)
        self.input_cache = (FeatureCache(self.identity, self.images, self.train.inputs, self.device, self.autocast,
                                         chunk, self.channels_last) if self.identity is not None else None)

    # -- data
    def _path(self, p: str) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base_dir / p

    def _load_data(self) -> None:
        d = self.cfg["data"]
        self.dataset = PreparedDataset(self._path(d["root"]))
        size = self.cfg["model"]["image_size"]
        if self.dataset.size != size:
            raise ConfigError(f"{self.dataset.root}: faces are {self.dataset.size}px but model.image_size is {size}")
        images = torch.from_numpy(np.array(self.dataset.images))  # in memory, writable
        n = len(images)
        # rows n..2n-1 are the mirror images of rows 0..n-1 (used for left-turned inputs, see flip_left_poses)
        mirrors = d["flip_left_poses"] or d.get("mirror_pairs")
        self.images = torch.cat([images, images.flip(-1)]) if mirrors else images
        self.splits = load_splits(self._path(d["splits"]))
        kw = dict(input_poses=d["input_poses"], input_expressions=d["input_expressions"],
                  target_pose=d["target_pose"], target_expression=d["target_expression"],
                  turned_targets=d.get("turned_targets", "frontal"))
        if d.get("mirror_pairs") and d["target_pose"] != "frontal":
            raise ConfigError(f"data.mirror_pairs mirrors frontal inputs together with their targets, so it needs "
                              f"data.target_pose: frontal (got {d['target_pose']!r}: a mirrored target would show "
                              f"the other side)")
        if kw["turned_targets"] == "same_pose" and not d.get("frontalize_inputs"):
            raise ConfigError("data.turned_targets: same_pose needs data.frontalize_inputs: true (the model's "
                              "outputs must be frontal faces)")
        self.train = build_pairs(self.dataset, self.splits["train"], **kw)
        self.val = build_pairs(self.dataset, self.splits["val"], **kw)
        if len(self.train) == 0:
            raise ConfigError(f"{self.dataset.root}: no training pairs (train subjects with a "
                              f"{d['target_pose']} {d['target_expression']} face and inputs)")
        self._mirror_rows(n)
        missing = sorted(set(self.train.missing_targets) | set(self.val.missing_targets))
        self.missing_targets = missing
        if missing:
            warnings.warn(f"{len(missing)} subject(s) have no {d['target_pose']} {d['target_expression']} face "
                          f"(or no same-pose target, listed with the pose) and are not trained on: "
                          f"{missing[:10]}{' ...' if len(missing) > 10 else ''}")
        # the generator reads row gen_rows[r] for input row r (r itself unless frontalize_inputs)
        self.gen_rows = np.arange(len(self.images), dtype=np.int64)
        if d.get("frontalize_inputs"):
            self._add_frontalized_rows(n)
        if self.device.type != "cpu":
            self.images = self.images.to(self.device)
        # fixed sample batch: spread over the validation inputs (training inputs when there is no val split)
        src = self.val if len(self.val) else self.train
        k = min(int(self.cfg["log"]["sample_count"]), len(src))
        pick = np.linspace(0, len(src) - 1, k).round().astype(np.int64)
        self.sample_rows = (src.inputs[pick], src.first_targets()[pick])

    def _mirror_rows(self, n: int) -> None:
        """Apply the mirror rules to the pairs (mirror of row r is row r + n): ``flip_left_poses`` and
        ``mirror_pairs``."""
        d = self.cfg["data"]
        poses = self.dataset.column("pose")
        if d["flip_left_poses"]:
            # an input shows its occluded side on the left when it is turned left and `nfgan prepare` did not
            # mirror it already (column `flipped`); such inputs use their mirror row. Frontal targets are
            # never mirrored: the output is the person's real frontal face (data.mirror_pairs adds mirrored
            # frontal pairs, input and target together); a same-pose target is mirrored with its input.
            swap = occluded_left(poses, self.dataset.column("flipped"))
            swap_target = swap & (np.asarray(poses) != d["target_pose"])
            for pairs in (self.train, self.val):
                pairs.inputs += np.where(swap[pairs.inputs], n, 0)
                pairs.target_choices = [c + np.where(swap_target[c], n, 0) for c in pairs.target_choices]
        if d.get("mirror_pairs"):   # validation pairs stay as they are
            self.train = self.train.with_mirrors(
                np.asarray([i < n and poses[i] == "frontal" for i in self.train.inputs]), n)

    def _add_frontalized_rows(self, n: int) -> None:
        """Append the frontalised version of every turned input or target row (a mirror row r >= n is face
        r - n mirrored), point ``gen_rows`` at it and the pairs' turned targets too. Needs the prepared set's
        ``landmarks.npy``."""
        from nfgan.frontalize import frontalize_batch, is_turned

        lms = self.dataset.landmarks
        if lms is None:
            raise ConfigError(f"{self.dataset.root}: data.frontalize_inputs needs landmarks.npy (written by nfgan prepare)")
        poses = self.dataset.column("pose")
        used = [r for pairs in (self.train, self.val) for r in (pairs.inputs, *pairs.target_choices)]
        rows = sorted({int(r) for r in np.concatenate(used) if is_turned(poses[int(r) % n])}) if used else []
        if not rows:
            return
        face = [r % n for r in rows]
        bad = [self.dataset.records[i]["id"] for i in face if not np.isfinite(lms[i]).all()]
        if bad:
            raise ConfigError(f"{self.dataset.root}: turned input(s) without landmarks cannot be frontalised: {bad[:5]}")
        faces = frontalize_batch(self.images[rows].numpy(), np.asarray(lms[face], np.float64),
                                 [poses[i] for i in face], mirrored=[r >= n for r in rows])
        self.gen_rows[rows] = len(self.images) + np.arange(len(rows))
        self.gen_rows = np.concatenate([self.gen_rows, len(self.images) + np.arange(len(rows))])
        self.images = torch.cat([self.images, torch.from_numpy(faces)])
        # turned (same-pose) targets are read frontalised, like the inputs; input rows stay real (L_id)
        for pairs in (self.train, self.val):
            pairs.target_choices = [self.gen_rows[c] for c in pairs.target_choices]

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _batch(self, rows: np.ndarray) -> torch.Tensor:
        x = to_unit(self.images[torch.from_numpy(rows).to(self.images.device)]).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _input_batch(self, x_rows: np.ndarray) -> torch.Tensor:
        """What the generator reads for input rows ``x_rows`` (their frontalised rows with frontalize_inputs)."""
        return self._batch(self.gen_rows[x_rows])

    # -- one step
    def compute_losses(self, x_rows, y_rows, g_rows) -> dict[str, torch.Tensor]:
        """All six losses of Algorithm 1 for the given dataset rows (graphs kept for ``routed_backward``)."""
        x, y, g = self._input_batch(x_rows), self._batch(y_rows), self._batch(g_rows)
        with self.autocast():
            xt = self.nets["dec"](self.nets["enc"](x))
            out = {**self.feature_losses(xt, x_rows, y_rows), "pixel": L.pixel_loss(xt, y),
                   "sym": L.symmetry_loss(xt) if self.weights["sym"] > 0 else xt.new_zeros((), dtype=torch.float32)}
            fake_logits = self.nets["dis"](xt)
            out["gan_dec"] = L.generator_adversarial_loss(fake_logits)
            out["gan_dis"] = L.discriminator_loss(self.nets["dis"](g), fake_logits)
        return out

    def feature_losses(self, xt: torch.Tensor, x_rows, y_rows) -> dict[str, torch.Tensor]:
        """L_feat (eq. 2, against the targets' cached maps) and L_id (eq. 6, against the inputs' cached maps)
        of the outputs ``xt``; a loss whose feature net is off is 0."""
        zero = xt.new_zeros((), dtype=torch.float32)
        if self.shared_trunk is not None:
            feat_maps, id_maps = self.shared_trunk(xt)
        else:
            feat_maps = self.perceptual(xt) if self.perceptual is not None else None
            id_maps = self.identity(xt) if self.identity is not None else None
        return {"feat": L.feature_loss(feat_maps, self.target_cache(y_rows)) if feat_maps is not None else zero,
                "id": L.identity_loss(id_maps, self.input_cache(x_rows)) if id_maps is not None else zero}

    def sample_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = int(self.cfg["train"]["batch_size"])
        x_rows, y_rows = self.train.sample(b, self.sampler)
        return x_rows, y_rows, self.train.sample_guides(b, self.sampler)

    def train_step(self) -> dict[str, float]:
        """Sample a batch, compute the losses, route the gradients, update Enc, Dec and Dis."""
        for net in self.nets.values():
            net.train()
        losses = self.compute_losses(*self.sample_batch())
        values = torch.stack([losses[k].detach().float() for k in LOSS_NAMES])
        if not torch.isfinite(values).all():
            bad = [k for k, v in zip(LOSS_NAMES, values.tolist()) if not math.isfinite(v)]
            raise NonFiniteLossError(f"loss {', '.join(bad)} is not finite at step {self.step + 1} "
                                     f"(values: {dict(zip(LOSS_NAMES, values.tolist()))})")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        routed_backward(self.nets, losses, self.weights)
        for opt in self.optimizers.values():
            opt.step()
        self.step += 1
        return dict(zip(LOSS_NAMES, values.tolist()))

    # -- outputs
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The generator: x -> x~ (Dec(Enc(x)) for NFGAN)."""
        return self.nets["dec"](self.nets["enc"](x))

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """input | output | target for the fixed sample rows (networks in eval mode)."""
        x_rows, y_rows = self.sample_rows
        for net in self.nets.values():
            net.eval()
        with self.autocast():
            out = self.generate(self._input_batch(x_rows))
        imgs = [self.images[torch.from_numpy(self.gen_rows[x_rows])].cpu().numpy(), to_uint8(out),
                self.images[torch.from_numpy(y_rows)].cpu().numpy()]
        return _grid(imgs)

    def model_info(self) -> dict:
        return dict(self.cfg["model"])

    def rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch_cpu": torch.get_rng_state(), "sampler": self.sampler.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, path: Path) -> Path:
        return save_checkpoint(path, self.step, self.nets, self.optimizers, self.rng_state(), self.model_info(),
                               extra={"config": self.cfg,
                                      # whose faces reached a gradient (the FER leak guard reads this)
                                      "train_subjects": sorted({str(s) for s in self.splits["train"]})})

    def restore(self, path: str | Path) -> None:
        ck = load_checkpoint(path)
        for name, net in self.nets.items():
            net.load_state_dict(ck["nets"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ck["optimizers"][name])
        torch.set_rng_state(ck["rng"]["torch_cpu"])
        self.sampler.set_state(ck["rng"]["sampler"])
        if "cuda" in ck["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)
        self.step = int(ck["step"])


# ----------------------------------------------------------------------------------------------- run loop
def _prune_metrics(path: Path, last_step: int) -> None:
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= last_step]
    write_text(path, "".join(ln + "\n" for ln in keep))


def trainer_class(config: dict) -> type["NFGANTrainer"]:
    """The trainer for a config: ``nfgan.pix2pix.Pix2PixTrainer`` for ``model.type: pix2pix``, else NFGAN's."""
    if (config.get("model") or {}).get("type") == "pix2pix":
        from nfgan.pix2pix import Pix2PixTrainer

        return Pix2PixTrainer
    return NFGANTrainer


def train(config: dict, run_dir: str | Path, resume: bool = False, device: str | None = None,
          base_dir: str | Path = ".", progress: bool = True) -> dict:
    """Train (or resume) into ``run_dir`` until ``config['train']['steps']``. Returns a summary dict.

    The model follows ``model.type`` (``nfgan``, the default, or ``pix2pix``: :func:`trainer_class`).

    Raises ``NonFiniteLossError`` after writing ``run_dir/FAILED.txt`` when a loss becomes NaN/Inf; the
    checkpoints already written are kept (they were all taken at finite-loss steps).
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    run_dir = Path(run_dir)
    resolve_device(device or config["train"]["device"])   # refused before the run folder is made
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    trainer = trainer_class(config)(config, run_dir, device, base_dir)
    if resume:
        trainer.restore(latest_checkpoint(run_dir))
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    if trainer.missing_targets:
        write_text(run_dir / "subjects_without_target.txt", "".join(s + "\n" for s in trainer.missing_targets))
    metrics_path = run_dir / "metrics.jsonl"
    _prune_metrics(metrics_path, trainer.step)
    log = config["log"]
    total = int(config["train"]["steps"])
    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=trainer.step if resume else None)
    t0, done0 = time.time(), trainer.step
    last_ckpt = None
    bar = tqdm(total=total, initial=trainer.step, desc="nfgan train", unit="step", disable=not progress,
               dynamic_ncols=True)
    try:
        with open(metrics_path, "a", encoding="utf-8") as mf:
            while trainer.step < total:
                try:
                    vals = trainer.train_step()
                except NonFiniteLossError as e:
                    msg = f"{e}. Training stopped; last good checkpoint: {last_ckpt or 'none written yet'}"
                    write_text(run_dir / "FAILED.txt", msg + "\n")
                    raise NonFiniteLossError(msg) from None
                step = trainer.step
                if step % int(log["every"]) == 0 or step == total:
                    rec = {"step": step, "time": round(time.time(), 3), **{k: round(v, 7) for k, v in vals.items()}}
                    mf.write(json.dumps(rec) + "\n")
                    mf.flush()
                    for k, v in vals.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                bar.set_postfix({k: f"{vals[k]:.3g}" for k in ("feat", "pixel", "gan_dec", "gan_dis")}, refresh=False)
                bar.update(1)
                if step % int(log["sample_every"]) == 0 or step == total:
                    grid = trainer.sample_grid()
                    save_image(run_dir / "samples" / f"step_{step:08d}.png", grid)
                    writer.add_image("samples", grid[None], step)
                if step % int(log["checkpoint_every"]) == 0 or step == total:
                    last_ckpt = trainer.save(run_dir / "checkpoints" / checkpoint_name(step))
                    for old in sorted((run_dir / "checkpoints").glob("step_*.safetensors"))[:-int(log["keep_checkpoints"])]:
                        old.unlink()
    finally:
        bar.close()
        writer.close()
    elapsed = time.time() - t0
    return {"run_dir": str(run_dir), "step": trainer.step, "seconds": elapsed,
            "steps_per_s": (trainer.step - done0) / elapsed if elapsed > 0 else float("nan"),
            "checkpoint": str(last_ckpt) if last_ckpt else None}


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (e.g. configs/nfgan_london.yaml)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--device", help=DEVICE_HELP + " (overrides train.device)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (override train.bf16)")
    p.add_argument("--steps", type=int, help="total steps to reach (override train.steps)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of new run folders (default runs/)")
    p.add_argument("--name", help="run folder name (default: <config name>-<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nfgan.pix2pix import load_config as load_any_config   # nfgan or pix2pix, by model.type

    load_config = load_any_config
    try:
        if args.resume:
            run_dir = args.resume
            if not (run_dir / "config.yaml").is_file():
                print(f"error: {run_dir}: not a run folder (no config.yaml)", file=sys.stderr)
                return 2
            cfg = load_config(run_dir / "config.yaml")
        else:
            if args.config is None:
                print("error: give --config CONFIG.yaml (or --resume RUN_DIR)", file=sys.stderr)
                return 2
            cfg = load_config(args.config)
        if args.steps:
            cfg["train"]["steps"] = args.steps
        if args.bf16:
            cfg["train"]["bf16"] = True
        if args.device:
            cfg["train"]["device"] = args.device
        if not args.resume:
            name = args.name or f"{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
            run_dir = args.out / name
            if (run_dir / "config.yaml").exists():
                print(f"error: {run_dir} already holds a run; use --resume {run_dir} or another --name",
                      file=sys.stderr)
                return 2
        summary = train(cfg, run_dir, resume=bool(args.resume), progress=not args.quiet)
    except (ConfigError, NonFiniteLossError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
