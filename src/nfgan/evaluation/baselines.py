"""Network-free normalisers that ``nfgan evaluate`` scores beside the trained models.

Name one in place of a run folder: ``nfgan evaluate hassner=frontalize3d ...``.

* ``frontalize3d`` (or ``frontalize3d:SFM_FOLDER``): 3D-model frontalisation with the Surrey Face Model
  (:mod:`nfgan.data.frontalize3d`: Hassner-style rendering from the front with soft symmetry, the fitted
  expression left out of the geometry). Needs eos-py (``pip install 'nfgan[synth]'``) and the SFM folder
  (``$NFGAN_SFM``, else ``../shared/models/sfm``). A face it cannot fit is returned as it came and counted in
  ``failures``.
* ``frontalize2d``: nfgan's 2D landmark frontalisation alone (:mod:`nfgan.data.frontalize`, what the default
  normaliser does to a turned face before its network), frontal inputs unchanged.

They take the evaluation set's stored crops and landmarks as they are (a crop that ``nfgan prepare`` mirrored
comes with landmarks of the mirrored crop).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

BASELINES = ("frontalize3d", "frontalize2d")


def is_baseline(spec: str) -> bool:
    return str(spec) in BASELINES or str(spec).startswith("frontalize3d:")


class Baseline:
    """The part of :class:`nfgan.inference.generator.Generator` that evaluation uses."""

    kind = "baseline"

    def __init__(self, spec: str, size: int = 64):
        self.spec = str(spec)
        method, _, sfm = self.spec.partition(":")
        if method not in BASELINES:
            raise ValueError(f"{spec}: not a baseline ({', '.join(BASELINES)}, or frontalize3d:SFM_FOLDER)")
        self.method = method
        self.sfm = sfm or None
        self.failures: list[str] = []
        self.info = {"kind": self.kind, "model": {"image_size": size}, "source": self.spec, "step": None}
        if method == "frontalize3d":     # load the SFM now: a missing model or eos-py is an error before any work
            from nfgan.data.frontalize3d import frontalizer3d

            frontalizer3d(self.sfm, size)

    def to(self, device) -> "Baseline":
        return self

    def first_layer_filters(self):
        return None

    def normalize(self, images_u8: np.ndarray, poses: Sequence[str] | None = None, flipped: Sequence | None = None,
                  progress: bool = False, desc: str = "normalize", landmarks: np.ndarray | None = None,
                  **_) -> np.ndarray:
        images_u8 = np.asarray(images_u8)
        if landmarks is None:
            raise ValueError(f"{self.method}: needs the faces' landmarks (landmarks.npy of the prepared folder)")
        poses = list(poses) if poses is not None else ["frontal"] * len(images_u8)
        if self.method == "frontalize2d":
            from nfgan.data.frontalize import frontalize_batch

            return frontalize_batch(images_u8, np.asarray(landmarks), poses)
        from nfgan.data.frontalize3d import frontalize3d_batch

        out, errors = frontalize3d_batch(images_u8, landmarks, poses, self.sfm, progress, desc)
        self.failures = [f"input {i}: {e}" for i, e in enumerate(errors) if e is not None]
        return out
