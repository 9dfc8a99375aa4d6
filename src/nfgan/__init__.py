"""nfgan: normalized (frontal, neutral) face generation after Liu et al., ISBA 2018, and identity-aware FER.

The common path in one import::

    import nfgan
    result = nfgan.Normalizer.from_checkpoint().normalize_photos(["photo.jpg"])   # shipped default model
    face = nfgan.align_face(photo_array)          # AlignedFace: 64x64 crop, 68 landmarks, yaw, mirroring
    gen = nfgan.load_model("runs/my_run")         # a run folder, checkpoint or exported model file

Names are imported on first use, so ``import nfgan`` stays light.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "Normalizer": "nfgan.inference.normalizer",
    "PhotoResult": "nfgan.inference.normalizer",
    "default_model_path": "nfgan.inference.normalizer",
    "nfgan_model_path": "nfgan.inference.normalizer",
    "load_model": "nfgan.inference.generator",
    "export_model": "nfgan.inference.generator",
    "align_face": "nfgan.data.align",
    "AlignedFace": "nfgan.data.align",
    "FaceAligner": "nfgan.data.align",
    "pose_from_yaw": "nfgan.data.align",
    "PreparedDataset": "nfgan.data.dataset",
    "load_config": "nfgan.training.config",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nfgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
