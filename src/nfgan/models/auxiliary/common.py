"""What every auxiliary feature network shares: the ``FeatureNet`` interface, face checks and resizing, and safe
loading of user-supplied weight files (never an arbitrary unpickle)."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfgan import weights as _weights
from nfgan.atomic import save_safetensors


class FeatureNet(nn.Module):
    """Base class: frozen, eval-only network returning the feature maps a loss compares."""

    #: short name used in configs and logs
    name: str = "feature_net"
    #: dlib nets: run gray faces through the folded copy (:class:`nfgan.models.auxiliary.dlib_resnet.FusedGrayResNet`);
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


def flip_and_shift(faces: np.ndarray, rng: np.random.Generator, max_shift: int = 3) -> np.ndarray:
    """Each face flipped with probability 1/2 and shifted by up to ``max_shift`` px (edge pixels repeated)."""
    out = np.empty_like(faces)
    n, h, w = faces.shape
    pad = np.pad(faces, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="edge")
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
    flip = rng.random(n) < 0.5
    for i in range(n):
        f = pad[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = f[:, ::-1] if flip[i] else f
    return out


def read_tagged_safetensors(path: Path, meta_key: str, what: str, error: type[Exception]) -> tuple[dict, dict]:
    """``(metadata, tensors)`` of a safetensors file nfgan wrote with its JSON metadata under ``meta_key`` (nothing
    is unpickled). A damaged file, one without that key or with bad JSON there is an ``error`` naming the file and
    ``what`` it should have been."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get(meta_key)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:   # safetensors raises several types for damaged files
        raise error(f"{path}: not a readable safetensors file ({e})") from None
    if raw is None:
        raise error(f"{path}: not {what} (no {meta_key!r} metadata)")
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise error(f"{path}: damaged {meta_key!r} metadata ({e})") from None
    if not isinstance(meta, dict):
        raise error(f"{path}: damaged {meta_key!r} metadata (not a mapping)")
    return meta, tensors


def gray_to_rgb255(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] gray (or RGB) ``B x C x H x W`` -> ``B x 3 x size x size`` RGB in [0, 255]."""
    x = resize_faces((x + 1.0) * 127.5, size)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


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
