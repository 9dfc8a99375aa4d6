"""Photometric normalisation and FER crops (paper Sec. 5.1), as small composable functions.

Which steps each consumer gets (also in docs/preparation.md):

* Generator training data and inference: none of the normalisation steps; the aligned 64x64 gray crop is
  mapped to the generator's [-1, 1] range as it is (``nfgan.pixels``), since the decoder must reproduce the
  target image. Training may instead *augment* the generator's inputs (``data.photometric``:
  :func:`photometric_params` / :func:`photometric_augment`: contrast, brightness, gamma, blur, noise, JPEG),
  so a normaliser learns to give the same face for the same person under another camera; targets and the
  identity loss's reference stay as they are.
* FER inputs (2B[N+M]Softmax): aligned 64x64 gray crop -> ``equalize_hist`` -> ``remove_plane`` ->
  ``standardize`` (zero mean, unit variance per image) -> ``five_crops`` (+ horizontal flips) for training,
  ``center_crop`` for testing.

All functions take and return numpy arrays; batch functions accept a leading batch axis.
"""
from __future__ import annotations

import numpy as np


def equalize_hist(gray: np.ndarray) -> np.ndarray:
    """Standard histogram equalisation of a uint8 gray image (HxW) -> uint8 HxW.

    Classic CDF mapping: v -> round((cdf(v) - cdf_min) / (N - cdf_min) * 255). A constant image is returned
    unchanged (there is no contrast to spread).
    """
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"equalize_hist expects a 2-D uint8 image, got {gray.dtype} {gray.shape}")
    hist = np.bincount(gray.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = cdf[np.nonzero(hist)[0][0]]
    n = gray.size
    if n == cdf_min:
        return gray.copy()
    lut = np.round((cdf - cdf_min) / (n - cdf_min) * 255.0).clip(0, 255).astype(np.uint8)
    return lut[gray]


def _plane_design(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)], axis=1)


def remove_plane(image: np.ndarray) -> np.ndarray:
    """Linear plane fitting (Sec. 5.1): subtract the best-fit plane a*x + b*y + c -> float32, mean ~0.

    Accepts HxW or NxHxW (each image gets its own plane; one least-squares solve for the whole batch).
    """
    img = np.asarray(image, dtype=np.float64)
    single = img.ndim == 2
    if single:
        img = img[None]
    n, h, w = img.shape
    a = _plane_design(h, w)
    coef, *_ = np.linalg.lstsq(a, img.reshape(n, -1).T, rcond=None)   # (3, n)
    out = img - (a @ coef).T.reshape(n, h, w)
    out = out.astype(np.float32)
    return out[0] if single else out


def standardize(image: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Zero mean, unit variance per image (HxW or NxHxW) -> float32."""
    img = np.asarray(image, dtype=np.float32)
    axes = (-2, -1)
    mean = img.mean(axis=axes, keepdims=True)
    std = img.std(axis=axes, keepdims=True)
    return (img - mean) / np.maximum(std, eps)


def fer_normalize(gray_u8: np.ndarray) -> np.ndarray:
    """The FER chain of Sec. 5.1 on one aligned uint8 face: equalise -> remove plane -> standardise."""
    return standardize(remove_plane(equalize_hist(gray_u8)))


def five_crops(image: np.ndarray, size: int = 60, flips: bool = True) -> np.ndarray:
    """Centre + four corner crops of ``size`` (Sec. 5.1), each also flipped horizontally when ``flips``.

    HxW -> (5 or 10) x size x size, order: centre, top-left, top-right, bottom-left, bottom-right, then the
    same five mirrored.
    """
    h, w = image.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop size {size} larger than image {h}x{w}")
    cy, cx = (h - size) // 2, (w - size) // 2
    offsets = [(cy, cx), (0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    crops = [image[..., y:y + size, x:x + size] for y, x in offsets]
    if flips:
        crops += [c[..., ::-1] for c in crops]
    return np.ascontiguousarray(np.stack(crops, axis=0))


def center_crop(image: np.ndarray, size: int = 60) -> np.ndarray:
    """The single test-time centre crop (Sec. 5.1)."""
    h, w = image.shape[-2:]
    cy, cx = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[..., cy:cy + size, cx:cx + size])


# ----------------------------------------------------------------------------------------------- augmentation
def photometric_params(n: int, rng: np.random.Generator, cfg: dict) -> dict[str, np.ndarray]:
    """Per-face random settings for :func:`photometric_augment` (drawn for a whole batch at once, so a batch
    split over processes gets each face's own settings). Each step is applied with probability ``p`` on its
    own; a face may get none, one or several."""
    p = float(cfg["p"])
    on = lambda: rng.random(n) < p   # noqa: E731
    lo, hi = cfg["contrast"]
    g_lo, g_hi = cfg["gamma"]
    q_lo, q_hi = cfg["jpeg_quality"]
    return {"contrast": np.where(on(), rng.uniform(lo, hi, n), 1.0),
            "brightness": np.where(on(), rng.uniform(-1, 1, n) * cfg["brightness"], 0.0),
            "gamma": np.where(on(), np.exp(rng.uniform(np.log(g_lo), np.log(g_hi), n)), 1.0),
            "blur": np.where(on(), rng.uniform(0.3, max(cfg["blur_sigma"], 0.3), n), 0.0) if cfg["blur_sigma"] > 0
            else np.zeros(n),
            "noise": np.where(on(), rng.uniform(0, cfg["noise_std"], n), 0.0),
            "noise_seed": rng.integers(0, 2**31, n),
            "jpeg": np.where(on(), rng.integers(q_lo, q_hi + 1, n), 0)}


def photometric_augment(faces: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 ``N x S x S`` faces changed as a different camera, exposure or compression would change them:
    contrast about the face's mean and a brightness shift, gamma, Gaussian blur, sensor noise, JPEG
    compression (in that order, each where its setting is not the identity). Deterministic given ``params``."""
    from io import BytesIO

    from PIL import Image
    from scipy.ndimage import gaussian_filter

    out = np.empty_like(np.asarray(faces, dtype=np.uint8))
    for i, face in enumerate(np.asarray(faces, dtype=np.uint8)):
        x = face.astype(np.float64)
        if params["contrast"][i] != 1.0 or params["brightness"][i] != 0.0:
            x = (x - x.mean()) * params["contrast"][i] + x.mean() + params["brightness"][i]
        if params["gamma"][i] != 1.0:
            x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** params["gamma"][i]
        if params["blur"][i] > 0:
            x = gaussian_filter(x, params["blur"][i], mode="nearest")
        if params["noise"][i] > 0:
            x = x + np.random.default_rng(int(params["noise_seed"][i])).normal(0, params["noise"][i], x.shape)
        y = np.clip(np.round(x), 0, 255).astype(np.uint8)
        if params["jpeg"][i] > 0:
            buf = BytesIO()
            Image.fromarray(y).save(buf, format="JPEG", quality=int(params["jpeg"][i]))
            y = np.asarray(Image.open(BytesIO(buf.getvalue())).convert("L"))
        out[i] = y
    return out


# ------------------------------------------------------------------------------------- fixed degradations
#: the steps :func:`parse_degradation` accepts: each one's no-change value, the test a value must pass, and the
#: values it allows in words (the error message)
DEGRADATION_STEPS = {
    "contrast": (1.0, lambda v: v > 0, "a factor > 0 about the face's mean grey level (0.6: flatter, 1.5: harder)"),
    "brightness": (0.0, lambda v: -255 <= v <= 255, "a shift in grey levels, -255..255"),
    "gamma": (1.0, lambda v: v > 0, "an exponent > 0 (above 1 darkens the mid-tones)"),
    "blur": (0.0, lambda v: v >= 0, "a Gaussian sigma in pixels >= 0"),
    "noise": (0.0, lambda v: v >= 0, "the standard deviation of Gaussian sensor noise in grey levels >= 0"),
    "jpeg": (0, lambda v: v == round(v) and 0 <= v <= 100, "a JPEG quality 1..100 (0: none)"),
}


def parse_degradation(text: str) -> dict[str, float]:
    """``"blur=1.2"`` or ``"contrast=0.6,jpeg=25"`` -> ``{"blur": 1.2}``: fixed photometric steps (the keys of
    :data:`DEGRADATION_STEPS`) that :func:`degrade` applies to every face, and re-framing steps
    (``nfgan.data.framing_jitter.REFRAMING_STEPS``: ``scale``, ``rotate``, ``shift_x``, ``shift_y``) that
    ``nfgan.data.framing_jitter.reframe`` applies to faces and landmarks alike. Raises ``ValueError`` naming the
    bad part."""
    from nfgan.data.framing_jitter import REFRAMING_STEPS

    known = {**DEGRADATION_STEPS, **REFRAMING_STEPS}
    out: dict[str, float] = {}
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"degradation {part!r}: expected STEP=VALUE with STEP one of "
                             f"{', '.join(known)}")
        if key in out:
            raise ValueError(f"degradation {text!r}: {key} given twice")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"degradation {part!r}: {value!r} is not a number") from None
        _, allowed, words = known[key]
        if not (np.isfinite(v) and allowed(v)):
            raise ValueError(f"degradation {part!r}: {key} must be {words}")
        out[key] = v
    if not out:
        raise ValueError("degradation: no step given (e.g. blur=1.2 or contrast=0.6,jpeg=25)")
    return out


def degrade(faces: np.ndarray, steps: dict[str, float], seed: int = 0) -> np.ndarray:
    """uint8 ``N x S x S`` faces with the same fixed photometric steps applied to each (:func:`parse_degradation`;
    the order of :func:`photometric_augment`; re-framing steps are left to ``nfgan.data.framing_jitter.reframe``).
    The noise of face ``i`` is drawn from ``seed + i``, so a result is reproducible and does not depend on how the
    faces are batched elsewhere."""
    faces = np.asarray(faces, dtype=np.uint8)
    n = len(faces)
    params = {k: np.full(n, float(steps.get(k, none))) for k, (none, _, _) in DEGRADATION_STEPS.items()}
    params["jpeg"] = params["jpeg"].astype(np.int64)
    params["noise_seed"] = np.arange(n, dtype=np.int64) + int(seed)
    return photometric_augment(faces, params)
