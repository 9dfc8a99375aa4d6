"""Each loss of eqs. 2-7 against an independent computation on concrete numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from nfgan.models import losses as L
def test_feature_loss_eq2_with_algorithm1_half():
    a = torch.tensor([[[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [3.0, 0.0]]]])   # 1 x 2 x 2 x 2
    b = torch.zeros_like(a)
    # positions: (0,0): ||(1,0)||^2 = 1; (0,1): 4; (1,0): 9; (1,1): 0 -> sum 14, / (2 * 2 * 2) = 1.75
    assert L.feature_loss([a], [b]).item() == pytest.approx(1.75)
    # several maps add up; a vector map counts as one position
    v = torch.tensor([[3.0, 4.0]])
    assert L.feature_loss([a, v], [b, torch.zeros_like(v)]).item() == pytest.approx(1.75 + 12.5)
    # batch mean
    assert L.feature_loss([torch.cat([a, b])], [torch.cat([b, b])]).item() == pytest.approx(1.75 / 2)
    with pytest.raises(ValueError):
        L.feature_loss([a], [])


def _sym_reference(img: np.ndarray) -> float:
    lap = ndimage.convolve(img, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float), mode="nearest")
    h, w = lap.shape
    return float(np.mean([abs(lap[m, n] - lap[m, w - 1 - n]) for m in range(h) for n in range(w // 2)]))


def test_symmetry_loss_eq3_in_laplacian_space():
    rng = np.random.default_rng(0)
    half = rng.normal(size=(16, 8))
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    assert L.symmetry_loss(torch.tensor(symmetric).float()[None, None]).item() == pytest.approx(0.0, abs=1e-6)
    img = rng.normal(size=(16, 16))
    got = L.symmetry_loss(torch.tensor(img).float()[None, None]).item()
    assert got == pytest.approx(_sym_reference(img), rel=1e-5)
    # a linear illumination ramp across the face is (away from the border) invisible in Laplacian space
    # (Sec. 4.2), while the pixel-space asymmetry it causes is large
    lit = symmetric + np.tile(np.linspace(-1, 1, 16), (16, 1))
    pixel_asym = np.abs(lit - lit[:, ::-1]).mean()
    assert pixel_asym > 0.9
    assert L.symmetry_loss(torch.tensor(lit).float()[None, None]).item() < 0.05 * pixel_asym


def test_adversarial_losses_eq4_eq5():
    real = torch.tensor([[[[0.5, -1.0]]]])
    fake = torch.tensor([[[[2.0, 0.0]]]])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    want_dis = (-math.log(sig(0.5)) - math.log(sig(-1.0))) / 2 + (-math.log(1 - sig(2.0)) - math.log(1 - sig(0.0))) / 2
    assert L.discriminator_loss(real, fake).item() == pytest.approx(want_dis, rel=1e-6)
    want_gen = (-math.log(sig(2.0)) - math.log(sig(0.0))) / 2
    assert L.generator_adversarial_loss(fake).item() == pytest.approx(want_gen, rel=1e-6)
    # extreme logits stay finite (the probabilities would round to exactly 0 or 1)
    big = torch.tensor([[[[200.0]]]])
    assert L.discriminator_loss(-big, big).item() == pytest.approx(400.0)
    assert L.generator_adversarial_loss(-big).item() == pytest.approx(200.0)


def test_identity_loss_eq6_uses_last_two_layers():
    first = torch.ones(2, 3, 4, 4)
    pooled_x, pooled_f = torch.zeros(2, 4), torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    desc_x = torch.zeros(2, 2, 2, 2)
    desc_f = torch.zeros(2, 2, 2, 2)
    desc_f[0, :, 0, 0] = torch.tensor([1.0, 3.0])   # L1 over channels 4 at one of 4 positions -> 1
    got = L.identity_loss([first * 9, pooled_f, desc_f], [first, pooled_x, desc_x])
    # pooled: sample 0 -> 2, sample 1 -> 0 => 1; map: sample 0 -> 1, sample 1 -> 0 => 0.5
    assert got.item() == pytest.approx(1.5)


def test_pixel_loss_eq7():
    a = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    b = torch.tensor([[[[0.5, 1.0], [1.0, 0.5]]]])
    assert L.pixel_loss(a, b).item() == pytest.approx((0.5 + 0 + 2 + 0) / 4)


def test_losses_are_differentiable():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    total = L.symmetry_loss(x) + L.pixel_loss(x, torch.zeros_like(x)) + L.feature_loss([x], [x.detach() + 1])
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
