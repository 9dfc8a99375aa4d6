"""Adaptive (N+M)-tuplet clusters loss (reference [2] of the paper, Liu et al., CVPRW 2017).

For one query expression ``q`` a tuplet holds N positives ``p_1..p_N`` (expression ``q``) and M negatives
``n_1..n_M`` (other expressions; identity-aware mining makes them, where possible, faces of the *same*
people as the positives - see ``nfgan.fer.sampler``). Instead of a fixed anchor the positives are compared
with their cluster centre::

    c   = (1/N) sum_i f(p_i)
    d+_i = ||f(p_i) - c||^2            d-_j = ||f(n_j) - c||^2
    L   = (1/N) sum_i max(0, d+_i - tau + beta/2) + (1/M) sum_j max(0, tau + beta/2 - d-_j)

i.e. positives must lie inside the ball of squared radius ``tau - beta/2`` around the centre and negatives
outside squared radius ``tau + beta/2``. The threshold ``tau`` is *learned* jointly with the network (that
is the "adaptive" part: no threshold validation); ``beta`` is a fixed margin. ``beta`` is not learned:
minimising L over beta would simply drive it to zero (no margin). ``tau`` is kept positive with a softplus.
The loss over a batch is the mean over its tuplets. The embedding is L2-normalised by the model, so squared
distances lie in [0, 4].
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class TupletClustersLoss(nn.Module):
    """L of the module docstring, averaged over tuplets. ``tau`` (learned) and ``beta`` (fixed)."""

    def __init__(self, tau_init: float = 1.0, beta: float = 0.5):
        super().__init__()
        if tau_init <= 0:
            raise ValueError("tau_init must be > 0")
        # softplus^-1(tau_init), so that self.tau == tau_init at start
        self.tau_raw = nn.Parameter(torch.tensor(math.log(math.expm1(tau_init)), dtype=torch.float32))
        self.beta = float(beta)

    @property
    def tau(self) -> torch.Tensor:
        return F.softplus(self.tau_raw)

    def tuplet_loss(self, emb: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Loss of one tuplet: ``pos`` (N indices into ``emb``), ``neg`` (M indices)."""
        fp, fn = emb[pos], emb[neg]
        centre = fp.mean(dim=0, keepdim=True)
        d_pos = (fp - centre).pow(2).sum(dim=1)
        d_neg = (fn - centre).pow(2).sum(dim=1)
        tau, half = self.tau, self.beta / 2
        return F.relu(d_pos - tau + half).mean() + F.relu(tau + half - d_neg).mean()

    def forward(self, emb: torch.Tensor, tuplets: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        if not tuplets:
            return emb.sum() * 0.0   # keeps the graph; no tuplet could be formed in this batch
        return torch.stack([self.tuplet_loss(emb, p, n) for p, n in tuplets]).mean()
