"""The pix2pix-style baseline: a U-Net generator and a PatchGAN discriminator trained with L1 + BCE GAN loss.

Isola et al. (2017), "Image-to-Image Translation with Conditional Adversarial Networks", adapted to the NFGAN
task (64x64 gray input face -> 64x64 gray frontal neutral face) so that it trains on exactly the same pairs,
splits, batch sampler and step budget as NFGAN (issue #4, "the model a user would pick instead"):

* generator ``UNetGenerator``: six stride-2 4x4 convolutions (64 -> 1 px; C ngf, 2ngf, 4ngf, 8ngf, 8ngf, 8ngf
  with channels capped at ``max_channels``), LeakyReLU(0.2), BatchNorm except on the first and innermost
  layers; six stride-2 4x4 transposed convolutions back to 64 px with ReLU, BatchNorm and a skip connection
  (channel concatenation) from the mirrored encoder layer; dropout 0.5 on the three innermost decoder layers
  in training; Tanh output in [-1, 1].
* discriminator ``PatchDiscriminator``: conditional, on the channel pair (input x, candidate); C ndf (no BN),
  2ndf, 4ndf with stride 2, 8ndf with stride 1, then a 1-map stride-1 conv: a 6x6 map of patch logits for
  64x64 input (each logit sees a 70x70 receptive field cut to the image - for 64px faces this is close to the
  whole face, as pix2pix's 70x70 patch on 256px images is not; we keep the paper's layer recipe).
* losses: ``L_G = lambda_L1 |G(x) - y|_1 + lambda_GAN BCE(D(x, G(x)), 1)``,
  ``L_D = 0.5 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]`` (pix2pix halves D's objective); config ``loss.pixel``
  is lambda_L1 (100 in pix2pix) and ``loss.gan`` is lambda_GAN (1); ``loss.feat``, ``loss.id`` and
  ``loss.sym`` default to 0 (pix2pix has none of them, and no frozen feature net is loaded). An experiment
  may switch NFGAN's L_feat / L_id / L_sym on for the U-Net generator (``configs/pix2pix_lid.yaml``): they
  are the NFGAN trainer's losses (``NFGANTrainer.feature_losses``), added to L_G with their weights, and
  need the matching ``feature_nets`` entry.
  The real pair uses the sampled target y (the subject's frontal neutral face), not the guiding set.

At inference the generator runs in eval mode: BatchNorm uses its running statistics and dropout is off, so
outputs are deterministic (pix2pix keeps dropout on at test time as a noise source; for an identity-preserving
normaliser we want one answer per face).

Selection: a YAML config with ``model: {type: pix2pix}`` (see ``configs/baseline_pix2pix.yaml``). The
training loop, run folder, checkpoints and resume are the NFGAN trainer's (:mod:`nfgan.trainer`); this
module only overrides network building, ``compute_losses``, the backward step and the sample grid.
``nfgan train --config configs/baseline_pix2pix.yaml`` picks this trainer from ``model.type``
(``python -m nfgan.pix2pix`` is the same command).

Checkpoints hold the nets ``gen`` and ``dis`` and ``model.type = "pix2pix"`` in their metadata;
:func:`nfgan.evaluate.load_generator` rebuilds either kind of model from a run folder or checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from nfgan import losses as L
from nfgan import trainer as T
from nfgan.networks import init_weights

#: keys of the ``model`` section that only pix2pix knows (defaults); ``type`` selects the trainer
PIX2PIX_MODEL_DEFAULTS = {"type": "pix2pix", "ngf": 32, "ndf": 32, "max_channels": 256, "dropout": 0.5,
                          "d_layers": 3}
#: loss weights pix2pix uses (L1 weight 100, GAN weight 1, nothing else)
PIX2PIX_LOSS = {"feat": 0.0, "id": 0.0, "pixel": 100.0, "sym": 0.0, "gan": 1.0}


# ----------------------------------------------------------------------------------------------- networks
class UNetGenerator(nn.Module):
    """U-Net for ``B x 1 x S x S`` faces in [-1, 1] -> ``B x 1 x S x S`` in [-1, 1] (S a power of two >= 8).

    ``depth = log2(S)`` stride-2 downsamplings reach a 1x1 bottleneck (6 for 64 px)."""

    def __init__(self, image_size: int = 64, ngf: int = 32, max_channels: int = 256, dropout: float = 0.5,
                 in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        depth = int(round(math.log2(image_size)))
        if 2 ** depth != image_size or depth < 3:
            raise ValueError(f"UNetGenerator needs a power-of-two image size >= 8, got {image_size}")
        chans = [min(ngf * 2 ** min(i, 3), max_channels) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.LeakyReLU(0.2, inplace=False))
            layers.append(nn.Conv2d(cin, c, 4, stride=2, padding=1, bias=i in (0, depth - 1)))
            if 0 < i < depth - 1:
                layers.append(nn.BatchNorm2d(c))
            self.down.append(nn.Sequential(*layers))
            cin = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):          # up[k] undoes down[i], i = depth-1 .. 0
            innermost, outermost = i == depth - 1, i == 0
            c_in = chans[i] if innermost else 2 * chans[i]
            c_out = out_channels if outermost else chans[i - 1]
            layers = [nn.ReLU(inplace=False),
                      nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=outermost)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(c_out))
                if dropout > 0 and i >= depth - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for d in self.down:
            h = d(h)
            skips.append(h)
        h = self.up[0](skips[-1])
        for k, u in enumerate(self.up[1:], start=2):
            h = u(torch.cat([h, skips[-k]], dim=1))
        return h


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: logits ``B x 1 x h x w`` for the pair (x, candidate), each ``B x 1 x S x S``."""

    def __init__(self, ndf: int = 32, n_layers: int = 3, in_channels: int = 2, max_channels: int = 512):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            c_next = min(ndf * 2 ** i, max_channels)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_next),
                       nn.LeakyReLU(0.2, True)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, candidate], dim=1))


def build_pix2pix(model: dict) -> dict[str, nn.Module]:
    """``{"gen": UNetGenerator, "dis": PatchDiscriminator}`` from a config's ``model`` section, initialised
    N(0, init_std) as pix2pix does."""
    m = {**PIX2PIX_MODEL_DEFAULTS, **model}
    nets = {"gen": UNetGenerator(int(m.get("image_size", 64)), int(m["ngf"]), int(m["max_channels"]),
                                 float(m["dropout"])),
            "dis": PatchDiscriminator(int(m["ndf"]), int(m["d_layers"]))}
    if m.get("init_std"):
        for net in nets.values():
            init_weights(net, float(m["init_std"]))
    return nets


# ----------------------------------------------------------------------------------------------- config
def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Like :func:`nfgan.trainer.load_config`, plus the pix2pix keys of ``model`` (``type``, ``ngf``, ...).

    A config without ``model.type`` (or with ``type: nfgan``) is returned exactly as the trainer's loader
    returns it. For ``type: pix2pix`` the loss weights default to pix2pix's (L1 100, GAN 1, others 0) and
    the feature nets are disabled; a non-zero ``feat``/``id``/``sym`` weight is an error naming the file.
    """
    source = str(path) if path is not None else "overrides"
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise T.ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise T.ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise T.ConfigError(f"{path}: the top level must be a mapping")
    data = copy.deepcopy(data)
    overrides = copy.deepcopy(overrides or {})
    model_type = (overrides.get("model", {}) or {}).get("type", (data.get("model") or {}).get("type", "nfgan"))
    if model_type not in ("nfgan", "pix2pix"):
        raise T.ConfigError(f"{source}: model.type must be 'nfgan' or 'pix2pix', got {model_type!r}")
    extra: dict = {}
    for d in (data, overrides):
        m = d.get("model")
        if isinstance(m, dict):
            for k in list(m):
                if k in PIX2PIX_MODEL_DEFAULTS:
                    extra[k] = m.pop(k)
    if model_type == "nfgan":
        if set(extra) - {"type"}:
            raise T.ConfigError(f"{source}: model keys {sorted(set(extra) - {'type'})} are for model.type pix2pix")
        cfg = T._merge(T.DEFAULT_CONFIG, data, source)
        if overrides:
            cfg = T._merge(cfg, overrides, "overrides")
        return T.load_config(overrides=cfg)   # the trainer's own checks (loss weights)
    base = T._merge(T.load_config(), {"loss": PIX2PIX_LOSS, "feature_nets": {"perceptual": None, "identity": None}},
                    "pix2pix defaults")
    cfg = T._merge(base, data, source)
    if overrides:
        cfg = T._merge(cfg, overrides, "overrides")
    for k, net in (("feat", "perceptual"), ("id", "identity")):
        if cfg["loss"][k] and not cfg["feature_nets"].get(net):
            raise T.ConfigError(f"{source}: loss.{k} = {cfg['loss'][k]} needs feature_nets.{net} "
                                f"(pix2pix has no {k} loss by default)")
    cfg["model"].update({**PIX2PIX_MODEL_DEFAULTS, **extra})
    unknown = set(cfg["model"]) - set(T.DEFAULT_CONFIG["model"]) - set(PIX2PIX_MODEL_DEFAULTS)
    if unknown:
        raise T.ConfigError(f"{source}: unknown model key(s) {sorted(unknown)}")
    return cfg


def is_pix2pix(config: dict) -> bool:
    return (config.get("model") or {}).get("type") == "pix2pix"


# ----------------------------------------------------------------------------------------------- trainer
def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


class Pix2PixTrainer(T.NFGANTrainer):
    """The NFGAN trainer with pix2pix's networks, losses and update (see the module docstring).

    Loss names follow the NFGAN trainer's (``nfgan.trainer.LOSS_NAMES``) so logs and tools stay the same:
    ``pixel`` = L1 to the target, ``gan_dec`` = the generator's BCE, ``gan_dis`` = D's objective;
    ``feat``, ``id`` and ``sym`` are 0 unless the config switches them on (module doc).
    """

    def __init__(self, config: dict, run_dir=None, device=None, base_dir="."):
        if not is_pix2pix(config):
            raise T.ConfigError("Pix2PixTrainer needs model.type: pix2pix")
        # the parent builds data, sampler, RNG; with feat = id = 0 it loads no feature net
        super().__init__(config, run_dir, device, base_dir)
        torch.manual_seed(int(config["seed"]))
        self.nets = build_pix2pix(config["model"])
        for net in self.nets.values():
            net.to(self.device)
            if self.channels_last:
                net.to(memory_format=torch.channels_last)
        o = config["optim"]
        self.optimizers = {
            name: torch.optim.Adam(self.nets[name].parameters(), lr=float(o[src]["lr"]), betas=tuple(o[src]["betas"]),
                                   weight_decay=float(o[src].get("weight_decay", 0.0)))
            for name, src in (("gen", "dec"), ("dis", "dis"))}

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["gen"](x)

    def compute_losses(self, x_rows, y_rows, g_rows) -> dict[str, torch.Tensor]:
        x, y = self._input_batch(x_rows), self._batch(y_rows)
        with self.autocast():
            fake = self.nets["gen"](x)
            zero = fake.new_zeros((), dtype=torch.float32)
            out = {**self.feature_losses(fake, x_rows, y_rows), "pixel": (fake.float() - y.float()).abs().mean(),
                   "sym": L.symmetry_loss(fake) if self.weights["sym"] > 0 else zero,
                   "gan_dec": _bce(self.nets["dis"](x, fake), True)}
            out["gan_dis"] = 0.5 * (_bce(self.nets["dis"](x, y), True) + _bce(self.nets["dis"](x, fake.detach()), False))
        return out

    def backward(self, losses: dict[str, torch.Tensor]) -> None:
        """G <- grad_G (lambda_L1 L1 + lambda_GAN BCE); D <- grad_D L_D (its loss sees G(x) detached)."""
        gen_p = [p for p in self.nets["gen"].parameters() if p.requires_grad]
        dis_p = [p for p in self.nets["dis"].parameters() if p.requires_grad]
        w = self.weights
        g_loss = w["pixel"] * losses["pixel"] + w["gan"] * losses["gan_dec"]
        for k in ("feat", "id", "sym"):   # NFGAN's extra losses, when a config switches them on
            if w[k] > 0:
                g_loss = g_loss + w[k] * losses[k]
        g_loss.backward(inputs=gen_p)
        losses["gan_dis"].backward(inputs=dis_p)

    def train_step(self) -> dict[str, float]:
        for net in self.nets.values():
            net.train()
        losses = self.compute_losses(*self.sample_batch())
        values = torch.stack([losses[k].detach().float() for k in T.LOSS_NAMES])
        if not torch.isfinite(values).all():
            bad = [k for k, v in zip(T.LOSS_NAMES, values.tolist()) if not math.isfinite(v)]
            raise T.NonFiniteLossError(f"loss {', '.join(bad)} is not finite at step {self.step + 1} "
                                       f"(values: {dict(zip(T.LOSS_NAMES, values.tolist()))})")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.backward(losses)
        for opt in self.optimizers.values():
            opt.step()
        self.step += 1
        return dict(zip(T.LOSS_NAMES, values.tolist()))


def trainer_class(config: dict) -> type[T.NFGANTrainer]:
    """The trainer for a config: ``Pix2PixTrainer`` for ``model.type: pix2pix``, else ``NFGANTrainer``."""
    return T.trainer_class(config)


def train_any(config: dict, run_dir, resume: bool = False, device=None, base_dir=".", progress: bool = True) -> dict:
    """``nfgan.trainer.train``, which picks the trainer class from ``model.type`` (kept for old callers)."""
    return T.train(config, run_dir, resume, device, base_dir, progress)


# ----------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m nfgan.pix2pix ...`` is ``nfgan train ...`` (which dispatches on ``model.type``)."""
    p = argparse.ArgumentParser(prog="python -m nfgan.pix2pix",
                                description="train a model from a YAML config whose model.type is nfgan or pix2pix")
    T.add_arguments(p)
    return T.run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
