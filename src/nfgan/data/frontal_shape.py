"""Own-shape frontalisation: a turned face warped onto a prediction of the same person's frontal landmarks.

Landmark frontalisation (``nfgan.data.frontalize``) warps every turned face onto one layout, the mean frontal
face :data:`~nfgan.data.frontalize.FRONTAL68`, so a turned face reaches the generator with the mean face's eye
spacing, nose length, mouth height and face width, and the U-Net's skip connections carry that layout into the
output; a frontal face keeps its own. With ``data.frontalize_shape: own`` (or a model file whose input rule says
so) the destination of the warp is instead where this person's frontal neutral face would have its landmarks:

1. **Predict.** The turned face's 68 landmarks, as the generator sees them (mirrored where the input rule
   mirrors, so the far side is on the right; crop pixels, scaled to a 64 px crop), map to its frontal landmarks
   by ridge regression, ``(x - mean_in) W + mean_out`` (136-d vectors), fit on pairs of training people: each of
   their turned faces with their own first frontal neutral face (:func:`collect_pairs`, :func:`fit`).
2. **Make symmetric.** The prediction is averaged with its mirror image, so the mirror fill about the crop's
   midline (step 2 of frontalisation) still lands on the face's own midline.
3. **Warp** onto it as onto the template (same mesh points, fixed crop border, mirror fill). A prediction with a
   warped point outside the crop (a face far from anything the map saw) falls back to the template, and so does a face
   of a pose the map was not fit on (the shipped map: 3/4 faces only, so profiles keep the template).

The shipped map (``nfgan/assets/frontal_shape.safetensors``, :func:`shipped`, made by
``tools/fit_frontal_shape.py``) was fit on London's training people's 3/4 faces (CC BY 4.0 data), its ridge weight
chosen on the validation people's landmark error. On London's validation people it predicts the frontal
landmarks with 0.62 px mean error against the template's 1.00 px. No shipped model uses it
(``docs/experiments.md``, rounds 41-42d): read at inference by the default normaliser it raised identity on
London's validation 3/4 photos and lowered it on turned faces of other people (CK+, JAFFE, Yale, canada, rendered
by the Surrey Face Model), whose landmarks it predicts from London's proportions.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from nfgan.data.align import mirror_landmarks, occluded_left

ASSET = "frontal_shape.safetensors"
#: the crop the map works in (landmarks of other crop sizes are scaled to it and back)
REFERENCE_SIZE = 64
#: what a turned face is warped onto (``data.frontalize_shape``): the mean frontal layout, or its own prediction
SHAPES = ("template", "own")


class FrontalShapeError(ValueError):
    pass


def symmetric(landmarks: np.ndarray, size: int = REFERENCE_SIZE) -> np.ndarray:
    """68 landmarks averaged with their mirror image (about the crop's midline, indices swapped)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return 0.5 * (lm + mirror_landmarks(lm, size))


@dataclass(frozen=True)
class FrontalShape:
    """The map of step 1: ``mean_in`` (136), ``weights`` (136 x 136), ``mean_out`` (136), in pixels of a
    :data:`REFERENCE_SIZE` crop; ``info``: how it was fit (sources, pair counts, ridge weight, errors)."""

    mean_in: np.ndarray
    weights: np.ndarray
    mean_out: np.ndarray
    info: dict

    @property
    def poses(self) -> tuple[str, ...]:
        """The pose kinds the map was fit on (``info["poses"]``, e.g. ``("3quarter",)``; empty: every turned pose)."""
        return tuple(str(p) for p in self.info.get("poses") or ())

    def applies_to(self, pose: str) -> bool:
        """Whether a face of this pose label is warped onto its own predicted shape (else onto the template)."""
        return not self.poses or any(p in str(pose) for p in self.poses)

    def predict(self, landmarks: np.ndarray, size: int = REFERENCE_SIZE) -> np.ndarray:
        """A turned face's 68 landmarks (crop pixels of a ``size`` crop, as the generator sees them) -> the
        predicted frontal landmarks, symmetric (same crop)."""
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.shape != (68, 2) or not np.isfinite(lm).all():
            raise FrontalShapeError("own-shape frontalisation needs 68 finite landmarks")
        scale = (REFERENCE_SIZE - 1) / (size - 1)
        return symmetric(self.regress(lm.reshape(1, 136) * scale).reshape(68, 2)) / scale

    def regress(self, x: np.ndarray) -> np.ndarray:
        """The ridge prediction itself: ``N x 136`` landmarks (reference crop) -> ``N x 136``, not yet symmetric."""
        return (np.asarray(x, dtype=np.float64) - self.mean_in) @ self.weights + self.mean_out

    def destination(self, landmarks: np.ndarray, size: int = REFERENCE_SIZE) -> np.ndarray | None:
        """:meth:`predict`, or ``None`` where a predicted point the warp uses (all but the jaw contour,
        ``nfgan.data.frontalize.WARP_POINTS``) lies outside the crop (the warp then uses the template)."""
        from nfgan.data.frontalize import WARP_POINTS

        dst = self.predict(landmarks, size)
        used = dst[list(WARP_POINTS)]
        return dst if np.isfinite(used).all() and (used >= 0).all() and (used <= size - 1).all() else None

    def as_record(self) -> dict:
        """The map as JSON-able lists (what a model file or ONNX graph embeds; :meth:`from_record` reads it)."""
        return {"mean_in": self.mean_in.tolist(), "weights": self.weights.tolist(), "mean_out": self.mean_out.tolist(),
                "info": self.info}

    @classmethod
    def from_record(cls, record: dict, source: str = "model file") -> "FrontalShape":
        try:
            arrays = {k: np.asarray(record[k], dtype=np.float64) for k in ("mean_in", "weights", "mean_out")}
        except (KeyError, TypeError, ValueError) as e:
            raise FrontalShapeError(f"{source}: the embedded frontal-shape map is damaged ({e})") from None
        return cls._checked(arrays, dict(record.get("info") or {}), source)

    @classmethod
    def _checked(cls, arrays: dict, info: dict, source) -> "FrontalShape":
        shapes = {"mean_in": (136,), "weights": (136, 136), "mean_out": (136,)}
        for k, shape in shapes.items():
            if k not in arrays or arrays[k].shape != shape or not np.isfinite(arrays[k]).all():
                raise FrontalShapeError(f"{source}: not a frontal-shape map (tensor {k!r} missing, not {shape} "
                                        "or not finite)")
        return cls(arrays["mean_in"], arrays["weights"], arrays["mean_out"], info)

    def save(self, path: str | Path) -> None:
        from nfgan.weights import write_array_file

        write_array_file(path, {k: getattr(self, k) for k in ("mean_in", "weights", "mean_out")}, self.info)

    @classmethod
    def load(cls, path: str | Path) -> "FrontalShape":
        """A map :meth:`save` wrote (safetensors: arrays only, nothing is unpickled)."""
        from nfgan.weights import read_array_file

        arrays, info = read_array_file(path, "frontal-shape map", FrontalShapeError)
        return cls._checked(arrays, info, Path(path))


@functools.lru_cache(maxsize=1)
def shipped() -> FrontalShape:
    """The map nfgan ships (module docstring)."""
    from nfgan.weights import assets_dir

    return FrontalShape.load(assets_dir() / ASSET)


def collect_pairs(root: str | Path, subjects: Iterable[str], poses: Iterable[str] = ("3quarter",)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of a prepared folder's turned faces of ``subjects`` whose pose label contains one of ``poses`` (with
    landmarks): ``x`` (``N x 136``, each face's landmarks as the generator sees them: mirrored where its occluded
    side is on the left) and ``y`` (``N x 136``, the same person's first frontal neutral face's landmarks, made
    symmetric). People without a frontal neutral face give no pairs. Landmarks are scaled to a
    :data:`REFERENCE_SIZE` crop."""
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.frontalize import is_turned

    poses = tuple(poses)

    ds = PreparedDataset(root)
    if ds.landmarks is None:
        raise FrontalShapeError(f"{root}: no landmarks.npy (written by nfgan prepare)")
    size = int(ds.size)
    scale = (REFERENCE_SIZE - 1) / (size - 1)
    pose, expr = ds.column("pose"), ds.column("expression")
    mirrored = occluded_left(list(pose), ds.column("flipped"))
    lm = np.asarray(ds.landmarks, dtype=np.float64) * scale
    ok = np.isfinite(lm).all(axis=(1, 2))
    rows = ds.by_subject()
    x, y = [], []
    for s in subjects:
        mine = rows.get(str(s), [])
        ref = [i for i in mine if pose[i] == "frontal" and expr[i] == "neutral" and ok[i]]
        if not ref:
            continue
        target = symmetric(lm[ref[0]]).reshape(136)
        for i in mine:
            if is_turned(pose[i]) and any(p in pose[i] for p in poses) and ok[i]:
                seen = mirror_landmarks(lm[i], REFERENCE_SIZE) if mirrored[i] else lm[i]
                x.append(seen.reshape(136))
                y.append(target)
    return np.asarray(x, dtype=np.float64).reshape(-1, 136), np.asarray(y, dtype=np.float64).reshape(-1, 136)


def fit(x: np.ndarray, y: np.ndarray, ridge: float, info: dict | None = None) -> FrontalShape:
    """Ridge regression of step 1 on :func:`collect_pairs`' pairs."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not len(x):
        raise FrontalShapeError("no pairs to fit the frontal-shape map on")
    mean_in, mean_out = x.mean(0), y.mean(0)
    a = x - mean_in
    weights = np.linalg.solve(a.T @ a + float(ridge) * np.eye(136), a.T @ (y - mean_out))
    return FrontalShape(mean_in, weights, mean_out, {"ridge": float(ridge), "pairs": len(x), **(info or {})})


def landmark_error(shape: FrontalShape | None, x: np.ndarray, y: np.ndarray) -> float:
    """Mean distance (reference px) of the predicted frontal landmarks (``shape`` None: the template
    ``FRONTAL68``) to the real ones, over all pairs and points (the prediction unsymmetrised, as the ridge fits)."""
    from nfgan.data.frontalize import FRONTAL68

    y = np.asarray(y, dtype=np.float64)
    if shape is None:
        pred = np.tile((FRONTAL68 * (REFERENCE_SIZE - 1)).reshape(136), (len(y), 1))
    else:
        pred = shape.regress(x)
    return float(np.linalg.norm((pred - y).reshape(len(y), 68, 2), axis=2).mean())
