"""SSIM / PSNR / L1, KID and verification calibration against hand-checked values and direct references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nfgan.evaluation.metrics import (calibrate_verification, gaussian_window, kid, l1, pairwise_distances, pass_rate,
                           polynomial_mmd2_unbiased, psnr, ssim, verification_curve)


def _ssim_by_loops(a: np.ndarray, b: np.ndarray, rng: float) -> float:
    """Straight from Wang et al. (2004): weighted local statistics at every window position, one at a time."""
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
    w /= w.sum()
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11].astype(float), b[i:i + 11, j:j + 11].astype(float)
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_of_identical_images_is_one():
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    np.testing.assert_allclose(ssim(x, x), 1.0, atol=1e-12)


def test_ssim_hand_checked_constant_images():
    """One 11x11 window, no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 255)^2 = 6.5025."""
    a = np.full((11, 11), 100, np.uint8)
    b = np.full((11, 11), 50, np.uint8)
    assert ssim(a, b)[0] == pytest.approx(10006.5025 / 12506.5025, abs=1e-12)


def test_ssim_matches_direct_loop_reference():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 20, 17), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    got = ssim(a, b)
    want = [_ssim_by_loops(a[i], b[i], 255.0) for i in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert np.all(got < 1) and np.all(got > 0)
    # float images in [-1, 1] use data_range 2 by default, same as giving it explicitly
    fa = torch.from_numpy(a).float()[:, None] / 127.5 - 1
    fb = torch.from_numpy(b).float()[:, None] / 127.5 - 1
    np.testing.assert_allclose(ssim(fa, fb), ssim(fa, fb, data_range=2.0))
    np.testing.assert_allclose(ssim(fa, fb), [_ssim_by_loops(fa[i, 0].double().numpy(), fb[i, 0].double().numpy(), 2.0)
                                              for i in range(3)], atol=1e-6)


def test_ssim_falls_with_noise_and_is_symmetric():
    rng = np.random.default_rng(2)
    base = np.kron(rng.integers(0, 256, (1, 8, 8)), np.ones((1, 8, 8))).astype(np.uint8)   # smooth blocks
    noisy = [np.clip(base + rng.normal(0, s, base.shape), 0, 255).astype(np.uint8) for s in (5, 20, 60)]
    scores = [ssim(base, n)[0] for n in noisy]
    assert scores[0] > scores[1] > scores[2]
    assert ssim(noisy[1], base)[0] == pytest.approx(scores[1], abs=1e-12)


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    assert g.sum() == pytest.approx(1.0) and g.argmax() == 5 and g[0] == pytest.approx(g[-1])
    assert g[5] / g[6] == pytest.approx(math.exp(1 / (2 * 1.5 ** 2)))


def test_psnr_and_l1_hand_checked():
    x = np.zeros((2, 16, 16), np.uint8)
    y = np.full((2, 16, 16), 25, np.uint8)
    y[1] = 0
    # MSE = 625 -> 10 log10(255^2 / 625) = 20 log10(10.2)
    np.testing.assert_allclose(psnr(x, y), [20 * math.log10(10.2), np.inf])
    np.testing.assert_allclose(l1(x, y), [25.0, 0.0])
    # float images: range 2 -> an error of 0.02 everywhere is 20 log10(2 / 0.02) = 40 dB
    f = torch.zeros(1, 1, 8, 8)
    assert psnr(f, f + 0.02)[0] == pytest.approx(40.0, abs=1e-4)


def test_chunking_and_memmap_give_the_same_numbers(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (7, 16, 16), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    for fn in (ssim, psnr, l1):
        np.testing.assert_allclose(fn(mm, b, chunk=3), fn(a, b), rtol=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 17), np.uint8))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="gray"):
        psnr(np.zeros((1, 3, 8, 8)), np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="data_range"):
        psnr(np.zeros((1, 8, 8), np.int32), np.zeros((1, 8, 8), np.int32))


# ---------------------------------------------------------------------------------------------------- KID

def _mmd2_by_loops(a: np.ndarray, b: np.ndarray) -> float:
    d = a.shape[1]
    k = lambda u, v: (float(u @ v) / d + 1.0) ** 3  # noqa: E731
    m, n = len(a), len(b)
    saa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sbb = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sab = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return saa + sbb - 2 * sab


def test_mmd_matches_direct_double_loop():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, (12, 5)), rng.normal(0.5, 1.2, (9, 5))
    assert polynomial_mmd2_unbiased(a, b) == pytest.approx(_mmd2_by_loops(a, b), rel=1e-10)
    # one subset as large as the smaller set: KID is that MMD on a random subset of the larger one
    res = kid(a[:9], b, n_subsets=1, subset_size=100)
    assert res.subset_size == 9 and res.mean == pytest.approx(_mmd2_by_loops(a[:9], b), rel=1e-10)


def test_kid_same_distribution_near_zero_different_positive():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (600, 16))
    same = kid(x[:300], x[300:], n_subsets=20, subset_size=200)
    other = kid(x[:300], rng.normal(0.4, 1, (300, 16)), n_subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert other.mean > 0.05 and other.mean > 10 * abs(same.mean)
    assert other.std > 0 and other.n_subsets == 20
    assert kid(x[:300], x[300:], n_subsets=20, subset_size=200) == same    # deterministic for a seed


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same d"):
        kid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kid(np.zeros((1, 3)), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------ verification

def test_calibration_hand_checked():
    genuine = [0.1, 0.2, 0.3, 0.6]
    impostor = [0.4, 0.5, 0.7, 0.8]
    cal = calibrate_verification(genuine, impostor, far_target=0.01)
    # threshold 0.45: accepts 0.1, 0.2, 0.3 (genuine) and 0.4 (impostor) -> FAR = FRR = 1/4
    assert cal.eer == pytest.approx(0.25) and cal.eer_threshold == pytest.approx(0.45)
    # no false accept allowed: best threshold is just under 0.4, accepting 3 of 4 genuine pairs
    assert cal.far_threshold == pytest.approx(0.35) and cal.tar_at_far == pytest.approx(0.75)
    assert cal.far_at_threshold == 0.0 and cal.n_genuine == 4 and cal.n_impostor == 4
    assert pass_rate(genuine, cal.eer_threshold) == 0.75 and pass_rate(impostor, cal.eer_threshold) == 0.25


def test_calibration_separated_and_gaussian():
    cal = calibrate_verification([0.1, 0.3, 0.5], [1.0, 1.5, 2.0])
    assert cal.eer == 0.0 and 0.5 < cal.eer_threshold < 1.0 and cal.tar_at_far == 1.0
    rng = np.random.default_rng(6)
    gen, imp = rng.normal(0, 1, 200_000), rng.normal(2, 1, 200_000)
    cal = calibrate_verification(gen, imp)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    assert cal.eer == pytest.approx(phi(-1), abs=0.005) and cal.eer_threshold == pytest.approx(1.0, abs=0.03)
    # FAR 1%: threshold at the 1% quantile of N(2, 1) = 2 - 2.326; TAR = phi(-0.326)
    assert cal.far_threshold == pytest.approx(2 - 2.3263, abs=0.03)
    assert cal.tar_at_far == pytest.approx(phi(2 - 2.3263), abs=0.01)
    assert cal.far_at_threshold <= 0.01


def test_verification_curve_is_monotone():
    rng = np.random.default_rng(7)
    t, far, tar = verification_curve(rng.random(50), rng.random(70) + 0.3)
    assert np.all(np.diff(t) > 0) and np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)
    assert far[0] == tar[0] == 0 and far[-1] == tar[-1] == 1


def test_bad_distances_raise():
    with pytest.raises(ValueError, match="no genuine"):
        calibrate_verification([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        calibrate_verification([0.1, np.nan], [1.0])


def test_pairwise_distances():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    want = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    np.testing.assert_allclose(pairwise_distances(a, b), want, atol=1e-12)
    assert np.allclose(np.diag(pairwise_distances(a)), 0)


def test_identity_calibration_tool_counts_pairs_per_set():
    """tools/calibrate_identity.py: each pair set holds the pairs its docstring describes, counted once."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "calibrate_identity.py"
    spec = importlib.util.spec_from_file_location("calibrate_identity", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    meta = [{"subject": s, "expression": e, "pose": p} for s in ("a", "b", "c")
            for e in ("neutral", "happy") for p in ("frontal", "left_3quarter")]
    rng = np.random.default_rng(9)
    centres = {s: rng.normal(size=8) * 10 for s in "abc"}
    emb = np.stack([centres[m["subject"]] + rng.normal(size=8) for m in meta])
    out = tool.calibrate_variant(emb, meta)
    assert (out["expression"]["n_genuine"], out["expression"]["n_impostor"]) == (3, 6)
    assert (out["pose"]["n_genuine"], out["pose"]["n_impostor"]) == (6, 12)      # same expression only
    assert (out["expression_and_pose"]["n_genuine"], out["expression_and_pose"]["n_impostor"]) == (3, 6)
    assert (out["all"]["n_genuine"], out["all"]["n_impostor"]) == (18, 48)        # 3 * C(4,2); C(12,2) - 18
    assert out["all"]["eer"] == 0.0 and out["all"]["genuine_mean"] < out["all"]["impostor_mean"]
