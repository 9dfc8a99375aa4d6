"""A trained generator loaded for inference, from any of the three files a run produces, and its export.

``load_model(path)`` reads a run folder (its latest checkpoint), a training checkpoint or an exported model
file (``nfgan.checkpoint``: all safetensors, never unpickled) and returns a :class:`Generator`: the model's
inference networks (``GENERATOR`` of its class in ``nfgan.models``) with the generator-input rule it was
trained with (``nfgan.data.generator_input.InputRule``). ``export_model`` writes the inference part of a
checkpoint to one file (``nfgan/assets/*.safetensors`` are such files).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from nfgan.checkpoint import (EXPORT_FORMAT, EXPORT_KEY, CheckpointError, averaged_nets, load_checkpoint,
                              read_exported_model)
from nfgan.data.frontalize import is_turned
from nfgan.data.generator_input import InputRule
from nfgan.inference.identity_pull import IdentityPull
from nfgan.models import model_class
from nfgan.pixels import to_unit_batch, to_uint8
from nfgan.weights import assets_dir


#: the research model: the London recipe + photometric augmentation + the expression lever + the U-Net's fine
#: skips shut inside the mouth and brows (model.skip_mask) + NFGAN's perceptual loss L_feat, trained on London,
#: canada, CK+, JAFFE, Yale and SFM synthetic expressions; **non-commercial research use only** (CK+, JAFFE,
#: Yale are research-only sets, the Surrey Face Model is non-commercial)
ALL_DATA_MODEL_NAME = "pix2pix_all_data_research64.safetensors"
#: file name of the shipped default normaliser in ``nfgan/assets``: the research model (docs/model_card.md)
DEFAULT_MODEL_NAME = ALL_DATA_MODEL_NAME
#: the same recipe trained on the CC BY 4.0 face sets only (London + canada): no research-only training data
CC_BY_MODEL_NAME = "pix2pix_cc_by64.safetensors"
#: the earlier default: landmark frontalisation + U-Net + L_id, trained on the 70 London training people (CC BY)
LONDON_MODEL_NAME = "pix2pix_lid_frontalized_london64.safetensors"
#: file name of the shipped NFGAN (encoder + decoder) in ``nfgan/assets`` (docs/model_card.md)
NFGAN_MODEL_NAME = "nfgan_london64.safetensors"
#: the models nfgan ships, by the name a command's --model (or ``load_model``) accepts (docs/model_card.md);
#: ``default`` and ``all_data`` are the same file
SHIPPED_MODELS = {"default": DEFAULT_MODEL_NAME, "all_data": ALL_DATA_MODEL_NAME, "cc_by": CC_BY_MODEL_NAME,
                  "london": LONDON_MODEL_NAME, "nfgan": NFGAN_MODEL_NAME}
#: which generator weights ``load_model`` reads: ``auto`` (the moving average where a run kept one, else the live
#: weights), ``ema`` (the average; an error without one) or ``live`` (the weights training updated)
WEIGHTS = ("auto", "ema", "live")


def split_weights(path: str | Path, weights: str = "auto") -> tuple[Path, str]:
    """``PATH#live`` or ``PATH#ema`` (how a command line names one set of a checkpoint's weights) as
    ``(PATH, "live")`` / ``(PATH, "ema")``; any other path with ``weights`` unchanged. A file whose name really
    ends in ``#live`` stays a file. ``weights`` must be one of :data:`WEIGHTS` and agree with the suffix."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    text = str(path)
    base, sep, suffix = text.rpartition("#")
    if not sep or suffix not in WEIGHTS[1:] or Path(text).exists():
        return Path(path), weights
    if weights not in ("auto", suffix):
        raise ValueError(f"{text}: asks for the {suffix!r} weights and for {weights!r} ones")
    return Path(base), suffix


def shipped_model(name_or_path: str | Path) -> Path:
    """``name_or_path`` as a path: an existing file or folder as it is, else the shipped model of that name
    (:data:`SHIPPED_MODELS`); anything else is returned unchanged (the caller reports it missing)."""
    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in SHIPPED_MODELS:
        return assets_dir() / SHIPPED_MODELS[str(name_or_path)]
    return p


def default_model_path() -> Path:
    """The shipped default normaliser: the research model trained on five face sets (London, canada, CK+, JAFFE,
    Yale) and SFM synthetic expressions and turned faces, with the expression lever - **non-commercial research use
    only**; ``shipped_model("cc_by")`` is the model trained on CC BY data only (docs/model_card.md)."""
    return assets_dir() / DEFAULT_MODEL_NAME


def nfgan_model_path() -> Path:
    """The shipped NFGAN (Enc + Dec, London training subjects; docs/model_card.md): the model with a latent code."""
    return assets_dir() / NFGAN_MODEL_NAME


class RuleView:
    """What every inference backend offers besides its network: the model's input rule (``self.rule``) and size
    (``self.info["model"]``), for ``Normalizer`` and ``nfgan normalize``."""

    rule: InputRule
    info: dict

    @property
    def flip_left_poses(self) -> bool:
        return self.rule.flip_left_poses

    @property
    def frontalize(self) -> bool:
        return self.rule.frontalize

    @property
    def size(self) -> int:
        return int(self.info["model"].get("image_size", 64))

    def mirror_mask(self, poses: Sequence[str] | None, flipped: Sequence | None = None) -> np.ndarray:
        return self.rule.mirror_mask(poses, flipped)

    @property
    def in_channels(self) -> int:
        """How many channels the network reads (2 for a model trained with ``data.frontalize_fill: both``)."""
        raise NotImplementedError

    def generator_inputs(self, images_u8: np.ndarray, poses: Sequence[str] | None = None,
                         flipped: Sequence | None = None, landmarks: np.ndarray | None = None) -> np.ndarray:
        """uint8 faces as the generator reads them (the model's input rule): ``N x S x S``, or ``N x 2 x S x S`` for
        a two-channel rule. Raises ``ValueError`` when the rule's channels are not the network's (a rule replaced
        by hand)."""
        who = str(self.info.get("source", "this model"))
        if self.rule.channels != self.in_channels:
            raise ValueError(f"{who}: its network reads {self.in_channels} channel(s) but its input rule gives "
                             f"{self.rule.channels} (fill {self.rule.fill!r}, frontalize {self.rule.frontalize}); "
                             "a network trained with data.frontalize_fill: both needs that fill, any other network "
                             "another")
        return self.rule.apply(images_u8, poses, flipped, landmarks, who=who)


class Generator(RuleView, nn.Module):
    """A trained generator in eval mode: NFGAN's Enc + Dec or the pix2pix U-Net.

    ``forward(x)``: ``B x 1 x S x S`` in [-1, 1] -> normalised faces, same shape. :meth:`normalize` works on
    uint8 stacks in batches and applies the model's input rule. ``encode``/``decode`` exist for NFGAN only.
    """

    def __init__(self, kind: str, nets: dict[str, nn.Module], info: dict):
        super().__init__()
        self.model_class = model_class(kind)
        self.kind = kind
        self.nets = nn.ModuleDict(nets)
        self.info = info
        cfg = info.get("config") if isinstance(info.get("config"), dict) else {}
        if isinstance(info.get("input_rule"), dict):     # written by export_model (the map embedded)
            self.rule = InputRule.from_record(info["input_rule"])
        else:   # a checkpoint (its training config), or a file exported before the record existed
            base = InputRule.from_config(cfg)
            self.rule = InputRule(bool(info.get("flip_left_poses", base.flip_left_poses)),
                                  bool(info.get("frontalize_inputs", base.frontalize)),
                                  str(info.get("frontalize_fill") or base.fill),
                                  bool(info.get("neutralize_shape", base.neutralize)), base.shape, base.mode,
                                  base.threshold, base.frontal, base.frontal_map)
        #: the identity pull for turned inputs (``nfgan.inference.identity_pull``), where the file records one
        self.pull = None
        if info.get("identity_pull") is not None:
            who = str(info.get("source", "this model"))
            self.pull = IdentityPull.from_record(info["identity_pull"], who)
            self.pull.check(self.nets["gen"] if "gen" in self.nets else None, who)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Generator":  # inference only
        return super().train(False)

    @property
    def in_channels(self) -> int:
        net = self.nets["enc"] if self.kind == "nfgan" else self.nets["gen"]
        conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
        return self.rule.channels if conv is None else int(conv.in_channels)   # no convolution: nothing to check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.nets, x)

    def _run(self, nets, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "nfgan":
            return nets["dec"](nets["enc"](x))
        return nets["gen"](x)

    def _channels_last_nets(self, device: torch.device) -> nn.ModuleDict:
        """A channels-last copy of the nets on ``device`` (made once; the module's own nets stay as they are,
        so the default path is untouched). Not a registered sub-module: it is in no state dict."""
        cache = self.__dict__.setdefault("_fast_nets", {})
        key = str(device)
        if key not in cache:
            cache[key] = copy.deepcopy(self.nets).to(device=device, memory_format=torch.channels_last).eval()
        return cache[key]

    def _latent(self, name: str) -> nn.Module:
        if self.kind != "nfgan":
            raise CheckpointError(f"{self.info.get('source', 'this model')}: a {self.kind} model has no latent code; "
                                  "encode/decode need an NFGAN, e.g. the shipped nfgan_london64")
        return self.nets[name]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._latent("enc")(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._latent("dec")(z)

    def first_layer_filters(self) -> np.ndarray:
        """The first convolution's kernels, ``K x kh x kw`` (paper Fig. 5)."""
        net = self.nets["enc"] if self.kind == "nfgan" else self.nets["gen"]
        conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        return conv.weight.detach().float()[:, 0].cpu().numpy()

    @torch.no_grad()
    def normalize(self, images_u8: np.ndarray, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
                  batch_size: int = 64, progress: bool = False, desc: str = "normalize",
                  landmarks: np.ndarray | None = None, channels_last: bool = False,
                  bf16: bool = False, identity_pull: bool = True) -> np.ndarray:
        """uint8 ``N x S x S`` faces -> uint8 ``N x S x S`` normalised faces (outputs are never mirrored: the
        training targets are the real frontal faces).

        A model that records an identity pull (:attr:`pull`, ``nfgan.inference.identity_pull``; the default does)
        applies it to the faces whose pose is turned, in float32 whatever the options below; ``identity_pull=False``
        gives the plain generator's outputs (as its ONNX graph does), about 30x faster on turned faces on a CPU
        (``benchmarks/normalize_speed.py``).

        Faster options (off by default; the default fp32 path is what training evaluated and stays bit-for-bit
        the same): ``channels_last`` runs a channels-last copy of the nets under ``torch.inference_mode``
        (~1.3x on a 2-core AVX-512 CPU; other convolution kernels, so a few pixels in thousands differ by one gray
        level); ``bf16`` runs under bfloat16 autocast (~2.5x there, but 2-3 gray levels from the fp32
        output on real faces: docs/deploy.md has the figures)."""
        from tqdm import tqdm

        photos = np.asarray(images_u8)
        images_u8 = self.generator_inputs(images_u8, poses, flipped, landmarks)
        device = next(self.parameters(), torch.empty(0)).device   # a parameter-free net runs on the CPU
        out = np.empty((len(images_u8),) + images_u8.shape[-2:], dtype=np.uint8)
        batches = tqdm(range(0, len(images_u8), batch_size), desc=desc, unit="batch", disable=not progress,
                       leave=False)
        if not (channels_last or bf16):
            for s in batches:
                out[s:s + batch_size] = to_uint8(self(to_unit_batch(images_u8[s:s + batch_size]).to(device)))
        else:
            nets = self._channels_last_nets(device) if channels_last else self.nets
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                for s in batches:
                    x = to_unit_batch(images_u8[s:s + batch_size]).to(device).contiguous(memory_format=fmt)
                    out[s:s + batch_size] = to_uint8(self._run(nets, x))
        if identity_pull and self.pull is not None and poses is not None:
            rows = np.flatnonzero([is_turned(p) for p in poses])
            for s in tqdm(range(0, len(rows), batch_size), desc=f"{desc} (identity pull)", unit="batch",
                          disable=not progress, leave=False):
                r = rows[s:s + batch_size]
                out[r] = to_uint8(self.pull.apply(self.nets["gen"], to_unit_batch(images_u8[r]).to(device),
                                                  to_unit_batch(photos[r]).to(device)))
        return out


def checked_model_cfg(kind: str, model: dict, path: Path) -> dict:
    """``model`` (a file's model hyper-parameters) checked against the model type's schema before anything is
    built from it: a lying ``latent_dim`` must not become a terabyte allocation. Keys the schema does not know
    (older files carry other models' keys) are left alone."""
    from nfgan.config import ConfigError, Option, convert

    try:
        cls = model_class(kind)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: model hyper-parameters must be a mapping, got {model!r:.60}")
    out = dict(model)
    for key, spec in cls.schema()["model"].items():
        if key in model and key != "type":
            try:
                out[key] = convert(model[key], spec if isinstance(spec, Option) else Option(spec),
                                   f"{path}: model.{key}", None)
            except ConfigError as e:
                raise CheckpointError(str(e)) from None
    return out


def _generator_nets(kind: str, model: dict, states: dict, path: Path) -> dict[str, nn.Module]:
    """The model's inference networks with the file's weights, every tensor checked first (present, no
    stranger, same shape, floating point where the network has floats, finite)."""
    model = checked_model_cfg(kind, model, path)
    try:
        nets = model_class(kind).build_generator(model)
    except ValueError as e:
        raise CheckpointError(f"{path}: cannot build a {kind} model from its hyper-parameters ({e})") from None
    for name, net in nets.items():
        if name not in states:
            raise CheckpointError(f"{path}: has no '{name}' network (has {sorted(states)})")
        want, got = net.state_dict(), states[name]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        if missing or extra:
            raise CheckpointError(f"{path}: the '{name}' weights do not fit a {kind} model with these "
                                  f"hyper-parameters (missing {missing[:3]}, unexpected {extra[:3]})")
        for key, ref in want.items():
            value = got[key]
            if tuple(value.shape) != tuple(ref.shape):
                raise CheckpointError(f"{path}: '{name}/{key}' has shape {tuple(value.shape)}, a {kind} model "
                                      f"with these hyper-parameters needs {tuple(ref.shape)}")
            if ref.is_floating_point() and not value.is_floating_point():
                raise CheckpointError(f"{path}: '{name}/{key}' holds {value.dtype} values, expected floats")
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise CheckpointError(f"{path}: '{name}/{key}' holds NaN or infinite values")
        net.load_state_dict(got)
    return nets


def load_model(path: str | Path, weights: str = "auto") -> Generator:
    """A :class:`Generator` from a run folder (its latest checkpoint), a training checkpoint, a file written by
    :func:`export_model`, or the name of a shipped model (:data:`SHIPPED_MODELS`: ``default``, ``cc_by``,
    ``london``, ``nfgan``, ``all_data``). A checkpoint of a run trained with ``train.ema_half_life`` gives the
    moving average of its generator (``info["weights"] == "ema"``), as exporting it does.

    ``weights`` (:data:`WEIGHTS`): ``"auto"`` as above; ``"live"`` the generator training updated (a checkpoint
    keeps both); ``"ema"`` the moving average, an error where there is none. An exported file holds one of the
    two, so asking it for the other is an error too. ``"PATH#live"`` / ``"PATH#ema"`` say the same in the path
    (:func:`split_weights`), which is how every command's model argument chooses. Errors (``CheckpointError``)
    name the file and the problem."""
    path, weights = split_weights(path, weights)
    path = shipped_model(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder, checkpoint or model file (nor a shipped model: "
                              f"{', '.join(SHIPPED_MODELS)})")
    exported = None if path.is_dir() else read_exported_model(path)
    if exported is not None:
        info, states = exported
        kind = info["kind"]
        held = info.get("weights", "live")
        if weights not in ("auto", held):
            raise CheckpointError(f"{path}: an exported model holds one set of weights, its {held!r} ones, not "
                                  f"{weights!r}; export the training checkpoint again with those weights")
        return Generator(kind, _generator_nets(kind, info["model"], states, path),
                         {**info, "weights": held, "source": str(path)})     # files before the average: live
    ck = load_checkpoint(path)
    model = ck["model"]
    kind = model.get("type", "nfgan")
    cfg = ck["extra"].get("config", {})
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{ck['path']}: the recorded config must be a mapping")
    info = {"kind": kind, "model": model, "step": ck["step"], "source": str(ck["path"]),
            "flip_left_poses": bool(cfg.get("data", {}).get("flip_left_poses", False)),
            "config_name": cfg.get("name"), "config": cfg, "weights": "live"}
    if isinstance(ck["extra"].get("train_subjects"), list):   # kept by export_model for the FER leak guard
        info["train_subjects"] = [str(s) for s in ck["extra"]["train_subjects"]]
    # a run with train.ema_half_life ships its average unless asked for the live weights
    states = {} if weights == "live" else averaged_nets(ck["nets"])
    if states:
        info.update(weights="ema", ema_since=ck["extra"].get("ema_since"))
    elif weights == "ema":
        raise CheckpointError(f"{ck['path']}: has no moving average of its generator (trained without "
                              "train.ema_half_life); load its live weights")
    return Generator(kind, _generator_nets(kind, model, states or ck["nets"], ck["path"]), info)


def export_model(checkpoint: "str | Path | Generator", out: str | Path, half: bool = False, weights: str = "auto",
                 rule: InputRule | None = None, identity_pull: "IdentityPull | bool | None" = None,
                 **metadata) -> Path:
    """Write the inference part of a run (its model's ``GENERATOR`` networks) to one safetensors file with the
    model hyper-parameters, input rule, step and the given ``metadata`` (JSON-able: data, licence, metrics).
    ``half`` stores float weights as float16 (loaded back into float32 modules; the expression directions of
    ``model.skip_proj_k`` stay float32: rounding a projection moves every output); ``weights`` chooses the moving
    average or the live generator as in :func:`load_model`; ``rule`` replaces the input rule the model was
    trained with (e.g. a geometric step applied at inference only); ``identity_pull`` adds an identity pull
    (``False`` drops the model's; ``None`` keeps it). The training subjects a checkpoint records
    are kept (``metadata`` may replace them), joined by the people the rule's maps were fit on
    (:meth:`InputRule.map_subjects`); where those are unknown, none are recorded and the FER leak guard refuses
    the file. ``checkpoint`` may also be a loaded :class:`Generator` (e.g. one whose weights were averaged with
    others', ``tools/average_models.py``). Read back by :func:`load_model`."""
    from nfgan.atomic import save_safetensors

    g = checkpoint if isinstance(checkpoint, Generator) else load_model(checkpoint, weights)
    if rule is not None:
        g.rule = rule
    pull = g.pull if identity_pull is None else (identity_pull or None)
    if pull is not None:
        pull.check(g.nets["gen"] if "gen" in g.nets else None, str(out))
    tensors = {f"{name}/{k}": v.detach().cpu().contiguous() for name, net in g.nets.items()
               for k, v in net.state_dict().items()}
    if half:   # the expression directions (buffers skip_proj*) stay float32
        keep = {k for k in tensors if k.rpartition("/")[2].startswith("skip_proj")}
        tensors = {k: v.half() if v.is_floating_point() and k not in keep else v for k, v in tensors.items()}
    info = {"format": EXPORT_FORMAT, "kind": g.kind, "model": g.info["model"], "step": g.info.get("step"),
            "flip_left_poses": g.flip_left_poses, "frontalize_inputs": g.frontalize, "frontalize_fill": g.rule.fill,
            "neutralize_shape": g.rule.neutralize, "input_rule": g.rule.as_dict(),
            "config": g.info.get("config", {}), "weights": g.info.get("weights", "live"),
            "stored_dtype": "float16" if half else "float32"}
    if "train_subjects" in g.info:   # the people it learned from, read by the FER leak guard (nfgan.fer.augment)
        info["train_subjects"] = g.info["train_subjects"]
    if "averaged_from" in g.info:    # a weight average's sources (tools/average_models.py), kept on re-export
        info["averaged_from"] = g.info["averaged_from"]
    if pull is not None:
        info["identity_pull"] = pull.as_dict()
    info.update(metadata)
    if info.get("train_subjects") is not None:   # and the people the rule's maps were fit on; unknown: none
        mapped = g.rule.map_subjects()
        info["train_subjects"] = None if mapped is None else sorted(set(map(str, info["train_subjects"])) | mapped)
    if info.get("train_subjects") is None:   # unknown: recorded as absent, so the leak guard refuses the file
        info.pop("train_subjects", None)
    save_safetensors(Path(out), tensors, metadata={EXPORT_KEY: json.dumps(info)})
    return Path(out)
