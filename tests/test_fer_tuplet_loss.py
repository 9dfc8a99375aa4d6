"""Adaptive (N+M)-tuplet clusters loss: values checked against hand-computed numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nfgan.fer.tuplet_loss import TupletClustersLoss


def test_tau_starts_at_init():
    assert float(TupletClustersLoss(tau_init=1.3).tau.detach()) == pytest.approx(1.3, abs=1e-6)


def test_single_tuplet_hand_computed():
    # positives (0,0), (2,0) -> centre (1,0), squared distances 1, 1
    # negatives (1,1) -> 1 ; (3,0) -> 4
    # tau = 1, beta = 0.5 (half 0.25):
    #   positives: max(0, 1 - 1 + 0.25) = 0.25 each -> mean 0.25
    #   negatives: max(0, 1 + 0.25 - 1) = 0.25, max(0, 1.25 - 4) = 0 -> mean 0.125
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    loss = TupletClustersLoss(tau_init=1.0, beta=0.5)
    value = loss(emb, [(torch.tensor([0, 1]), torch.tensor([2, 3]))])
    assert float(value.detach()) == pytest.approx(0.375, abs=1e-6)


def test_batch_mean_matches_numpy():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(9, 4)).astype(np.float32)
    tuplets = [([0, 1, 2], [3, 4, 5, 6]), ([3, 4], [0, 7, 8])]
    tau, beta = 2.5, 0.8
    expected = []
    for p, n in tuplets:
        c = e[p].mean(axis=0)
        dp = ((e[p] - c) ** 2).sum(axis=1)
        dn = ((e[n] - c) ** 2).sum(axis=1)
        expected.append(np.maximum(0, dp - tau + beta / 2).mean() + np.maximum(0, tau + beta / 2 - dn).mean())
    loss = TupletClustersLoss(tau_init=tau, beta=beta)
    got = loss(torch.from_numpy(e), [(torch.tensor(p), torch.tensor(n)) for p, n in tuplets])
    assert float(got.detach()) == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_threshold_is_learned_and_pulls_positives_in():
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [3.0, 0.0]], requires_grad=True)
    loss = TupletClustersLoss(tau_init=1.0, beta=0.5)
    loss(emb, [(torch.tensor([0, 1]), torch.tensor([2, 3]))]).backward()
    # two active positive hinges (-1/N each) and one active negative hinge (+1/M): dL/dtau = -1 + 0.5 = -0.5,
    # times softplus'(raw) = sigmoid(raw) = 1 - exp(-tau)
    assert float(loss.tau_raw.grad) == pytest.approx(-0.5 * (1 - np.exp(-1.0)), rel=1e-5)
    # gradient on positive p1 = (0,0) points away from the centre (descending it moves p1 towards (1,0))
    assert emb.grad[0, 0] < 0
    # inactive negative (3,0) gets no gradient
    assert torch.all(emb.grad[3] == 0)


def test_no_tuplets_gives_zero_with_graph():
    emb = torch.randn(3, 2, requires_grad=True)
    out = TupletClustersLoss()(emb, [])
    assert float(out.detach()) == 0.0 and out.requires_grad
