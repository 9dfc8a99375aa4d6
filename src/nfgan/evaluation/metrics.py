"""Evaluation metrics: image fidelity (SSIM, PSNR, L1), realism (KID) and identity-verification calibration.

Conventions

* Image metrics take two equally shaped stacks of gray images - ``N x H x W``, ``N x 1 x H x W`` or one
  ``H x W`` - as numpy arrays (memory maps are fine) or torch tensors, and return one value per image pair
  (float64 numpy, length N). They work through the stack in chunks, so memory stays linear in N and
  bounded by the chunk. ``data_range`` is the span of valid values: by default 255 for uint8 and 2.0 for
  float images (nfgan's [-1, 1] generator range); pass it explicitly for anything else.
* SSIM is Wang et al. (2004), "Image quality assessment: from error visibility to structural similarity":
  11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, local statistics over the window positions that
  fit inside the image ("valid", as in the authors' reference code), averaged over the image.
* KID is Binkowski et al. (2018), "Demystifying MMD GANs": the unbiased estimator of the squared MMD with
  the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` on embedder features, computed on random subsets
  and reported as mean and standard deviation over subsets. The features come from whatever embedder the
  caller picks (the report names it); KID values from different embedders are not comparable.
* Verification (paper Fig. 4, "identity check"): a pair passes when the L2 distance of its embeddings is
  at most a threshold. ``calibrate_verification`` finds, from genuine (same person) and impostor (different
  people) distances, the equal error rate and its threshold and the threshold at a target false accept rate
  (1 % by default) with the true accept rate there; ``pass_rate`` applies a threshold.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 256


# ------------------------------------------------------------------------------------------- image stacks

def _as_stack(x) -> np.ndarray | torch.Tensor:
    """Normalise shapes to N x H x W without copying the data (memmaps stay memmaps)."""
    shape = tuple(x.shape)
    if len(shape) == 2:
        return x[None]
    if len(shape) == 4:
        if shape[1] != 1:
            raise ValueError(f"expected gray images (N x 1 x H x W), got shape {shape}")
        return x[:, 0]
    if len(shape) != 3:
        raise ValueError(f"expected HxW, NxHxW or Nx1xHxW images, got shape {shape}")
    return x


def _default_range(x) -> float:
    dtype = x.dtype
    if dtype in (np.uint8, torch.uint8):
        return 255.0
    if (isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating)) or (
            isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return 2.0
    raise TypeError(f"pass data_range for images of dtype {dtype}")


def _chunk(x, i: int, j: int) -> torch.Tensor:
    part = x[i:j]
    if torch.is_tensor(part):
        return part.detach().to(torch.float64).cpu()
    return torch.from_numpy(np.asarray(part, dtype=np.float64))


def _pairs(x, y, data_range: float | None, chunk: int):
    """Yield float64 chunks (n x H x W) of both stacks; checks shapes once."""
    x, y = _as_stack(x), _as_stack(y)
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"image stacks differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    rng = float(data_range) if data_range is not None else _default_range(x)
    if rng <= 0:
        raise ValueError(f"data_range must be positive, got {rng}")
    n = x.shape[0]
    return rng, ((_chunk(x, i, i + chunk), _chunk(y, i, i + chunk)) for i in range(0, n, chunk))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian of odd length ``size`` (the 2-D SSIM window is its outer product)."""
    if size % 2 != 1:
        raise ValueError("window size must be odd")
    r = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x, y, data_range: float | None = None, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Mean SSIM of each image pair (Wang et al. 2004, eq. 13 with C3 = C2/2), one value per pair.

    Images must be at least ``window`` pixels on each side.
    """
    rng, pairs = _pairs(x, y, data_range, chunk)
    g = torch.from_numpy(gaussian_window(window, sigma))
    gy, gx = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable valid filtering, t: B x 1 x H x W
        return F.conv2d(F.conv2d(t, gy), gx)

    out = []
    for a, b in pairs:
        if min(a.shape[-2:]) < window:
            raise ValueError(f"images of size {tuple(a.shape[-2:])} are smaller than the {window}px SSIM window")
        a, b = a[:, None], b[:, None]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a ** 2
        var_b = blur(b * b) - mu_b ** 2
        cov = blur(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        out.append(s.mean(dim=(1, 2, 3)))
    return torch.cat(out).numpy() if out else np.zeros(0)


def psnr(x, y, data_range: float | None = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``, per pair (inf for identical images)."""
    rng, pairs = _pairs(x, y, data_range, chunk)
    out = []
    for a, b in pairs:
        mse = ((a - b) ** 2).mean(dim=(1, 2))
        with np.errstate(divide="ignore"):
            out.append(10.0 * np.log10(rng ** 2 / mse.numpy()))
    return np.concatenate(out) if out else np.zeros(0)


def l1(x, y, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Mean absolute difference per pair, in the images' own units (e.g. [-1, 1] -> at most 2)."""
    _, pairs = _pairs(x, y, 1.0, chunk)
    out = [(a - b).abs().mean(dim=(1, 2)).numpy() for a, b in pairs]
    return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------------------------------- KID

@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    n_subsets: int
    subset_size: int

    def as_dict(self) -> dict:
        return asdict(self)


def polynomial_mmd2_unbiased(a: np.ndarray, b: np.ndarray, degree: int = 3, gamma: float | None = None,
                             coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between two feature sets with ``k(x, y) = (gamma x.y + coef0)^degree``, gamma = 1/d."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples per set")
    g = 1.0 / a.shape[1] if gamma is None else gamma
    k_aa = (g * a @ a.T + coef0) ** degree
    k_bb = (g * b @ b.T + coef0) ** degree
    k_ab = (g * a @ b.T + coef0) ** degree
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


def kid(features_a, features_b, n_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0, seed: int = 0) -> KIDResult:
    """Kernel Inception Distance between two sets of embedder features (``N x d`` and ``M x d``).

    Each of ``n_subsets`` draws ``min(subset_size, N, M)`` rows of each set without replacement and computes
    the unbiased MMD^2; returns their mean and standard deviation. Deterministic for a given ``seed``.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be N x d and M x d with the same d, got {a.shape} and {b.shape}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = np.array([
        polynomial_mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                                 b[rng.choice(len(b), size, replace=False)], degree, gamma, coef0)
        for _ in range(n_subsets)])
    return KIDResult(float(values.mean()), float(values.std()), int(n_subsets), int(size))


# ------------------------------------------------------------------------------------------ verification

@dataclass(frozen=True)
class VerificationCalibration:
    """Operating points of a distance-based verifier (accept a pair when distance <= threshold)."""

    eer: float                # equal error rate: false accept rate = false reject rate
    eer_threshold: float
    far_target: float         # e.g. 0.01
    far_threshold: float      # largest threshold whose false accept rate is <= far_target
    far_at_threshold: float   # the false accept rate actually reached there
    tar_at_far: float         # true accept rate (1 - false reject rate) at far_threshold
    n_genuine: int
    n_impostor: int

    def as_dict(self) -> dict:
        return asdict(self)


def _distances(d, name: str) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError(f"no {name} distances")
    if not np.isfinite(d).all():
        raise ValueError(f"{name} distances contain NaN or inf")
    return d


def verification_curve(genuine, impostor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All distinct operating points: ``(thresholds, far, tar)``, thresholds increasing.

    Thresholds are placed half-way between consecutive distinct distances (plus one below the smallest and
    one above the largest), so each separates the data the same way any threshold in that gap would.
    """
    gen, imp = _distances(genuine, "genuine"), _distances(impostor, "impostor")
    values = np.unique(np.concatenate([gen, imp]))
    span = max(values[-1] - values[0], 1.0)
    edges = np.concatenate([[values[0] - 1e-6 * span], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6 * span]])
    far = np.searchsorted(np.sort(imp), edges, side="right") / imp.size
    tar = np.searchsorted(np.sort(gen), edges, side="right") / gen.size
    return edges, far, tar


def calibrate_verification(genuine, impostor, far_target: float = 0.01) -> VerificationCalibration:
    """EER (and its threshold) and the threshold at ``far_target`` false accepts, from distance samples.

    The EER is taken at the threshold where |FAR - FRR| is smallest, as the mean of the two rates there.
    """
    if not 0.0 <= far_target < 1.0:
        raise ValueError(f"far_target must be in [0, 1), got {far_target}")
    thresholds, far, tar = verification_curve(genuine, impostor)
    frr = 1.0 - tar
    i = int(np.argmin(np.abs(far - frr)))
    ok = np.nonzero(far <= far_target)[0]
    j = int(ok[-1])   # always exists: the lowest threshold accepts nothing
    return VerificationCalibration(
        eer=float((far[i] + frr[i]) / 2), eer_threshold=float(thresholds[i]), far_target=float(far_target),
        far_threshold=float(thresholds[j]), far_at_threshold=float(far[j]), tar_at_far=float(tar[j]),
        n_genuine=int(np.size(genuine)), n_impostor=int(np.size(impostor)))


def pass_rate(distances, threshold: float) -> float:
    """Share of pairs whose distance is at most ``threshold`` (paper Fig. 4: identity preserved)."""
    d = _distances(distances, "pair")
    return float((d <= threshold).mean())


def pairwise_distances(a, b=None) -> np.ndarray:
    """Euclidean distances between rows of ``a`` and rows of ``b`` (or of ``a`` with itself), float64."""
    a = np.asarray(a, dtype=np.float64)
    b = a if b is None else np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))
