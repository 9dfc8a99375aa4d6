"""Our reader of dlib's serialisation and the PyTorch port of dlib's face recognition ResNet.

The reference is dlib itself (dlib-bin, ``import dlib``): the port must give the same 128-d descriptors.
"""
from __future__ import annotations

import csv
import math
import struct

import numpy as np
import pytest
import torch

from nfgan.models.auxiliary import dlib_resnet as dr
from nfgan.weights import dlib_model_path

dlib = pytest.importorskip("dlib")


# ---------------------------------------------------------------- a tiny independent encoder for the format
def enc_int(v: int) -> bytes:
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def enc_float(x: float) -> bytes:
    m, e = math.frexp(x)  # x = m * 2**e, 0.5 <= |m| < 1
    mant = int(m * (1 << 53))
    return enc_int(mant) + enc_int(e - 53)


def enc_str(s: str) -> bytes:
    return enc_int(len(s)) + s.encode()


def enc_tensor(a: np.ndarray, version: int = 2) -> bytes:
    shape = a.reshape((1,) * (4 - a.ndim) + a.shape).shape if a.ndim < 4 else a.shape
    head = enc_int(version) + b"".join(enc_int(s) for s in shape)
    if version == 2:
        return head + a.astype("<f4").tobytes()
    return head + b"".join(enc_float(float(v)) for v in a.reshape(-1))


def test_reader_decodes_primitives():
    a = np.arange(6, dtype=np.float32).reshape(1, 2, 1, 3) * 0.25 - 0.5
    blob = (enc_int(0) + enc_int(300) + enc_int(-7) + enc_int(2**40) + b"1" + b"0" + enc_str("con_4")
            + enc_float(122.782) + enc_float(-0.6) + enc_tensor(a, 2) + enc_tensor(a, 1))
    r = dr._Reader(blob, "mem")
    assert [r.int(), r.int(), r.int(), r.int()] == [0, 300, -7, 2**40]
    assert (r.bool(), r.bool()) == (True, False)
    assert r.string() == "con_4"
    assert r.float() == pytest.approx(122.782, abs=1e-12)
    assert r.float() == pytest.approx(-0.6, abs=1e-12)
    np.testing.assert_array_equal(r.tensor(), a)
    np.testing.assert_array_equal(r.tensor(), a)
    assert r.pos == len(blob)
    with pytest.raises(dr.DlibFormatError, match="mem: unexpected end of file"):
        r.int()


def test_shipped_file_parses_into_the_expected_layers():
    net = dr.read_dlib_net(dlib_model_path("resnet"))
    kinds = [layer.kind for layer in net.layers]
    assert net.loss == "loss_metric_2" and net.loss_params["distance_threshold"] == pytest.approx(0.6)
    assert net.input_size == (150, 150)
    assert net.input_mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert len(kinds) == 108 and kinds == dr._expected_layer_kinds()
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "con": 29, "affine": 29, "relu": 29, "add_prev": 14, "avg_pool": 5, "max_pool": 1, "fc": 1}
    first = net.layers[0]
    assert first.tensors["weight"].shape == (32, 3, 7, 7) and first.params["padding"] == (0, 0)
    assert net.layers[-1].tensors["weight"].shape == (256, 128)
    sd = dr.state_dict_from_dlib(net)
    assert set(sd) == set(dr.DlibFaceResNet().state_dict())
    n_params = sum(v.numel() for k, v in sd.items() if k != "mean_rgb")
    assert n_params == sum(layer.tensors[t].size for layer in net.layers for t in layer.tensors)


def test_damaged_files_give_clear_errors(tmp_path):
    data = dlib_model_path("resnet").read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(dr.DlibFormatError, match=r"cut\.dat: unexpected end of file"):
        dr.read_dlib_net(cut)
    other = tmp_path / "predictor.dat"
    other.write_bytes(dlib_model_path("landmarks5").read_bytes()[:4096])
    with pytest.raises(dr.DlibFormatError, match=r"predictor\.dat"):
        dr.read_dlib_net(other)
    with pytest.raises(dr.DlibFormatError, match=r"missing\.dat: cannot read"):
        dr.read_dlib_net(tmp_path / "missing.dat")


def test_add_zero_padded_matches_dlib_semantics():
    a = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).view(2, 3, 3, 3)
    b = torch.ones(2, 2, 4, 4)
    out = dr.add_zero_padded(a, b)
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out[:, :2, :3, :3], a[:, :2] + 1)
    torch.testing.assert_close(out[:, 2, :3, :3], a[:, 2])
    assert float(out[:, 2, 3, :].abs().sum()) == 0.0  # padded on both sides: zero + zero
    torch.testing.assert_close(out[:, :2, 3, :], torch.ones(2, 2, 4))


@pytest.fixture(scope="module")
def port():
    return dr.load_dlib_face_resnet()


@pytest.fixture(scope="module")
def dlib_rec():
    return dlib.face_recognition_model_v1(str(dlib_model_path("resnet")))


def descriptors(port, chips: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        return port(x).double().numpy()


def test_port_matches_dlib_on_generated_chips(port, dlib_rec):
    """Always runs: smooth random colour images and a gray one, 150x150, straight into both networks."""
    rng = np.random.default_rng(0)
    chips = []
    for _ in range(3):
        coarse = rng.uniform(0, 255, size=(10, 10, 3))
        img = np.kron(coarse, np.ones((15, 15, 1))) + rng.normal(0, 8, size=(150, 150, 3))
        chips.append(np.clip(img, 0, 255).astype(np.uint8))
    gray = chips[0].mean(axis=2).astype(np.uint8)
    chips.append(np.repeat(gray[:, :, None], 3, axis=2))
    ref = np.stack([np.array(dlib_rec.compute_face_descriptor(c)) for c in chips])
    ours = descriptors(port, chips)
    assert np.abs(ours - ref).max() < 1e-5
    assert np.abs(ref).max() > 0.05  # a real, non-degenerate output


def london_chips(root, n: int) -> tuple[list[np.ndarray], list[str]]:
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks68")))
    chips, subjects = [], []
    rows = list(csv.DictReader(open(root / "london" / "manifest.csv")))
    rows = [r for r in rows if r["pose"] == "frontal"]
    for r in rows:
        img = np.array(Image.open(root / "london" / r["path"]).convert("RGB"))
        dets = detector(img, 0)
        if len(dets) != 1:
            continue
        shape = predictor(img, dets[0])
        chips.append(dlib.get_face_chip(img, shape, size=150, padding=0.25))
        subjects.append(r["subject"])
        if len(chips) == n:
            break
    return chips, subjects


def test_port_matches_dlib_on_london_faces(shared_data, port, dlib_rec):
    chips, _ = london_chips(shared_data, 8)
    assert len(chips) == 8
    ref = np.stack([np.array(dlib_rec.compute_face_descriptor(c)) for c in chips])
    ours = descriptors(port, chips)
    assert np.abs(ours - ref).max() < 1e-5
    # batched (dlib's batch API) and single-image results agree too
    batch = np.array([np.array(d) for d in dlib_rec.compute_face_descriptor(chips)])
    assert np.abs(ours - batch).max() < 1e-5


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path / "cache"))
    dat = tmp_path / "net.dat"
    dat.write_bytes(dlib_model_path("resnet").read_bytes())
    first = dr.load_dlib_face_resnet(dat)
    files = list((tmp_path / "cache").glob("dlib_face_resnet-*.safetensors"))
    assert len(files) == 1

    def no_parse(*a, **k):
        raise AssertionError("the .dat file was parsed again despite the cache")

    monkeypatch.setattr(dr, "read_dlib_net", no_parse)
    second = dr.load_dlib_face_resnet(dat)
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k
    assert all(not p.requires_grad for p in second.parameters()) and not second.training


def test_stage_shapes(port):
    f = port.features(torch.full((1, 3, 150, 150), 128.0))
    shapes = {k: tuple(v.shape[1:]) for k, v in f.items()}
    assert shapes == {"stem": (32, 35, 35), "level4": (32, 35, 35), "level3": (64, 17, 17),
                      "level2": (128, 8, 8), "level1": (256, 4, 4), "level0": (256, 2, 2),
                      "pooled": (256,), "descriptor": (128,)}


def test_float_encoding_of_mean_is_exact():
    # dlib stores the input means as float; ours must be the same float32 value
    net = dr.read_dlib_net(dlib_model_path("resnet"))
    for v in net.input_mean_rgb:
        assert struct.unpack("<f", struct.pack("<f", v))[0] == v


# ---------------------------------------------------------------- the folded copy used in training
def _smooth_faces(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)


def test_folded_network_equals_the_port_on_every_stage(port):
    from nfgan.models.auxiliary.feature_nets import gray_to_rgb255, resize_faces

    fused = dr.FusedGrayResNet(port)
    x = _smooth_faces(3)
    ref = port.features(gray_to_rgb255(x, dr.DLIB_CHIP_SIZE))
    got = fused.features(resize_faces(x, dr.DLIB_CHIP_SIZE))
    assert set(got) == set(ref)
    for k in ref:
        scale = float(ref[k].abs().max())
        assert float((got[k] - ref[k]).abs().max()) <= 2e-6 * max(scale, 1.0), k
    # stopping early gives the same prefix
    part = fused.features(resize_faces(x, dr.DLIB_CHIP_SIZE), upto="level2")
    assert list(part) == ["stem", "level4", "level3", "level2"]
    assert torch.equal(part["level2"], got["level2"])


def test_folded_network_casts_once_for_bf16_and_still_runs_fp32(port):
    from nfgan.models.auxiliary.feature_nets import resize_faces

    fused = dr.FusedGrayResNet(port)
    x = resize_faces(_smooth_faces(2, seed=1), dr.DLIB_CHIP_SIZE)
    fp32 = fused.features(x)["descriptor"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = fused.features(x)["descriptor"]
    assert low.dtype == torch.bfloat16
    assert float((low.float() - fp32).abs().max()) < 0.02          # bf16 tolerance on a ~0.3-scale output
    again = fused.features(x)["descriptor"]                          # the bf16 copy does not leak into fp32
    assert again.dtype == torch.float32 and torch.equal(again, fp32)


def test_identity_net_folded_and_unfolded_agree_with_gradients():
    from nfgan.models.auxiliary.feature_nets import DlibIdentityNet

    net = DlibIdentityNet()
    x1 = _smooth_faces(2, seed=2).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    net.fold = True
    a = net(x1)
    net.fold = False
    b = net(x2)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, atol=1e-5)
    sum(t.sum() for t in a).backward()
    sum(t.sum() for t in b).backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-4, atol=1e-6)
