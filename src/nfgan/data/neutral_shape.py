"""Geometric neutralisation: a frontal face warped so that its landmarks sit where the same person's neutral face
would have them, before the generator reads it (config ``data.neutralize_shape``).

A U-Net normaliser copies its input's layout through its skip connections, so an open mouth, raised brows or a
dropped jaw reach the output unless a loss pulls them out. Landmark frontalisation (``nfgan.data.frontalize``)
hands the generator turned faces in the frontal layout; this hands it expressive faces in a neutral layout,
keeping the person's own face shape:

1. **Frame.** A similarity transform takes the face's 8 expression-stable landmarks (:data:`STABLE`: nose
   bridge and tip, inner and outer eye corners) onto their place in :data:`REFERENCE` (the frontal template
   ``FRONTAL68`` at 64 px), so the map sees every face at one scale and position.
2. **Predict.** In that frame the neutral landmarks are ``x + (x - mean) W + bias`` (136-d vectors): a ridge
   regression of the displacement from a face's landmarks to the same person's neutral frontal landmarks
   (aligned onto the face by the stable points), fit on pairs of training people (:func:`fit`). A neutral face
   moves little (its displacement is predicted near zero), an open mouth closes, raised brows come down.
3. **Warp** (``data.neutralize_mode: warp``, the default). The predicted landmarks, taken back into the crop, are
   the destination of :func:`nfgan.data.frontalize.landmark_warp` (the warp synthetic expressions use, in
   reverse): the face inside a fence around the landmarks moves, the background does not. Teeth and wrinkles
   stay; the generator removes them.

   **Or re-frame** (``data.neutralize_mode: frame``, :func:`reframe`): the crop is only moved, turned and scaled,
   by the similarity that takes the predicted neutral landmarks onto the alignment template, as ``nfgan prepare``
   frames a neutral face. Alignment fits the template to 49 points that include the mouth and brows, so a face
   whose mouth opens is framed smaller (a surprised face by 8-16 % in the crop, ``docs/experiments.md``, round
   21); re-framing undoes that and leaves the face's shape as it is (a neutral face barely moves).
   ``warp_frame`` does both: the warp, then the re-framing of the warped face (its landmarks are the predicted
   ones), so the face gets the neutral shape and the neutral face's framing.

   **Only where the framing is off** (``data.neutralize_threshold`` t > 0, a fraction of the crop side): the
   re-framing of a face moves the template's 49 points by a mean distance d (:func:`framing_shift`); a face with
   d <= t is left exactly as it is, and any other is warped and/or re-framed by the share 1 - t / d of the full
   step (:func:`strength`: the landmarks go that share of the way to the predicted ones, the similarity is that
   share of the way from the identity). With t the largest d of any neutral training face, no neutral face
   moves and a surprised face (d about 5 % of the side) gets most of the step.

The shipped map (``nfgan/assets/neutral_shape.safetensors``, made by ``tools/fit_neutral_shape.py``) was fit on
the training people of London, CK+ ``with_neutral/``, JAFFE and Yale and on the Surrey Face Model's synthetic
expressions of London's and canada's training people (``nfgan synth-expressions``); its ridge weight was chosen
on the validation people. It is derived from research-only data (CK+, JAFFE, Yale, the SFM): models that use it
are for non-commercial research. Turned faces are not neutralised (the map was fit on frontal faces; with
``data.frontalize_inputs`` they are warped onto the frontal template anyway).
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nfgan.data.align import INNER49, apply_transform, invert_transform, similarity_transform, template_points
from nfgan.data.frontalize import FRONTAL68, landmark_warp, similarity_warp

#: landmarks an expression barely moves: nose bridge and tip (27-30), eye corners (36, 39, 42, 45)
STABLE = (27, 28, 29, 30, 36, 39, 42, 45)
#: the frame the map works in: the frontal template at 64 px (crop pixels)
REFERENCE = FRONTAL68 * 63.0
ASSET = "neutral_shape.safetensors"
#: the expression of a pair's target (Yale's neutral_glasses, neutral_leftlight, ... are inputs like any other)
NEUTRAL_LIKE = ("neutral",)
#: what step 3 does with the predicted landmarks (``data.neutralize_mode``): warp the face onto them, or only
#: re-frame the crop as the predicted neutral face would be framed
MODES = ("warp", "frame", "warp_frame")


class NeutralShapeError(ValueError):
    pass


@dataclass(frozen=True)
class NeutralShape:
    """The learned map of step 2: ``mean`` (136), ``weights`` (136 x 136), ``bias`` (136), in :data:`REFERENCE`
    pixels; ``info``: how it was fit (sources, pair counts, ridge weight)."""

    mean: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    info: dict

    @classmethod
    def identity(cls) -> "NeutralShape":
        """The map that predicts every face's own landmarks (no expression is taken out): with ``frame`` mode and a
        threshold, step 3 only re-aligns faces whose framing is off (a crop another aligner made, moved, turned or
        scaled against ``nfgan prepare``'s template), leaves faces framed as ``nfgan prepare`` frames them exactly
        as they are, and uses no data at all (a model with it keeps its own licence). ``--neutral-shape-map
        identity`` of ``tools/set_input_rule.py`` and ``tools/export_default_model.py``."""
        zero = np.zeros(136)
        return cls(zero, np.zeros((136, 136)), zero.copy(),
                   {"kind": "identity", "note": "predicts each face's own landmarks: re-framing only, fit on no data"})

    @staticmethod
    def frame(landmarks: np.ndarray) -> np.ndarray:
        """The 2 x 3 similarity taking a face's stable landmarks onto :data:`REFERENCE` (step 1)."""
        return similarity_transform(np.asarray(landmarks, np.float64)[list(STABLE)], REFERENCE[list(STABLE)])

    def predict_framed(self, framed: np.ndarray) -> np.ndarray:
        """``N x 68 x 2`` landmarks in the reference frame -> their predicted neutral positions (same frame)."""
        x = np.asarray(framed, np.float64).reshape(len(framed), 136)
        return (x + (x - self.mean) @ self.weights + self.bias).reshape(-1, 68, 2)

    def predict(self, landmarks: np.ndarray) -> np.ndarray:
        """One face's 68 landmarks (crop pixels) -> where its neutral face would have them (crop pixels)."""
        lm = np.asarray(landmarks, np.float64)
        if lm.shape != (68, 2) or not np.isfinite(lm).all():
            raise NeutralShapeError("geometric neutralisation needs 68 finite landmarks")
        m = self.frame(lm)
        return apply_transform(invert_transform(m), self.predict_framed(apply_transform(m, lm)[None])[0])

    def as_record(self) -> dict:
        """The map as JSON-able lists (what a model file or ONNX graph embeds; :meth:`from_record` reads it)."""
        return {"mean": self.mean.tolist(), "weights": self.weights.tolist(), "bias": self.bias.tolist(),
                "info": self.info}

    @classmethod
    def from_record(cls, record: dict, source: str = "model file") -> "NeutralShape":
        try:
            arrays = {k: np.asarray(record[k], dtype=np.float64) for k in ("mean", "weights", "bias")}
        except (KeyError, TypeError, ValueError) as e:
            raise NeutralShapeError(f"{source}: the embedded neutral-shape map is damaged ({e})") from None
        return cls._checked(arrays, dict(record.get("info") or {}), source)

    @classmethod
    def _checked(cls, arrays: dict, info: dict, source) -> "NeutralShape":
        shapes = {"mean": (136,), "weights": (136, 136), "bias": (136,)}
        for k, shape in shapes.items():
            if k not in arrays or arrays[k].shape != shape or not np.isfinite(arrays[k]).all():
                raise NeutralShapeError(f"{source}: not a neutral-shape map (tensor {k!r} missing, not {shape} "
                                        "or not finite)")
        return cls(arrays["mean"], arrays["weights"], arrays["bias"], info)

    def save(self, path: str | Path) -> None:
        from nfgan.weights import write_array_file

        write_array_file(path, {k: getattr(self, k) for k in ("mean", "weights", "bias")}, self.info)

    @classmethod
    def load(cls, path: str | Path) -> "NeutralShape":
        """A map :meth:`save` wrote (safetensors: arrays only, nothing is unpickled)."""
        from nfgan.weights import read_array_file

        arrays, info = read_array_file(path, "neutral-shape map", NeutralShapeError)
        return cls._checked(arrays, info, Path(path))


@functools.lru_cache(maxsize=1)
def shipped() -> NeutralShape:
    """The map nfgan ships (module docstring)."""
    from nfgan.weights import assets_dir

    return NeutralShape.load(assets_dir() / ASSET)


def neutralize(face: np.ndarray, landmarks: np.ndarray, shape: NeutralShape | None = None,
               share: float = 1.0) -> np.ndarray:
    """One aligned gray face and its 68 landmarks -> uint8 face with the predicted neutral geometry (steps 1-3);
    ``share`` < 1 (:func:`strength`): the landmarks go only that share of the way to the predicted ones."""
    face = np.asarray(face)
    if face.ndim != 2 or face.shape[0] != face.shape[1]:
        raise NeutralShapeError(f"expected a square gray aligned face, got shape {face.shape}")
    shape = shape or shipped()
    lm = np.asarray(landmarks, np.float64)
    predicted = shape.predict(lm)
    if share != 1.0:
        predicted = lm + share * (predicted - lm)
    # kept a pixel inside the crop: a point on its edge next to the fixed border points can leave slivers of the
    # crop outside every triangle of the warp mesh
    dst = np.clip(predicted, 1, face.shape[-1] - 2)
    try:
        out = landmark_warp(face, lm, dst)
    except ValueError as e:    # a degenerate mesh (landmarks far outside the crop)
        raise NeutralShapeError(f"cannot neutralise this face: {e}") from None
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def reframe_transform(landmarks: np.ndarray, size: int, shape: NeutralShape | None = None) -> np.ndarray:
    """The 2 x 3 similarity (crop -> re-framed crop) that takes the face's predicted neutral landmarks onto the
    alignment template, fit on the 49 points ``nfgan prepare`` fits (:data:`nfgan.data.align.INNER49`)."""
    shape = shape or shipped()
    predicted = shape.predict(landmarks)
    return similarity_transform(predicted[list(INNER49)], template_points(size))


def framing_shift(landmarks: np.ndarray, size: int, shape: NeutralShape | None = None) -> float:
    """How far :func:`reframe_transform` moves the alignment template's 49 points: their mean displacement as a
    fraction of the crop side (about 0.003 for a neutral face, 0.05 for a surprised one)."""
    points = template_points(size)
    moved = apply_transform(reframe_transform(landmarks, size, shape), points)
    return float(np.linalg.norm(moved - points, axis=1).mean() / size)


def strength(landmarks: np.ndarray, size: int, shape: NeutralShape | None = None, threshold: float = 0.0) -> float:
    """The share of step 3 a face gets with ``data.neutralize_threshold`` = ``threshold`` (module docstring):
    1 without a threshold, 0 where :func:`framing_shift` is at most the threshold, else 1 - threshold / shift."""
    if threshold <= 0:
        return 1.0
    shift = framing_shift(landmarks, size, shape)
    return 0.0 if shift <= threshold else 1.0 - threshold / shift


def _partial(matrix: np.ndarray, share: float) -> np.ndarray:
    """The 2 x 3 transform ``share`` of the way from the identity to ``matrix`` (``matrix`` itself at 1)."""
    if share == 1.0:
        return matrix
    return np.eye(2, 3) + share * (np.asarray(matrix, np.float64) - np.eye(2, 3))


def reframe(face: np.ndarray, landmarks: np.ndarray, shape: NeutralShape | None = None,
            share: float = 1.0) -> np.ndarray:
    """One aligned gray face and its 68 landmarks -> uint8 face framed as its predicted neutral face would be
    (a similarity: moved, turned, scaled; bilinear, edges replicated; ``share`` < 1: that share of the way).
    Step 3's ``frame`` mode."""
    face = np.asarray(face)
    if face.ndim != 2 or face.shape[0] != face.shape[1]:
        raise NeutralShapeError(f"expected a square gray aligned face, got shape {face.shape}")
    return similarity_warp(face, _partial(reframe_transform(landmarks, face.shape[0], shape), share))


def neutralize_reframe(face: np.ndarray, landmarks: np.ndarray, shape: NeutralShape | None = None,
                       share: float = 1.0) -> np.ndarray:
    """:func:`neutralize`, then the warped face (whose landmarks are the predicted neutral ones) re-framed onto the
    alignment template as :func:`reframe` does (both ``share`` of the way). Step 3's ``warp_frame`` mode."""
    warped = neutralize(face, landmarks, shape, share)
    return similarity_warp(warped, _partial(reframe_transform(landmarks, warped.shape[0], shape), share))


def neutralize_batch(faces: np.ndarray, landmarks: np.ndarray, shape: NeutralShape | None = None,
                     mode: str = "warp", threshold: float = 0.0) -> np.ndarray:
    """:func:`neutralize` (``mode="warp"``), :func:`reframe` (``"frame"``) or :func:`neutralize_reframe`
    (``"warp_frame"``) for ``N x S x S`` faces and ``N x 68 x 2`` landmarks, each face with its
    :func:`strength` under ``threshold`` (0: the full step for every face; a face of strength 0 is kept as it
    is); a face that cannot be warped (:class:`NeutralShapeError`) is kept as it is, with a warning."""
    if mode not in MODES:
        raise ValueError(f"neutralisation mode {mode!r}: expected one of {', '.join(MODES)}")
    step = {"warp": neutralize, "frame": reframe, "warp_frame": neutralize_reframe}[mode]
    shape = shape or shipped()
    out = np.array(faces, dtype=np.uint8, copy=True)
    failed = []
    for i, (f, lm) in enumerate(zip(faces, landmarks)):
        try:
            share = strength(lm, out.shape[-1], shape, threshold)
            if share > 0:
                out[i] = step(f, lm, shape, share)
        except NeutralShapeError:
            failed.append(i)
    if failed:
        warnings.warn(f"{len(failed)} face(s) could not be neutralised (rows {failed[:5]}: landmarks far outside "
                      "the crop) and go to the generator as they are")
    return out


# -- fitting (tools/fit_neutral_shape.py)

def pair_landmarks(face: np.ndarray, neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One training pair in the reference frame: (the face's landmarks, the neutral face's landmarks aligned onto
    them by the stable points)."""
    face, neutral = np.asarray(face, np.float64), np.asarray(neutral, np.float64)
    x = apply_transform(NeutralShape.frame(face), face)
    y = apply_transform(similarity_transform(neutral[list(STABLE)], x[list(STABLE)]), neutral)
    return x, y


def collect_pairs(root: str | Path, subjects: Iterable[str]) -> list[dict]:
    """Pairs of a prepared folder's frontal faces of ``subjects``: each face with the same person's first frontal
    neutral face (another one for a neutral face when there is one, else itself; a synthetic face with the
    neutral face it was made from). Returns dicts with ``x``, ``y`` (reference frame), ``expression``, ``id``."""
    from nfgan.data.dataset import PreparedDataset

    ds = PreparedDataset(root)
    if ds.landmarks is None:
        raise NeutralShapeError(f"{root}: no landmarks.npy (written by nfgan prepare)")
    rows = ds.records
    keep = {str(s) for s in subjects}
    lm = np.asarray(ds.landmarks, np.float64)
    ok = np.isfinite(lm).all(axis=(1, 2))
    neutral: dict[str, list[int]] = {}
    by_id = {r["id"]: i for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        if r["subject"] in keep and r["pose"] == "frontal" and r["expression"] in NEUTRAL_LIKE and ok[i]:
            neutral.setdefault(r["subject"], []).append(i)
    out = []
    for i, r in enumerate(rows):
        if r["subject"] not in neutral or r["pose"] != "frontal" or not ok[i]:
            continue
        group = neutral[r["subject"]]
        if r.get("synthetic") == "1":
            j = by_id.get(r.get("sfm_source_id", ""), group[0])
        elif r["expression"] in NEUTRAL_LIKE:
            others = [j for j in group if j != i]
            j = others[0] if others else i
        else:
            j = group[0]
        x, y = pair_landmarks(lm[i], lm[j])
        out.append({"x": x, "y": y, "expression": r["expression"], "id": r["id"]})
    return out


def fit(pairs: Sequence[dict], ridge: float, info: dict | None = None) -> NeutralShape:
    """Ridge regression of step 2 on :func:`collect_pairs`' pairs."""
    if not len(pairs):
        raise NeutralShapeError("no pairs to fit the neutral-shape map on")
    x = np.stack([p["x"].reshape(136) for p in pairs])
    d = np.stack([p["y"].reshape(136) for p in pairs]) - x
    mean = x.mean(0)
    a = x - mean
    bias = d.mean(0)
    weights = np.linalg.solve(a.T @ a + float(ridge) * np.eye(136), a.T @ (d - bias))
    return NeutralShape(mean, weights, bias, {"ridge": float(ridge), "pairs": len(pairs), **(info or {})})


def landmark_error(shape: NeutralShape | None, pairs: Sequence[dict]) -> np.ndarray:
    """Per pair, the mean distance (reference px) of the predicted neutral landmarks (``shape`` None: the face's
    own, unchanged) to the real ones."""
    x = np.stack([p["x"] for p in pairs])
    y = np.stack([p["y"] for p in pairs])
    pred = x if shape is None else shape.predict_framed(x)
    return np.linalg.norm(pred - y, axis=2).mean(1)
