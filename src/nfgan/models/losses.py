"""The five NFGAN losses (paper Sec. 4, eqs. 2-7), one function per equation.

Conventions shared by all of them: images are ``B x 1 x H x W`` in [-1, 1]; every loss is averaged over the
batch; a feature "map" is ``B x C x h x w`` (or ``B x C``, treated as ``h = w = 1``), and the value at a
position (n, m) is the C-vector there, so "||.||" in the equations is a norm over channels.

Which networks each loss trains (Sec. 4.6) is the trainer's business (``nfgan.training.loop``), not this module's.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

#: 4-neighbour discrete Laplacian used for L_sym (Sec. 4.2: the loss is defined in Laplacian space)
LAPLACIAN_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _as_map(f: torch.Tensor) -> torch.Tensor:
    return f if f.dim() == 4 else f.reshape(f.shape[0], -1, 1, 1)


def feature_loss(fake_maps: Sequence[torch.Tensor], target_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """L_feat, eq. (2), with Algorithm 1's normalisation 1/(2 W_l H_l).

    For each map: the squared Euclidean distance (over channels) between the feature vectors of x~ and y at
    each position, summed over the W_l x H_l positions and divided by 2 W_l H_l (i.e. half the mean over
    positions; eq. (2) prints 1/(W_l H_l), Algorithm 1 1/(2 W_l H_l) - we follow Algorithm 1). When the
    feature net returns several maps, their losses are summed. Batch mean.
    """
    if len(fake_maps) != len(target_maps):
        raise ValueError(f"feature_loss: {len(fake_maps)} maps for x~ but {len(target_maps)} for y")
    total = 0.0
    for f, t in zip(fake_maps, target_maps):
        f, t = _as_map(f), _as_map(t)
        sq = (f.float() - t.float()).pow(2).sum(dim=1)          # B x h x w: ||phi(x~) - phi(y)||^2 per position
        total = total + 0.5 * sq.mean(dim=(1, 2)).mean()
    return total


def laplacian(images: torch.Tensor) -> torch.Tensor:
    """Discrete Laplacian of ``B x 1 x H x W`` images (replicate padding, same size)."""
    k = LAPLACIAN_KERNEL.to(images.device, images.dtype).reshape(1, 1, 3, 3)
    return F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), k)


def symmetry_loss(fake: torch.Tensor) -> torch.Tensor:
    """L_sym, eq. (3), in Laplacian space (Sec. 4.2).

    ``1/(H W/2) sum_{n<=W/2, m} |L(x~)_{n,m} - L(x~)_{W-(n-1),m}|`` where L is the Laplacian: the left half
    of the Laplacian image against the mirrored right half, mean absolute difference. (The symmetric 3x3
    kernel commutes with the mirror, so this is also the Laplacian of x~ minus that of its mirror image.)
    """
    lap = laplacian(fake.float())
    w = lap.shape[-1]
    left = lap[..., : w // 2]
    right_mirrored = lap.flip(-1)[..., : w // 2]
    return (left - right_mirrored).abs().mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_GAN-Dis, eq. (4): ``-log Dis(g) - log(1 - Dis(x~))``.

    ``Dis = sigmoid(logits)``; written with softplus (``-log sigmoid(a) = softplus(-a)``,
    ``-log(1 - sigmoid(a)) = softplus(a)``), which is the same value without overflow. Mean over the patch map
    and the batch of each term.
    """
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_GAN-Dec, eq. (5): ``-log Dis(x~)`` (the non-saturating generator loss), mean over patches and batch."""
    return F.softplus(-fake_logits.float()).mean()


def identity_loss(fake_maps: Sequence[torch.Tensor], input_maps: Sequence[torch.Tensor],
                  layers: int = 2) -> torch.Tensor:
    """L_id, eq. (6): L1 between the identity-net features of the OUTPUT x~ and of the INPUT x.

    Uses the last ``layers`` (2 in the paper) maps: for each, the L1 norm over channels of the difference at each
    position, averaged over the W_l x H_l positions; summed over the layers. Batch mean.
    """
    if len(fake_maps) != len(input_maps):
        raise ValueError(f"identity_loss: {len(fake_maps)} maps for x~ but {len(input_maps)} for x")
    total = 0.0
    for f, t in zip(list(fake_maps)[-layers:], list(input_maps)[-layers:]):
        f, t = _as_map(f), _as_map(t)
        total = total + (f.float() - t.float()).abs().sum(dim=1).mean(dim=(1, 2)).mean()
    return total


def identity_rank_loss(fake_desc: torch.Tensor, ref_desc: torch.Tensor, subjects: torch.Tensor,
                       temperature: float = 0.1) -> torch.Tensor:
    """A ranking companion of L_id (not in the paper): each output's identity descriptor must lie nearer to its own
    reference (row i of ``ref_desc``: the input's, as in eq. 6) than to the references of the batch's OTHER people.

    ``-log softmax_j(-d(x~_i, r_j) / temperature)`` at ``j = i``, the softmax over ``i`` itself and every ``j``
    whose ``subjects`` code differs from ``i``'s (the same person's other faces are neither pulled nor pushed);
    ``d`` is the Euclidean distance of the descriptors. Rows with no other person in the batch are left out; the
    loss is the mean over the rest (0 when none). L_id pulls an output towards its own face; this term also asks
    that it not drift towards an average face that lies as near to other people (rank-1 identification)."""
    f = _as_map(fake_desc).flatten(1).float()
    r = _as_map(ref_desc).flatten(1).float()
    d = ((f[:, None, :] - r[None, :, :]).pow(2).sum(-1)).clamp_min(1e-12).sqrt()     # B x B
    s = subjects.to(d.device)
    other = s[:, None] != s[None, :]
    keep = other | torch.eye(len(s), dtype=torch.bool, device=d.device)
    rows = other.any(dim=1)
    if not bool(rows.any()):
        return d.new_zeros(())
    logp = torch.log_softmax((-d / float(temperature)).masked_fill(~keep, float("-inf")), dim=1)
    return -logp.diagonal()[rows].mean()


def pixel_loss(fake: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_pixel, eq. (7): mean absolute gray-value difference between x~ and the target y (1/(W H) sum).
    ``mask`` (0/1, broadcastable) leaves pixels out of the sum; the mean stays over every pixel, so the loss is
    a plain sum over the batch's faces (splitting a batch over processes does not change its gradient)."""
    diff = (fake.float() - target.float()).abs()
    return diff.mean() if mask is None else (diff * mask).mean()


def neutrality_loss(probabilities: torch.Tensor, neutral: int) -> torch.Tensor:
    """The expression lever: ``-log p_neutral`` of generated faces under a frozen expression classifier
    (``B x K`` probabilities, column ``neutral``), mean over the batch. 0 for a face the critic is sure is
    neutral; grows without bound as it becomes sure of another expression (clamped at p = 1e-6)."""
    return -torch.log(probabilities[:, neutral].float().clamp_min(1e-6)).mean()


def code_invariance_loss(codes: Sequence[torch.Tensor], target_codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Expression invariance of a generator's code (not in the paper; ``loss.code``): for each map, the mean squared
    difference between the code of the input and that of the person's neutral target, divided by the target code's
    mean square (so every map counts alike whatever its scale); the mean over the maps. ``target_codes`` is a
    constant (no gradient reaches it). 0 when the input's code is the target's; 1 when it is zero."""
    if len(codes) != len(target_codes) or not codes:
        raise ValueError(f"code_invariance_loss: {len(codes)} maps for x but {len(target_codes)} for y")
    total = 0.0
    for c, t in zip(codes, target_codes):
        t = t.detach().float()
        total = total + (c.float() - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-8)
    return total / len(codes)
