"""Photometric normalisation and FER crops (paper Sec. 5.1), as small composable functions.

Which steps each consumer gets (also in docs/preparation.md):

* Generator training data and inference: none of these steps; the aligned 64x64 gray crop is mapped to the
  generator's [-1, 1] range as it is (``nfgan.pixels``), since the decoder must reproduce the target image.
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
