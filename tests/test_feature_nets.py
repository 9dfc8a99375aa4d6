"""Feature networks behind ``build_feature_net``: dlib identity/perceptual nets, VGG-Face, Light CNN."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nfgan.models.auxiliary import feature_nets as fn
from nfgan.models.auxiliary.common import WeightsFileError
from nfgan.models.auxiliary.lightcnn import MFMConv
from nfgan.models.auxiliary.vggface import VGG_CONVS, VGGFACE_MEAN_RGB
from nfgan.weights import dlib_model_path


def faces(b: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 1, 8, 8, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def assert_frozen(net: fn.FeatureNet) -> None:
    net.train()
    assert not net.training and all(not m.training for m in net.modules())
    assert all(not p.requires_grad for p in net.parameters())
    assert sum(p.numel() for p in net.parameters()) > 0


# ------------------------------------------------------------------------------------------- dlib nets
@pytest.fixture(scope="module")
def identity():
    return fn.build_feature_net({"type": "dlib_identity"})


def test_dlib_identity_shapes_frozen_and_differentiable(identity):
    x = faces(3).requires_grad_(True)
    pooled, desc = identity(x)
    assert pooled.shape == (3, 256) and desc.shape == (3, 128)
    assert bool((pooled >= 0).all())  # after the last ReLU and average pooling
    desc.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert_frozen(identity)
    assert isinstance(fn.build_feature_net("dlib_identity"), fn.DlibIdentityNet)


def test_dlib_identity_equals_dlib_on_a_gray_chip(identity):
    dlib = pytest.importorskip("dlib")
    rec = dlib.face_recognition_model_v1(str(dlib_model_path("resnet")))
    rng = np.random.default_rng(1)
    gray = np.clip(np.kron(rng.uniform(0, 255, (15, 15)), np.ones((10, 10))), 0, 255).astype(np.uint8)
    ref = np.array(rec.compute_face_descriptor(np.repeat(gray[:, :, None], 3, axis=2)))
    x = torch.from_numpy(gray).float().div(127.5).sub(1).view(1, 1, 150, 150)
    with torch.no_grad():
        ours = identity(x)[1][0].double().numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_dlib_identity_separates_people_on_64px_london_faces(shared_data, identity):
    """Same subject (neutral vs happy/smiling, frontal) must be closer than different subjects, at 64x64 gray."""
    dlib = pytest.importorskip("dlib")
    from PIL import Image

    det = dlib.get_frontal_face_detector()
    pred = dlib.shape_predictor(str(dlib_model_path("landmarks68")))
    rows = [r for r in csv.DictReader(open(shared_data / "london" / "manifest.csv")) if r["pose"] == "frontal"]
    by_subject: dict[str, dict[str, np.ndarray]] = {}
    for r in rows:
        if len(by_subject) >= 6 and r["subject"] not in by_subject:
            continue
        img = np.array(Image.open(shared_data / "london" / r["path"]).convert("RGB"))
        dets = det(img, 0)
        if len(dets) != 1:
            continue
        chip = dlib.get_face_chip(img, pred(img, dets[0]), size=64, padding=0.25)
        by_subject.setdefault(r["subject"], {})[r["expression"]] = np.asarray(Image.fromarray(chip).convert("L"))
    pairs = {s: v for s, v in by_subject.items() if {"neutral", "happy"} <= set(v)}
    assert len(pairs) >= 5
    subjects = sorted(pairs)[:5]
    x = torch.from_numpy(np.stack([pairs[s][e] for e in ("neutral", "happy") for s in subjects]))
    x = x.float().div(127.5).sub(1).unsqueeze(1)
    with torch.no_grad():
        d = identity(x)[1]
    n, s = d[:5], d[5:]
    dist = torch.cdist(n, s)
    same, other = dist.diag(), dist[~torch.eye(5, dtype=torch.bool)]
    assert float(same.max()) < float(other.min())
    assert float(same.mean()) < 0.6 < float(other.mean())  # dlib's verification threshold
    # the perceptual map (level2) also finds the same person across expressions (rank-1 identification)
    perceptual = fn.build_feature_net({"type": "dlib_perceptual"})
    with torch.no_grad():
        (maps,) = perceptual(x)
    flat = maps.flatten(1)
    nearest = torch.cdist(flat[:5], flat[5:]).argmin(dim=1)
    assert nearest.tolist() == list(range(5))


def test_dlib_perceptual_stages():
    net = fn.build_feature_net({"type": "dlib_perceptual"})
    (m,) = net(faces(2))
    assert m.shape == (2, 128, 8, 8)
    multi = fn.build_feature_net({"type": "dlib_perceptual", "stages": ["level3", "stem"]})
    a, b = multi(faces(2))
    assert a.shape == (2, 64, 17, 17) and b.shape == (2, 32, 35, 35)
    assert len(multi.resnet.blocks) == 7  # built only up to level3
    assert_frozen(net)
    with pytest.raises(ValueError, match="unknown stage"):
        fn.build_feature_net({"type": "dlib_perceptual", "stage": "conv5"})


def test_builder_rejects_bad_specs():
    with pytest.raises(ValueError, match="unknown feature net type 'vgg'"):
        fn.build_feature_net({"type": "vgg"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lyer'\]"):
        fn.build_feature_net({"type": "dlib_identity", "lyer": 3})
    with pytest.raises(ValueError, match="needs 'path'"):
        fn.build_feature_net({"type": "lightcnn"})
    with pytest.raises(ValueError, match="B x 1 x H x W"):
        fn.DlibIdentityNet.forward(fn.build_feature_net("dlib_identity"), torch.zeros(2, 64, 64))


# ----------------------------------------------------------------------------------------- VGG-Face
def vgg_state(upto: str = "conv5_3", seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (cin, cout) in VGG_CONVS.items():
        std = (2.0 / (9 * cin)) ** 0.5
        sd[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * std
        sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.01
        if name == upto:
            break
    return sd


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg_face_dag.pth"
    torch.save(vgg_state(), path)
    return path


def test_vggface_conv5_3_shape_and_cache_round_trip(vgg_file, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path / "cache"))
    net = fn.build_feature_net({"type": "vggface", "path": str(vgg_file), "layer": "conv5_3"})
    x = faces(1)
    with torch.no_grad():
        (m,) = net(x)
    assert m.shape == (1, 512, 14, 14) and bool((m >= 0).all())
    assert_frozen(net)
    cached = list((tmp_path / "cache").glob("vggface-*.safetensors"))
    assert len(cached) == 1
    original = torch.load(vgg_file, weights_only=True)
    back = load_file(str(cached[0]))
    assert set(back) == set(original) and all(torch.equal(back[k], original[k]) for k in original)
    # the cached copy, given directly as .safetensors, builds the same network
    net2 = fn.build_feature_net({"type": "vggface", "path": str(cached[0]), "layer": "conv5"})
    with torch.no_grad():
        (m2,) = net2(x)
    torch.testing.assert_close(m2, m, rtol=0, atol=0)


def test_vggface_first_layer_matches_a_direct_computation(tmp_path):
    path = tmp_path / "small.pth"
    sd = vgg_state("conv1_2", seed=3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    net = fn.build_feature_net({"type": "vggface", "path": str(path), "layers": ["conv1_1", "pool1"]})
    x = faces(2, size=224, seed=4)  # already 224: no resize
    with torch.no_grad():
        c11, p1 = net(x)
    rgb = ((x + 1) * 127.5).repeat(1, 3, 1, 1) - torch.tensor(VGGFACE_MEAN_RGB).view(1, 3, 1, 1)
    ref = F.relu(F.conv2d(rgb, sd["conv1_1.weight"], sd["conv1_1.bias"], padding=1))
    torch.testing.assert_close(c11, ref, rtol=1e-5, atol=1e-4)
    ref2 = F.max_pool2d(F.relu(F.conv2d(ref, sd["conv1_2.weight"], sd["conv1_2.bias"], padding=1)), 2)
    torch.testing.assert_close(p1, ref2, rtol=1e-5, atol=1e-4)
    with pytest.raises(WeightsFileError, match=r"small\.pth: not a VGG-Face .*'conv2_1\.weight' is missing"):
        fn.build_feature_net({"type": "vggface", "path": str(path), "layer": "conv2_1"})


def test_vggface_bad_files(tmp_path):
    sd = vgg_state("conv1_2")
    sd["conv1_2.weight"] = sd["conv1_2.weight"][:32]
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(WeightsFileError, match=r"shape\.pth: .*'conv1_2\.weight' has shape \(32, 64, 3, 3\)"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "shape.pth"), "layer": "conv1_2"})
    with pytest.raises(WeightsFileError, match=r"nothere\.pth: vggface weight file not found"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "nothere.pth")})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsFileError, match=r"junk\.pth: not a readable PyTorch checkpoint"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "junk.pth")})
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsFileError, match=r"junk\.safetensors: not a readable safetensors"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "junk.safetensors")})
    with pytest.raises(ValueError, match="unknown layer"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "shape.pth"), "layer": "fc7"})


class Payload:
    """Any non-tensor object: unpickling it would run arbitrary code in a hostile file."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_arbitrary_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": vgg_state("conv1_2"), "extra": Payload()}, path)
    with pytest.raises(WeightsFileError, match=r"evil\.pth: refused to load"):
        fn.build_feature_net({"type": "vggface", "path": str(path), "layer": "conv1_1"})
    assert "this must never run" not in capsys.readouterr().out
    from nfgan.weights import cache_dir

    assert not list(cache_dir().glob("vggface-evil*"))


# --------------------------------------------------------------------------------------- Light CNN
def lightcnn_checkpoint(variant: str, num_classes: int = 10, seed: int = 0) -> dict:
    from nfgan.models.auxiliary.lightcnn import LightCNN9, LightCNN29

    torch.manual_seed(seed)
    net = LightCNN9(num_classes) if variant == "lightcnn9" else LightCNN29(num_classes, variant.endswith("v2"))
    return {"epoch": 7, "arch": variant, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}


@pytest.mark.parametrize("variant", ["lightcnn9", "lightcnn29", "lightcnn29v2"])
def test_lightcnn_official_layout_loads(tmp_path, variant):
    path = tmp_path / f"{variant}_checkpoint.pth.tar"
    ckpt = lightcnn_checkpoint(variant)
    ckpt["prec1"] = np.float64(98.6)  # the official checkpoints carry an accuracy next to the weights
    # the released files predate torch's zip format: write one variant in the legacy format
    torch.save(ckpt, path, _use_new_zipfile_serialization=variant != "lightcnn9")
    net = fn.build_feature_net({"type": "lightcnn", "path": str(path), "variant": variant})
    x = faces(2)
    with torch.no_grad():
        f1, f2 = net(x)
    assert f1.shape == (2, 256) and f2.shape == (2, 10)
    sd = ckpt["state_dict"]
    w2 = sd["module.fc2.weight"]
    b2 = sd.get("module.fc2.bias", torch.zeros(10))
    torch.testing.assert_close(f2, f1 @ w2.T + b2)
    assert_frozen(net)
    first = "module.features.0.filter.weight" if variant == "lightcnn9" else "module.conv1.filter.weight"
    assert torch.equal(dict(net.named_parameters())["net." + first[len("module."):]], sd[first])


def test_lightcnn_wrong_variant_names_the_key(tmp_path):
    path = tmp_path / "LightCNN_9Layers_checkpoint.pth.tar"
    torch.save(lightcnn_checkpoint("lightcnn9"), path)
    with pytest.raises(WeightsFileError, match=r"LightCNN_9Layers_checkpoint\.pth\.tar: not a lightcnn29 .*'conv1\.filter\.weight'"):
        fn.build_feature_net({"type": "lightcnn", "path": str(path), "variant": "lightcnn29"})
    with pytest.raises(ValueError, match="unknown variant"):
        fn.build_feature_net({"type": "lightcnn", "path": str(path), "variant": "lightcnn4"})
    only_fc1 = fn.build_feature_net({"type": "lightcnn", "path": str(path), "layers": ["fc1"]})
    assert [t.shape for t in only_fc1(faces(1))] == [(1, 256)]


def test_mfm_is_the_max_of_the_two_filter_halves():
    torch.manual_seed(0)
    m = MFMConv(3, 4, 3, 1, 1)
    x = torch.randn(2, 3, 9, 9)
    y = F.conv2d(x, m.filter.weight, m.filter.bias, padding=1)
    torch.testing.assert_close(m(x), torch.maximum(y[:, :4], y[:, 4:]))


def test_vggface_cache_keeps_only_convolutions(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("NFGAN_CACHE", str(tmp_path / "cache"))
    sd = vgg_state("conv1_2")
    sd["fc8.weight"] = torch.zeros(7, 5)
    torch.save(sd, tmp_path / "with_fc.pth")
    fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "with_fc.pth"), "layer": "conv1_2"})
    (cached,) = (tmp_path / "cache").glob("vggface-*.safetensors")
    assert sorted(load_file(str(cached))) == sorted(k for k in sd if k.startswith("conv"))
    torch.save({"fc8.weight": torch.zeros(7, 5)}, tmp_path / "fc_only.pth")
    with pytest.raises(WeightsFileError, match=r"fc_only\.pth: contains no vggface tensors"):
        fn.build_feature_net({"type": "vggface", "path": str(tmp_path / "fc_only.pth"), "layer": "conv1_1"})
