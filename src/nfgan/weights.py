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
