"""Face alignment: detect, find 68 landmarks, warp the face onto a canonical 49-point template.

Pipeline (paper Sec. 5.1: "49 landmarks, alignment, 64x64"):

1. **Detect** with dlib's HOG detector (``dlib.get_frontal_face_detector``) or, optionally, its CNN/MMOD
   detector or the ported BlazeFace (``nfgan.data.detect``; its boxes are mapped onto HOG-like boxes with
   ``HOG_LIKE_BOX`` so that the landmark model sees the framing it was trained with). Large photos are
   detected on a copy whose longer side is at most ``work_side`` pixels; for dlib's detectors small ones are
   upsampled by the detector's pyramid (``upsample`` 1 or 2) when nothing is found at scale 1.
2. **Landmarks**: dlib's 68-point shape predictor (iBUG-300W numbering).
3. **Similarity transform** (rotation + uniform scale + translation, no reflection) fitted by least squares
   (Umeyama 1991) from the paper's 49 inner points - the 68 minus the jaw line 0-16 and the two inner mouth
   corners 60 and 64 - onto ``TEMPLATE49``. This removes in-plane rotation, scale and position.
4. **Warp** the gray photo with that transform: Lanczos pre-downscaling of the face region to twice the crop's
   resolution (anti-aliasing), then a bicubic affine warp to ``size x size`` (64 by default).
5. **Yaw** estimate from the landmarks, and the **flip rule** of paper Sec. 4.2: mirror the crop so that the
   occluded half of the face is on the RIGHT of the image (``flipped`` records it; landmarks are mirrored
   and re-indexed so index i keeps its meaning, e.g. 36 stays the outer corner of the image-left eye).

Coordinates: landmark and transform coordinates are dlib's pixel-index coordinates (the centre of pixel
(row r, col c) is at (x=c, y=r)). ``AlignedFace.transform`` is the 2x3 matrix ``A`` with
``crop_xy = A[:, :2] @ src_xy + A[:, 2]`` mapping the SOURCE photo (as given, after EXIF rotation) into the
final crop (after the flip, when ``flipped``).

Template: ``TEMPLATE49`` holds the 49 canonical points as fractions of the crop's pixel span: the crop pixel
index of point k is ``TEMPLATE49[k] * (size - 1)``. It reproduces the framing of dlib's own face chips with
padding 0.25 (``dlib.get_face_chip_details(shape, size, 0.25)``), which is what the identity network ported
from dlib's ResNet expects. It was derived by :func:`derive_template` - mapping the landmarks of the 102
London frontal neutral faces into their dlib chips and averaging - and is frozen here so that alignment does
not depend on data at run time (see docs/preparation.md).

Yaw sign convention: ``yaw_deg > 0`` when the nose points to the image's RIGHT, ``< 0`` when it points to the
image's LEFT (the London set's "left" views). Calibrated on London: frontal ~0, 3/4 views ~ +-40.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from PIL import Image

# ---------------------------------------------------------------------------------------------------------
# Landmark index sets

#: The paper's 49 points: 68-point iBUG numbering minus the jaw (0-16) and the inner mouth corners (60, 64).
INNER49 = tuple(i for i in range(17, 68) if i not in (60, 64))


def _mirror_permutation() -> tuple[int, ...]:
    """Index permutation that maps a mirrored 68-point shape back onto iBUG's (image-side based) numbering."""
    pairs = [(i, 16 - i) for i in range(17)]                          # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                     # brows
    pairs += [(27, 27), (28, 28), (29, 29), (30, 30)]                 # nose bridge
    pairs += [(31 + i, 35 - i) for i in range(5)]                     # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + i, 54 - i) for i in range(7)]                     # outer lip, top
    pairs += [(55, 59), (56, 58), (57, 57)]                           # outer lip, bottom
    pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]       # inner lip
    perm = [-1] * 68
    for a, b in pairs:
        perm[a], perm[b] = b, a
    assert sorted(perm) == list(range(68))
    return tuple(perm)


#: ``mirrored[i] = flip(shape[MIRROR68[i]])`` keeps each index's anatomical meaning after a horizontal flip.
MIRROR68 = _mirror_permutation()

#: Canonical 49-point template (x, y) as fractions of the crop's pixel span (index = value * (size - 1)),
#: in INNER49 order; derived with :func:`derive_template` (102 London frontal neutral faces, dlib chips,
#: padding 0.25). Filled in below.
TEMPLATE49 = np.array([
    (0.1581, 0.2477), (0.2071, 0.1915), (0.2813, 0.1693), (0.3585, 0.1766), (0.4321, 0.2037),
    (0.5679, 0.2037), (0.6415, 0.1766), (0.7187, 0.1693), (0.7929, 0.1915), (0.8419, 0.2477),
    (0.5000, 0.2912), (0.5000, 0.3559), (0.5000, 0.4193), (0.5000, 0.4858), (0.4265, 0.5497),
    (0.4619, 0.5605), (0.5000, 0.5691), (0.5381, 0.5605), (0.5735, 0.5497), (0.2477, 0.3184),
    (0.2913, 0.2867), (0.3462, 0.2869), (0.3940, 0.3229), (0.3437, 0.3361), (0.2887, 0.3381),
    (0.6060, 0.3229), (0.6538, 0.2869), (0.7087, 0.2867), (0.7523, 0.3184), (0.7113, 0.3381),
    (0.6563, 0.3361), (0.3545, 0.7052), (0.4096, 0.6682), (0.4617, 0.6480), (0.5000, 0.6580),
    (0.5383, 0.6480), (0.5904, 0.6682), (0.6455, 0.7052), (0.5915, 0.7373), (0.5409, 0.7497),
    (0.5000, 0.7530), (0.4591, 0.7497), (0.4085, 0.7373), (0.4612, 0.6914), (0.5000, 0.6940),
    (0.5388, 0.6914), (0.5390, 0.6946), (0.5000, 0.6984), (0.4610, 0.6946),
], dtype=np.float64)

DEFAULT_PADDING = 0.25


class AlignError(ValueError):
    """A face could not be aligned. ``reason`` is a short fixed phrase (used in prepare_report.csv)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class AlignedFace:
    """One aligned face. See the module docstring for the coordinate conventions."""

    crop: np.ndarray                 # uint8 gray, size x size
    landmarks68: np.ndarray          # float32 68 x 2 in crop pixel coordinates (NaN when method == "resize")
    transform: np.ndarray            # float64 2 x 3 similarity, source -> crop
    yaw_deg: float                   # yaw of the SOURCE photo (sign: module docstring); NaN if unknown
    flipped: bool                    # the crop is mirrored w.r.t. the source
    box: tuple[float, float, float, float]  # face box (left, top, right, bottom) in source pixels
    method: str = "landmarks"        # "landmarks" (full alignment), "resize" (pre-cropped fallback) or "crop"
    #                                  (a model-sized crop kept as it was: FaceAligner.align_crop)
    fit_error: float = float("nan")  # RMS template-fit residual, as a fraction of the crop size
    n_faces: int = 1                 # faces the detector found
    extra: dict = field(default_factory=dict)

    def source_landmarks(self) -> np.ndarray:
        """The 68 landmarks in SOURCE pixel coordinates, in iBUG order for the source image (the crop's
        mirroring, if any, is undone)."""
        lm = np.asarray(self.landmarks68, dtype=np.float64)
        if self.flipped:
            lm = lm[list(MIRROR68)]
        return apply_transform(invert_transform(self.transform), lm)


# ---------------------------------------------------------------------------------------------------------
# Geometry


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; never a reflection) mapping ``src``
    (N x 2) onto ``dst`` (N x 2), after Umeyama (1991). Returns the 2 x 3 matrix ``[s R | t]``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching N x 2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are all at one place")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:      # would be a reflection: flip the weakest axis
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / var_s
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine matrix to N x 2 points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    a = np.linalg.inv(matrix[:, :2])
    return np.concatenate([a, -(a @ matrix[:, 2])[:, None]], axis=1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer o inner`` for 2 x 3 affine matrices (apply ``inner`` first)."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], 1)


def transform_scale(matrix: np.ndarray) -> float:
    """Uniform scale factor of a similarity matrix (crop pixels per source pixel)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def mirror_matrix(size: int) -> np.ndarray:
    """Horizontal mirror of a ``size``-wide image in pixel-index coordinates: x -> size - 1 - x."""
    return np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]])


def mirror_landmarks(landmarks68: np.ndarray, size: int) -> np.ndarray:
    """Landmarks of the mirrored crop, re-indexed so each index keeps its meaning (see ``MIRROR68``)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    out = lm[list(MIRROR68)].copy()
    out[:, 0] = size - 1 - out[:, 0]
    return out


def template_points(size: int, template: np.ndarray | None = None) -> np.ndarray:
    """The 49 template points in pixel-index coordinates of a ``size x size`` crop."""
    t = TEMPLATE49 if template is None else np.asarray(template, dtype=np.float64)
    return t * (size - 1)


def warp_gray(gray: Image.Image | np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a gray image with the 2 x 3 ``matrix`` (source -> crop pixel-index coordinates) into a uint8
    ``size x size`` crop. Anti-aliasing: when the crop is smaller than half the source's scale, the source
    region it covers is first Lanczos-resized to twice the crop's resolution; the warp itself is bicubic.
    Pixels outside the source are black (0), as in dlib's chips."""
    img = gray if isinstance(gray, Image.Image) else Image.fromarray(np.asarray(gray, dtype=np.uint8))
    if img.mode != "L":
        img = img.convert("L")
    m = np.asarray(matrix, dtype=np.float64)
    scale = transform_scale(m)
    if scale < 0.5:
        # Region of the source that the crop covers, with a margin for the filters.
        inv = invert_transform(m)
        corners = apply_transform(inv, np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]))
        margin = 4.0 / scale
        left = int(max(0, np.floor(corners[:, 0].min() - margin)))
        top = int(max(0, np.floor(corners[:, 1].min() - margin)))
        right = int(min(img.width, np.ceil(corners[:, 0].max() + margin) + 1))
        bottom = int(min(img.height, np.ceil(corners[:, 1].max() + margin) + 1))
        if right > left and bottom > top:
            region = img.crop((left, top, right, bottom))
            f = 2.0 * scale
            new_w, new_h = max(1, round(region.width * f)), max(1, round(region.height * f))
            fx, fy = new_w / region.width, new_h / region.height
            img = region.resize((new_w, new_h), Image.LANCZOS)
            # region pixel-index coords -> resized pixel-index coords: x' = (x + 0.5) * fx - 0.5
            pre = np.array([[fx, 0.0, fx * (0.5 - left) - 0.5], [0.0, fy, fy * (0.5 - top) - 0.5]])
            m = compose(m, invert_transform(pre))
    inv = invert_transform(m)   # crop index -> source index
    a, b, c = inv[0]
    d, e, f_ = inv[1]
    # PIL samples output pixel (i, j) at continuous (i + .5, j + .5) and reads the input at continuous
    # coordinates (index + .5); convert our index-space inverse to PIL's continuous convention.
    coeffs = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f_ + 0.5 - 0.5 * (d + e))
    out = img.transform((size, size), Image.AFFINE, coeffs, resample=Image.BICUBIC, fillcolor=0)
    return np.asarray(out, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Yaw


#: Calibration of :func:`estimate_yaw`: the nose-offset ratio that corresponds to 90 deg. Cylinder model: the
#: face outline stays at +-R while the nose tip (radius R + d) projects at (R + d) sin(yaw), so
#: r = (1 + d/R) sin(yaw). Set so the median |r| of London's 3/4 views (0.911, 406 photos) maps to 40 deg.
YAW_RATIO_AT_90 = 1.418


def eye_centres(landmarks68: np.ndarray) -> np.ndarray:
    """The two eye centres (2 x 2: image-left eye, then image-right eye), each the mean of its six iBUG points
    (36-41, 42-47)."""
    lm = np.asarray(landmarks68)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])


def nose_offset_ratio(landmarks68: np.ndarray) -> float:
    """Horizontal position of the nose tip (30) between the two ends of the face outline (jaw points 0 and
    16), measured along the eye line: -1 at point 0's side, 0 in the middle, +1 at point 16's side."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    left_eye, right_eye = eye_centres(lm)
    axis = right_eye - left_eye
    norm = np.linalg.norm(axis)
    if norm < 1e-9:
        return float("nan")
    axis /= norm
    p0, p16, nose = lm[0] @ axis, lm[16] @ axis, lm[30] @ axis
    half = (p16 - p0) / 2.0
    if abs(half) < 1e-9:
        return float("nan")
    return float((nose - (p0 + p16) / 2.0) / half)


def estimate_yaw(landmarks68: np.ndarray) -> float:
    """Yaw in degrees from 68 landmarks: ``asin(r / YAW_RATIO_AT_90)`` with r = :func:`nose_offset_ratio`.

    Positive when the nose points to the image's right. A rough estimate (about +-10 deg), meant for
    sorting views and for the flip rule, not for head-pose research.
    """
    r = nose_offset_ratio(landmarks68)
    if not np.isfinite(r):
        return float("nan")
    return float(np.degrees(np.arcsin(np.clip(r / YAW_RATIO_AT_90, -1.0, 1.0))))


# ---------------------------------------------------------------------------------------------------------
# Aligner


def _to_gray_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "L" else image.convert("L")
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return Image.fromarray(arr[..., :3].astype(np.uint8), "RGB").convert("L")
    if arr.ndim == 2:
        if arr.dtype != np.uint8:
            raise ValueError(f"gray arrays must be uint8, got {arr.dtype}")
        return Image.fromarray(arr, "L")
    raise ValueError(f"expected a PIL image, HxW uint8 or HxWx3 array, got shape {arr.shape}")


#: The face detectors ``FaceAligner`` takes: dlib's HOG (default), dlib's CNN (MMOD), the ported BlazeFace.
DETECTORS = ("hog", "cnn", "blazeface")

#: BlazeFace detection -> HOG-like box. With s the mean of the BlazeFace box's width and height, ex the x of
#: the midpoint of its two eye key points and cy the box's vertical centre, the HOG-like box is the square of
#: side ``side * s`` centred at (ex + dx * s, cy + dy * s). Anchoring x at the eyes rather than at the box
#: centre matters for turned faces: BlazeFace's box stays on the head while dlib's HOG box follows the eyes
#: (by ~0.22 s on London's 3/4 views), and the 68-point model is very sensitive to that (a box-centred map
#: fitted the same way puts the 3/4 landmarks ~1 inter-ocular distance off and breaks the flip rule).
#: Least-squares fit (tools/fit_blazeface_boxes.py) on the frontal photos (neutral and smiling) of the London
#: set's 70 TRAINING subjects (src/nfgan/assets/splits/london.json); never fitted on validation or test people.
HOG_LIKE_BOX = {"dx": 0.0144, "dy": -0.0377, "side": 0.9559}

#: A BlazeFace detection whose eye key points lie closer together than this fraction of the eye-to-mouth
#: distance is a profile view, which dlib's 68-point model cannot landmark: it is not counted as a face (as
#: the HOG detector does not find profiles). London training subjects (tools/fit_blazeface_boxes.py): 3/4
#: views >= 0.49, profiles median 0.12.
PROFILE_EYE_RATIO = 0.45
#: :meth:`FaceAligner.align_crop` keeps a model-sized crop's own pixels when the template fit would move the
#: template's points by at most this share of the side on average (1.6 px at 64 px). Crops that ``nfgan prepare``
#: wrote move by 0.002-0.004 (median), 0.01-0.02 (99th percentile) on London, canada, JAFFE and CK+.
CROP_TOLERANCE = 0.025


def hog_like_box(detection, fit: dict | None = None) -> tuple[float, float, float, float]:
    """Map a BlazeFace detection (``nfgan.data.detect.Detection``: box and key points) onto the box dlib's HOG
    detector would draw (``HOG_LIKE_BOX``)."""
    f = HOG_LIKE_BOX if fit is None else fit
    l, t, r, b = (float(v) for v in detection.box)
    s = ((r - l) + (b - t)) / 2.0
    eye_x = float(np.asarray(detection.keypoints)[:2, 0].mean())
    cx, cy = eye_x + f["dx"] * s, (t + b) / 2.0 + f["dy"] * s
    half = f["side"] * s / 2.0
    return cx - half, cy - half, cx + half, cy + half


def check_detector(detector) -> str:
    """``detector`` if it names one of :data:`DETECTORS`, else ValueError naming the choices."""
    if not isinstance(detector, str) or detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}: use one of {', '.join(DETECTORS)}")
    return detector


@functools.lru_cache(maxsize=4)
def _load_models(detector: str):
    import dlib

    from nfgan.weights import dlib_model_path

    check_detector(detector)
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks68")))
    if detector == "hog":
        det = dlib.get_frontal_face_detector()
    elif detector == "cnn":
        det = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))
    else:
        from nfgan.data.detect import BlazeFaceDetector

        det = BlazeFaceDetector()
    return det, predictor


class FaceAligner:
    """Detects, landmarks and aligns faces; loads dlib's models once (reuse one instance per process).

    Parameters
    ----------
    size: output crop side in pixels (64 = the paper's; 128 works too).
    detector: "hog" (dlib HOG, the default), "cnn" (dlib MMOD; slower on CPU, finds more rotated/small faces)
        or "blazeface" (ported MediaPipe BlazeFace, ``nfgan.data.detect``: several times faster than HOG,
        leaves out profiles; misses face boxes under about 12 % of the photo's longer side; its boxes
        are mapped onto HOG-like boxes, ``HOG_LIKE_BOX``). docs/preparation.md compares them.
    padding: framing of the template, as in dlib's face chips (only 0.25 has a frozen template; another
        value rescales the template about its centre by (1 + 2*0.25) / (1 + 2*padding)).
    work_side: photos whose longer side exceeds this are detected/landmarked on a downscaled copy.
    detect_side: large photos are first searched for faces at this longer side (faster; see ``_detect``).
    min_face: smallest accepted face box side in source pixels (default: ``size // 2``); smaller -> error.
    dominance: with several faces, the largest is kept when its box area is at least ``dominance`` times the
        next one's; otherwise "several faces".
    flip: apply the flip rule; ``flip_threshold_deg``: faces with |yaw| below this are never flipped.
    max_fit_error: RMS residual of the 49-point template fit (fraction of crop size) above which the
        landmarks are judged to have failed.
    """

    def __init__(self, size: int = 64, detector: str = "hog", padding: float = DEFAULT_PADDING,
                 work_side: int = 1024, min_face: int | None = None, dominance: float = 2.0,
                 flip: bool = True, flip_threshold_deg: float = 10.0, max_fit_error: float = 0.08,
                 template: np.ndarray | None = None, detect_side: int = 320):
        if size < 16:
            raise ValueError(f"size must be >= 16, got {size}")
        check_detector(detector)
        self.size = int(size)
        self.detector_name = detector
        self.detector, self.predictor = _load_models(detector)
        t = TEMPLATE49 if template is None else np.asarray(template, dtype=np.float64)
        if padding != DEFAULT_PADDING:
            k = (1 + 2 * DEFAULT_PADDING) / (1 + 2 * padding)
            t = 0.5 + (t - 0.5) * k
        self.template = t
        self.padding = padding
        self.work_side = int(work_side)
        self.detect_side = int(detect_side)
        self.min_face = int(size // 2 if min_face is None else min_face)
        self.dominance = float(dominance)
        self.flip = bool(flip)
        self.flip_threshold_deg = float(flip_threshold_deg)
        self.max_fit_error = float(max_fit_error)

    # -- detection ----------------------------------------------------------------------------------------
    def _detect_once(self, arr: np.ndarray, upsample: int) -> list[tuple[float, float, float, float]]:
        dets = self.detector(arr, upsample)
        if self.detector_name == "cnn":
            dets = [d.rect for d in dets]
        return [(float(d.left()), float(d.top()), float(d.right()), float(d.bottom())) for d in dets]

    def _detect(self, arr: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (l, t, r, b) in ``arr`` pixels.

        Speed: a large image is first searched at a reduced scale (longer side ``detect_side``), which finds
        every face big enough to be worth a crop; only when that finds nothing is the full image searched,
        and small images are also searched with the pyramid upsampled once or twice.
        """
        if self.detector_name == "blazeface":   # one pass on the whole photo at 128 px; boxes made HOG-like
            return [hog_like_box(d) for d in self.detector.detect(arr) if d.eye_ratio() >= PROFILE_EYE_RATIO]
        longest = max(arr.shape)
        if longest > 1.5 * self.detect_side:
            f = self.detect_side / longest
            small = np.asarray(Image.fromarray(arr).resize((max(1, round(arr.shape[1] * f)),
                                                           max(1, round(arr.shape[0] * f))), Image.BILINEAR))
            fx, fy = arr.shape[1] / small.shape[1], arr.shape[0] / small.shape[0]
            boxes = self._detect_once(small, 0)
            if boxes:
                return [((l + 0.5) * fx - 0.5, (t + 0.5) * fy - 0.5, (r + 0.5) * fx - 0.5, (b + 0.5) * fy - 0.5)
                        for l, t, r, b in boxes]
        tries = [0] + ([1] if longest <= 400 else []) + ([2] if longest <= 200 else [])
        for up in tries:
            boxes = self._detect_once(arr, up)
            if boxes:
                return boxes
        return []

    def _pick(self, boxes):
        areas = sorted(((b[2] - b[0]) * (b[3] - b[1]), b) for b in boxes)[::-1]
        if len(areas) > 1 and areas[0][0] < self.dominance * areas[1][0]:
            raise AlignError("several faces", f"{len(boxes)} faces of similar size, none dominates")
        return areas[0][1]

    def _landmarks(self, arr: np.ndarray, box) -> np.ndarray:
        import dlib

        rect = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
        shape = self.predictor(arr, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    # -- alignment ----------------------------------------------------------------------------------------
    def _finish(self, work: Image.Image, lm_work: np.ndarray, to_work: np.ndarray, box_src, n_faces: int,
                method: str = "landmarks") -> AlignedFace:
        """Fit the template, warp, estimate yaw, apply the flip rule. ``to_work``: source -> work matrix."""
        size = self.size
        dst = template_points(size, self.template)
        m_work = similarity_transform(lm_work[list(INNER49)], dst)
        lm_crop = apply_transform(m_work, lm_work)
        fit_error = float(np.sqrt(((lm_crop[list(INNER49)] - dst) ** 2).sum(1).mean()) / size)
        if not np.isfinite(fit_error) or fit_error > self.max_fit_error:
            raise AlignError("landmarks failed", f"template fit residual {fit_error:.3f} of the crop size "
                                                 f"(limit {self.max_fit_error})")
        yaw = estimate_yaw(lm_crop)
        flipped = bool(self.flip and np.isfinite(yaw) and yaw < -self.flip_threshold_deg)
        if flipped:
            m_work = compose(mirror_matrix(size), m_work)
            lm_crop = mirror_landmarks(lm_crop, size)
        crop = warp_gray(work, m_work, size)
        return AlignedFace(crop=crop, landmarks68=lm_crop.astype(np.float32), transform=compose(m_work, to_work),
                           yaw_deg=yaw, flipped=flipped, box=tuple(float(v) for v in box_src), method=method,
                           fit_error=fit_error, n_faces=n_faces)

    def _work_image(self, gray: Image.Image) -> tuple[Image.Image, np.ndarray]:
        longest = max(gray.size)
        if longest <= self.work_side:
            return gray, np.array([[1.0, 0, 0], [0, 1.0, 0]])
        f = self.work_side / longest
        w, h = max(1, round(gray.width * f)), max(1, round(gray.height * f))
        fx, fy = w / gray.width, h / gray.height
        work = gray.resize((w, h), Image.LANCZOS)
        return work, np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]])

    def align(self, image) -> AlignedFace:
        """Align the single (or clearly dominant) face of a photo (PIL image or uint8 array, any size)."""
        gray = _to_gray_pil(image)
        work, to_work = self._work_image(gray)
        arr = np.asarray(work)
        boxes = self._detect(arr)
        if not boxes:
            extra = " (profile views do not count: the 68-point model cannot align them)" \
                if self.detector_name == "blazeface" else ""
            raise AlignError("no face", f"the {self.detector_name} detector found no face in "
                                        f"{gray.width}x{gray.height}{extra}")
        box = self._pick(boxes)
        from_work = invert_transform(to_work)
        box_src = apply_transform(from_work, np.array([box[:2], box[2:]])).ravel()
        side = min(box_src[2] - box_src[0], box_src[3] - box_src[1])
        if side < self.min_face:
            raise AlignError("face too small", f"face box {side:.0f} px < {self.min_face} px")
        lm = self._landmarks(arr, box)
        return self._finish(work, lm, to_work, box_src, len(boxes))

    def align_precropped(self, image, upscale: int = 4, fallback: bool = True) -> AlignedFace:
        """Align a small, already cropped face (e.g. CK+48 at 48x48).

        The crop is upsampled ``upscale`` times (bicubic) and padded by a quarter of its side on every edge
        (edge replication), so that the detector sees a face with some context (on CK+48 this finds a face in
        every one of the 981 peak crops). The landmarks then go through the same template fit as photos; the
        warp reads the unpadded crop, so parts of the template frame that the crop does not cover (CK+48 is
        cut tighter than dlib's chips) are black.
        When no face is found or the fit fails and ``fallback`` is set, the crop is simply resized to
        ``size`` (``method="resize"``, landmarks NaN, yaw NaN); without ``fallback`` AlignError is raised.
        """
        gray = _to_gray_pil(image)
        w, h = gray.size
        big = gray.resize((w * upscale, h * upscale), Image.BICUBIC)
        pad_x, pad_y = big.width // 4, big.height // 4
        arr = np.pad(np.asarray(big), ((pad_y, pad_y), (pad_x, pad_x)), mode="edge")
        # source pixel-index -> work pixel-index
        to_work = np.array([[upscale, 0, 0.5 * upscale - 0.5 + pad_x], [0, upscale, 0.5 * upscale - 0.5 + pad_y]],
                           dtype=np.float64)
        try:
            boxes = self._detect(arr)
            if not boxes:
                raise AlignError("no face", f"no face in the {w}x{h} crop upsampled x{upscale}")
            box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            lm = self._landmarks(arr, box)
            box_src = apply_transform(invert_transform(to_work), np.array([box[:2], box[2:]])).ravel()
            # Warp from the unpadded upsampled crop: what lies outside the original crop is black (as in
            # dlib's chips and for photos), not smeared edge pixels.
            shift = np.array([pad_x, pad_y], dtype=np.float64)
            to_big = to_work.copy()
            to_big[:, 2] -= shift
            return self._finish(big, lm - shift, to_big, box_src, len(boxes))
        except AlignError:
            if not fallback:
                raise
        crop = np.asarray(gray.resize((self.size, self.size), Image.LANCZOS), dtype=np.uint8)
        s = self.size / np.array([w, h], dtype=np.float64)
        m = np.array([[s[0], 0, 0.5 * s[0] - 0.5], [0, s[1], 0.5 * s[1] - 0.5]])
        return AlignedFace(crop=crop, landmarks68=np.full((68, 2), np.nan, np.float32), transform=m,
                           yaw_deg=float("nan"), flipped=False, box=(0.0, 0.0, w - 1.0, h - 1.0),
                           method="resize", n_faces=0)

    def align_crop(self, image, tolerance: float = CROP_TOLERANCE) -> AlignedFace:
        """Landmarks, yaw and mirroring of a face that already is a model-sized crop (``size`` x ``size``: one
        that ``nfgan prepare`` wrote, or a crop from another tool). It is aligned as a small crop is
        (:meth:`align_precropped`, without the fallback: :class:`AlignError` when no face is found). When that
        alignment would neither mirror the crop nor move the template's points by more than ``tolerance`` of the
        side (on average), the crop keeps its own pixels, with the landmarks found on it (``method="crop"``, no
        resampling); otherwise the re-aligned crop is returned (``method="landmarks"``), framed as a photo's."""
        gray = _to_gray_pil(image)
        if gray.size != (self.size, self.size):
            raise AlignError("not a crop", f"{gray.width}x{gray.height} is not a {self.size}x{self.size} crop")
        a = self.align_precropped(gray, fallback=False)
        if a.flipped:
            return a
        back = invert_transform(a.transform)
        points = template_points(self.size, self.template)
        moved = float(np.linalg.norm(apply_transform(back, points) - points, axis=1).mean() / self.size)
        if moved > tolerance:
            return a
        return replace(a, crop=np.asarray(gray, dtype=np.uint8).copy(),
                                   landmarks68=apply_transform(back, a.landmarks68).astype(np.float32),
                                   transform=np.eye(2, 3), method="crop", extra={**a.extra, "moved": moved})


@functools.lru_cache(maxsize=4)
def _cached_aligner(size: int, detector: str, **kwargs) -> FaceAligner:
    return FaceAligner(size=size, detector=detector, **kwargs)


def occluded_left(poses: Sequence[str], flipped: Sequence | None = None) -> np.ndarray:
    """Per face: is its occluded side on the image's left (turned left and not mirrored by ``nfgan prepare``,
    or turned right and mirrored)."""
    flipped = [False] * len(poses) if flipped is None else flipped
    return np.asarray([str(p).startswith("left") != (str(f).strip().lower() in ("1", "true", "yes"))
                       for p, f in zip(poses, flipped)], bool)


def pose_from_yaw(yaw: float) -> str:
    """Pose label of an aligned photo from its estimated yaw (``AlignedFace.yaw_deg``; < 0 = nose to the
    image's left): frontal below 15 degrees or when unknown, three-quarter below 60, else profile."""
    if not np.isfinite(yaw) or abs(yaw) < 15:
        return "frontal"
    side = "left" if yaw < 0 else "right"
    return f"{side}_3quarter" if abs(yaw) < 60 else f"{side}_profile"


def align_face(image, size: int = 64, detector: str = "hog", precropped: bool = False, **kwargs) -> AlignedFace:
    """Align one face: ``image`` is a path, a PIL image or a uint8 array (gray or RGB).

    Keyword arguments go to :class:`FaceAligner` (instances are cached per argument set, so repeated calls
    do not reload dlib's models). Raises :class:`AlignError` (``.reason``) when no face can be aligned, and
    ``nfgan.data.prepare.ImageReadError`` for unreadable files.
    """
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from nfgan.data.images import read_gray_image

        image = read_gray_image(image)
    aligner = _cached_aligner(int(size), detector, **kwargs)
    return aligner.align_precropped(image) if precropped else aligner.align(image)


# ---------------------------------------------------------------------------------------------------------
# Template derivation (how TEMPLATE49 was made; run by tools/make_prep_figures.py --template)


def dlib_chip_matrix(chip_details) -> np.ndarray:
    """Source -> chip pixel-index similarity of a ``dlib.chip_details`` (as ``dlib.extract_image_chip`` uses
    it: the chip's pixel 0 and pixel ``cols - 1`` sit on the rectangle's left and right edges, rotated by
    ``angle`` about the rectangle's centre)."""
    r = chip_details.rect
    cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
    s = (chip_details.cols - 1) / (r.right() - r.left())
    a = -chip_details.angle
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * s
    c = np.array([(chip_details.cols - 1) / 2.0, (chip_details.rows - 1) / 2.0])
    return np.concatenate([rot, (c - rot @ np.array([cx, cy]))[:, None]], axis=1)


def derive_template(landmark_sets: Sequence[np.ndarray], padding: float = DEFAULT_PADDING,
                    chip_size: int = 256) -> np.ndarray:
    """Average position of the 49 points inside dlib face chips (``padding``), as span fractions.

    ``landmark_sets``: 68 x 2 landmark arrays (source pixels) of frontal faces. Each is placed in its dlib
    chip with ``dlib.get_face_chip_details`` and the chip coordinates are averaged.
    """
    import dlib

    acc = []
    for lm in landmark_sets:
        lm = np.asarray(lm, dtype=np.float64)
        pts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        l, t = lm.min(0)
        r, b = lm.max(0)
        shape = dlib.full_object_detection(dlib.rectangle(int(l), int(t), int(r), int(b)), pts)
        details = dlib.get_face_chip_details(shape, chip_size, padding)
        acc.append(apply_transform(dlib_chip_matrix(details), lm[list(INNER49)]) / (chip_size - 1))
    return np.mean(acc, axis=0)
