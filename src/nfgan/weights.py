"""Where pretrained weights come from: registry packages located on disk (never imported), and our cache.

``face_recognition_models`` ships dlib's models but its ``__init__`` needs ``pkg_resources``; we only find
its folder through ``importlib.util.find_spec`` and read the files.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

DLIB_MODEL_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod": "mmod_human_face_detector.dat",
}


class MissingWeightsError(FileNotFoundError):
    pass


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise MissingWeightsError(f"package {name!r} is not installed (pip install {name})")
    return Path(spec.origin).parent


def dlib_model_path(key: str) -> Path:
    """Path of one of dlib's model files shipped by the ``face_recognition_models`` package."""
    if key not in DLIB_MODEL_FILES:
        raise KeyError(f"unknown dlib model {key!r}; known: {sorted(DLIB_MODEL_FILES)}")
    path = package_dir("face_recognition_models") / "models" / DLIB_MODEL_FILES[key]
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing: reinstall face_recognition_models")
    return path


def cache_dir() -> Path:
    """Folder for converted weights (safetensors). ``NFGAN_CACHE`` overrides ``~/.cache/nfgan``."""
    root = Path(os.environ.get("NFGAN_CACHE", Path.home() / ".cache" / "nfgan"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def assets_dir() -> Path:
    """Weights and example files that ship inside the nfgan package."""
    return Path(__file__).parent / "assets"


def is_name(value) -> bool:
    """A bare name (``london``), not a path: no folder part and no ``.json`` ending."""
    text = str(value)
    return bool(text) and "/" not in text and "\\" not in text and not text.endswith(".json")


class UnknownProtocolFile(FileNotFoundError):
    """A bare name given for a split or fold file that nfgan does not ship."""


def protocol_file(value: str | Path, kind: str) -> Path:
    """A split (``kind="splits"``) or fold (``kind="folds"``) file: ``value`` as a path when it is one, else the
    file of that name shipped in ``nfgan/assets/<kind>/`` (``london``, ``ckplus_peak_10fold``, ...)."""
    path = Path(value)
    if is_name(value) and not path.exists():
        shipped = assets_dir() / kind / f"{value}.json"
        if shipped.is_file():
            return shipped
        names = sorted(p.stem for p in (assets_dir() / kind).glob("*.json"))
        raise UnknownProtocolFile(f"{value!r}: no such {kind} file here, and nfgan ships none of that name "
                                  f"(shipped: {', '.join(names)})")
    return path


def packaged_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (assets_dir() / kind).glob("*.json"))


def read_array_file(path: str | Path, what: str, error: type[Exception]) -> tuple[dict, dict]:
    """The arrays (numpy, by name) and the JSON ``info`` metadata of a safetensors file that holds a small fitted
    map (``nfgan.data.neutral_shape``, ``nfgan.data.frontal_shape``): nothing is unpickled. A missing or damaged
    file raises ``error`` naming the file and ``what`` it should be; unreadable ``info`` reads as ``{}``."""
    import json

    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except Exception as e:   # safetensors raises its own error types for a damaged file
        raise error(f"{path}: not a {what} ({e})") from None
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError:
        info = {}
    return arrays, info


def write_array_file(path: str | Path, arrays: dict, info: dict) -> None:
    """Write what :func:`read_array_file` reads (float64 arrays, ``info`` as JSON metadata), atomically."""
    import json

    import numpy as np
    from safetensors.numpy import save

    from nfgan.atomic import write_bytes

    write_bytes(path, save({k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()},
                           metadata={"info": json.dumps(info)}))
