"""Identity mixing: new people for training, made by morphing two training people into one (``data.identity_mix``).

The normaliser learns from a few hundred people and, on a new person, drifts towards the training person it
resembles most (docs/results/rank1_every). A morph of two people is a plausible face of a third: both faces are
warped onto a common landmark layout, the weighted average of theirs, and blended with the same weights. Mixing
an (input, target) pair of person A with a pair of person B by the same weight ``alpha`` gives a pair of a new
person: the morph of the two inputs (any expressions: their morph is an expression too) and the morph of the two
frontal neutral targets. L_id's reference is then the morph of the real inputs.

The warp is a thin-plate spline through the 68 landmarks and the crop's border points (which stay where they
are), evaluated every other pixel, interpolated, and sampled bilinearly: one batched solve, no triangulation, so a batch of
morphs costs a few milliseconds. ``mix_params`` draws which rows of a batch are mixed, with whom and by how much;
``morph`` makes the faces. Used by ``nfgan.training.data.TrainingData``; nothing here is used at inference.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nfgan.data.frontalize import crop_border

#: ridge added to the spline's kernel (coordinates in crop sides): landmarks a pixel apart stay well-posed
TPS_RIDGE = 1e-4
#: the spline is evaluated every FIELD_STEP pixels and interpolated in between
FIELD_STEP = 2


def mix_params(eligible: np.ndarray, rng: np.random.Generator, cfg: dict) -> dict:
    """Per batch row: ``mixed`` (bool: mixed with probability ``cfg['p']`` where ``eligible``), ``alpha`` (the
    partner's weight, uniform in ``cfg['alpha']``) and ``u`` (two uniforms in [0, 1) the caller turns into the
    partner's input and target). Every row draws the same numbers whatever it is, so the draw is fixed by the
    batch size alone."""
    eligible = np.asarray(eligible, dtype=bool)
    b = len(eligible)
    lo, hi = cfg["alpha"]
    mixed = (rng.random(b) < float(cfg["p"])) & eligible
    alpha = lo + (hi - lo) * rng.random(b)
    return {"mixed": mixed, "alpha": alpha, "u": rng.random((b, 2))}


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """The thin-plate spline's radial function of squared distances, r^2 log r^2 (0 at 0)."""
    return r2 * torch.log(r2.clamp_min(1e-30))


def sample_positions(dst: torch.Tensor, src: torch.Tensor, size: int) -> torch.Tensor:
    """Where each output pixel samples its face, for warps that move ``src[b, k]`` onto ``dst[b, k]``
    (``B x K x 2``, or ``B x K x 2M`` for M faces warped onto the same ``dst`` - their source points side by side,
    x y per face): ``B x S*S x 2M`` positions in crop pixels. A thin-plate spline of the displacement ``src - dst``
    at ``dst``, the crop's border points held fixed."""
    dst = dst.double()
    src = src.double()
    b, _, two_m = src.shape
    border = torch.as_tensor(crop_border(size), dtype=torch.float64).expand(b, -1, -1)
    pts = torch.cat([dst, border], 1) / (size - 1)                    # B x K' x 2, in crop sides
    disp = torch.cat([src - dst.repeat(1, 1, two_m // 2), torch.zeros(b, len(border[0]), two_m,
                                                                       dtype=torch.float64)], 1) / (size - 1)
    k = pts.shape[1]
    kern = _tps_kernel(torch.cdist(pts, pts) ** 2) + TPS_RIDGE * torch.eye(k, dtype=torch.float64)
    aff = torch.cat([torch.ones(b, k, 1, dtype=torch.float64), pts], 2)               # B x K' x 3
    system = torch.zeros(b, k + 3, k + 3, dtype=torch.float64)
    system[:, :k, :k], system[:, :k, k:], system[:, k:, :k] = kern, aff, aff.transpose(1, 2)
    rhs = torch.cat([disp, torch.zeros(b, 3, two_m, dtype=torch.float64)], 1)
    coef = torch.linalg.solve(system, rhs)                                            # B x (K'+3) x 2M
    # the displacement is smooth: evaluate the spline on a grid of half the crop's side, then interpolate
    n = max(2, size // FIELD_STEP)
    line = torch.linspace(0.0, 1.0, n)
    ys, xs = torch.meshgrid(line, line, indexing="ij")
    g = torch.stack([xs.ravel(), ys.ravel()], 1).expand(b, -1, -1)                   # n*n x 2, in crop sides
    field = _tps_kernel(torch.cdist(g, pts.float()).square_()) @ coef[:, :k].float() \
        + torch.cat([torch.ones(b, n * n, 1), g], 2) @ coef[:, k:].float()        # B x n*n x 2M
    field = F.interpolate(field.transpose(1, 2).reshape(b, two_m, n, n), size=(size, size), mode="bilinear",
                          align_corners=True).reshape(b, two_m, size * size).transpose(1, 2)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack([xs.ravel(), ys.ravel()], 1).repeat(1, two_m // 2)             # S*S x 2M, crop pixels
    return grid + field.double() * (size - 1)


def _sample(faces: torch.Tensor, pos: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear samples (edges repeated) of ``B x S x S`` float faces at ``B x S*S x 2`` pixel positions."""
    grid = (pos / (size - 1) * 2.0 - 1.0).reshape(len(faces), size, size, 2).float()
    return F.grid_sample(faces[:, None].float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=True)[:, 0]


def morph(a: np.ndarray, b: np.ndarray, lm_a: np.ndarray, lm_b: np.ndarray, alpha: np.ndarray,
          valid_a: np.ndarray | None = None, valid_b: np.ndarray | None = None):
    """Morphs of uint8 faces ``a`` and ``b`` (``B x S x S``; landmarks ``B x 68 x 2``, crop pixels) with ``b``'s
    weight ``alpha`` (``B``): both warped onto the layout ``(1 - alpha) lm_a + alpha lm_b`` and blended. Returns
    uint8 ``B x S x S``, and with ``valid_a`` / ``valid_b`` (bool ``B x S x S``: pixels that hold image content)
    also the morphs' valid pixels (bool: where both warped faces sample image content)."""
    size = a.shape[-1]
    lm_a = torch.as_tensor(np.asarray(lm_a, dtype=np.float64))
    lm_b = torch.as_tensor(np.asarray(lm_b, dtype=np.float64))
    w = torch.as_tensor(np.asarray(alpha, dtype=np.float64))[:, None, None]
    pos = sample_positions((1 - w) * lm_a + w * lm_b, torch.cat([lm_a, lm_b], 2), size)
    wa = _sample(torch.from_numpy(np.ascontiguousarray(a)), pos[..., :2], size)
    wb = _sample(torch.from_numpy(np.ascontiguousarray(b)), pos[..., 2:], size)
    w = w.float()
    out = ((1 - w) * wa + w * wb).round().clamp(0, 255).to(torch.uint8).numpy()
    if valid_a is None and valid_b is None:
        return out
    va = _sample(torch.from_numpy(np.asarray(valid_a if valid_a is not None else np.ones_like(a, bool), np.float32)),
                 pos[..., :2], size)
    vb = _sample(torch.from_numpy(np.asarray(valid_b if valid_b is not None else np.ones_like(b, bool), np.float32)),
                 pos[..., 2:], size)
    return out, ((va > 0.999) & (vb > 0.999)).numpy()
