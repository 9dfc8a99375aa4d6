"""TF.js reader/executor and the ported evaluators, checked against the original models run by tfjs in Node.

Golden outputs: tests/data/tfjs_golden/golden.npz (tools/tfjs/make_golden.py). Tolerance: max abs
difference < 1e-4 on every output (float32 on both sides; observed differences are ~1e-6).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nfgan.models.auxiliary.embedders import EMBEDDERS, Embedder, FaceresDeepEmbedder, as_nhwc_255
from nfgan.models.auxiliary.embedders import embedder as make_embedder
from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier, FaceExpressionNet
from nfgan.models.auxiliary.tfjs_graph import (TfjsFormatError, TfjsGraph, conv2d_nhwc, decode_weights, depthwise_conv2d_nhwc,
                              load_graph, pool_nhwc, resize_bilinear_nhwc, same_padding, save_graph)

HERE = Path(__file__).resolve().parent
NODE_MODELS = HERE.parent / "tools" / "tfjs" / "node_modules" / "@vladmandic" / "human-models" / "models"
TOL = 1e-4


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


@pytest.fixture(scope="module")
def golden_embeddings(golden, embedder):
    """Public-pipeline embeddings of the golden faces, computed once: {'rgb112': N x 1024, 'gray64': ...}."""
    return {"rgb112": embedder.embed(golden["faces_rgb112"]), "gray64": embedder.embed(golden["faces_gray64"])}


@pytest.fixture(scope="module")
def embedders(embedder):
    """Every shipped embedder by name (faceres is the ``embedder`` fixture's instance)."""
    return {"faceres": embedder, "faceres_deep": FaceresDeepEmbedder()}


@pytest.fixture(scope="module")
def golden_embeddings_of(golden, embedders, golden_embeddings):
    """``golden_embeddings`` for every shipped embedder, by name."""
    return {name: golden_embeddings if name == "faceres" else
            {"rgb112": e.embed(golden["faces_rgb112"]), "gray64": e.embed(golden["faces_gray64"])}
            for name, e in embedders.items()}


# ------------------------------------------------------------------------------------------ weight format

def _manifest_bytes():
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=(2, 3)).astype(np.float32)
    q8 = np.array([0, 1, 255, 128], np.uint8)
    q16 = np.array([0, 65535, 1000], np.uint16)
    h16 = np.array([1.5, -2.25, 65504.0], np.float16)
    i32 = np.array([3, -7], np.int32)
    blob = f32.tobytes() + q8.tobytes() + q16.tobytes() + h16.tobytes() + i32.tobytes()
    manifest = [{"paths": ["a.bin", "b.bin"], "weights": [
        {"name": "f", "shape": [2, 3], "dtype": "float32"},
        {"name": "u8", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "u16", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": 0.001, "min": 2.0}},
        {"name": "h", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "float16", "original_dtype": "float32"}},
        {"name": "i", "shape": [2], "dtype": "int32"}]}]
    shards = {"a.bin": blob[:10], "b.bin": blob[10:]}  # a shard boundary inside a weight
    return manifest, shards, (f32, q8, q16, h16, i32)


def test_decode_weights_dequantises_every_kind_across_shards():
    manifest, shards, (f32, q8, q16, h16, i32) = _manifest_bytes()
    w = decode_weights(manifest, shards.__getitem__)
    np.testing.assert_array_equal(w["f"], f32)
    np.testing.assert_allclose(w["u8"], [-1.0, -0.5, 126.5, 63.0])
    np.testing.assert_allclose(w["u16"], [2.0, 67.535, 3.0], rtol=1e-6)
    np.testing.assert_array_equal(w["h"], [1.5, -2.25, 65504.0])
    assert w["h"].dtype == np.float32 and w["u8"].dtype == np.float32
    np.testing.assert_array_equal(w["i"], i32)
    assert w["i"].dtype == np.int32


def test_decode_weights_names_truncated_shard():
    manifest, shards, _ = _manifest_bytes()
    shards["b.bin"] = shards["b.bin"][:-3]
    with pytest.raises(TfjsFormatError, match="end before weight 'i'"):
        decode_weights(manifest, shards.__getitem__, source="m.json")


# ------------------------------------------------------------------------------------------ NHWC ops

def _naive_conv_same(x, w, stride):
    """Direct TF 'SAME' convolution in numpy (NHWC, HWIO), written from the definition."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    pt = max((oh - 1) * stride + kh - h, 0) // 2
    pl = max((ow - 1) * stride + kw - wd, 0) // 2
    out = np.zeros((n, oh, ow, o), np.float64)
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    y, xx = i * stride + di - pt, j * stride + dj - pl
                    if 0 <= y < h and 0 <= xx < wd:
                        out[:, i, j] += x[:, y, xx] @ w[di, dj]
    return out


@pytest.mark.parametrize("size,k,stride", [(7, 3, 2), (8, 3, 2), (6, 1, 1), (5, 4, 2), (9, 3, 1)])
def test_conv2d_same_padding_matches_definition(size, k, stride):
    rng = np.random.default_rng(size * 10 + k)
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 4)).astype(np.float32)
    got = conv2d_nhwc(torch.from_numpy(x), torch.from_numpy(w), (stride, stride), "SAME").numpy()
    np.testing.assert_allclose(got, _naive_conv_same(x, w, stride), atol=1e-4)


def test_depthwise_equals_per_channel_conv():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 8, 8, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)  # channel multiplier 2: output c*2 + m
    got = depthwise_conv2d_nhwc(torch.from_numpy(x), torch.from_numpy(w), (2, 2), "SAME").numpy()
    for c in range(3):
        for m in range(2):
            ref = _naive_conv_same(x[..., c:c + 1], w[:, :, c:c + 1, m:m + 1], 2)[..., 0]
            np.testing.assert_allclose(got[..., c * 2 + m], ref, atol=1e-4)


def test_same_padding_puts_extra_pixel_after():
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(5, 1, 1) == (0, 0)


def test_avg_pool_same_averages_only_real_pixels():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4, 1)
    y = pool_nhwc(x, "avg", (3, 3), (2, 2), "SAME")[0, :, :, 0]
    # window of output (1,1) covers rows/cols 2..3 only (after-padding): mean of 10, 11, 14, 15
    assert y.shape == (2, 2) and float(y[1, 1]) == pytest.approx(12.5)
    assert float(y[0, 0]) == pytest.approx(np.mean([0, 1, 2, 4, 5, 6, 8, 9, 10]))
    m = pool_nhwc(x, "max", (3, 3), (2, 2), "SAME")[0, :, :, 0]
    assert m.tolist() == [[10.0, 11.0], [14.0, 15.0]]


def test_resize_bilinear_modes():
    x = torch.arange(4, dtype=torch.float32).reshape(1, 1, 4, 1)  # one row 0 1 2 3
    up = lambda **kw: resize_bilinear_nhwc(x, (1, 8), **kw)[0, 0, :, 0].tolist()  # noqa: E731
    assert up(align_corners=False, half_pixel_centers=False) == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]
    assert up(align_corners=False, half_pixel_centers=True) == [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
    np.testing.assert_allclose(up(align_corners=True, half_pixel_centers=False), np.linspace(0, 3, 8), atol=1e-6)


# ------------------------------------------------------------------------------------------ graph

def _tiny_graph():
    nodes = [
        {"name": "x", "op": "Placeholder"},
        {"name": "w", "op": "Const"}, {"name": "b", "op": "Const"},
        {"name": "conv", "op": "_FusedConv2D", "input": ["x", "w", "b"],
         "attr": {"strides": {"list": {"i": ["1", "2", "2", "1"]}}, "padding": {"s": "U0FNRQ=="},
                  "fused_ops": {"list": {"s": ["Qmlhc0FkZA==", "UmVsdTY="]}}, "num_args": {"i": "1"}}},
        {"name": "axes", "op": "Const"},
        {"name": "mean", "op": "Mean", "input": ["conv", "axes", "^w"], "attr": {"keep_dims": {"b": False}}},
        {"name": "out", "op": "Softmax", "input": ["mean"]},
    ]
    rng = np.random.default_rng(3)
    consts = {"w": rng.normal(size=(3, 3, 2, 4)).astype(np.float32), "b": np.full(4, 0.5, np.float32),
              "axes": np.array([1, 2], np.int32)}
    return nodes, consts


def test_graph_runs_fused_ops_and_roundtrips_through_safetensors(tmp_path):
    nodes, consts = _tiny_graph()
    g = TfjsGraph(nodes, consts, name="tiny")
    assert g.input_names == ["x"] and g.output_names == ["out"]
    x = torch.randn(3, 9, 9, 2)
    out = g.run(x)["out"]
    ref = conv2d_nhwc(x, torch.from_numpy(consts["w"]), (2, 2), "SAME") + 0.5
    ref = torch.softmax(ref.clamp(0, 6).mean(dim=(1, 2)), dim=-1)
    torch.testing.assert_close(out, ref)
    save_graph(tmp_path / "tiny.safetensors", g, {"note": "test"})
    g2 = load_graph(tmp_path / "tiny.safetensors")
    torch.testing.assert_close(g2.run(x)["out"], out)


def test_graph_rejects_unknown_ops_by_name():
    nodes, consts = _tiny_graph()
    nodes.append({"name": "weird", "op": "NonMaxSuppressionV5", "input": ["out"]})
    with pytest.raises(TfjsFormatError, match="NonMaxSuppressionV5"):
        TfjsGraph(nodes, consts, name="tiny")


def test_graph_node_failure_names_the_node():
    nodes, consts = _tiny_graph()
    g = TfjsGraph(nodes, consts, name="tiny")
    with pytest.raises(RuntimeError, match="node 'conv'"):
        g.run(torch.randn(1, 9, 9, 5))  # 5 channels for a 2-channel filter


def test_load_graph_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_graph(tmp_path / "nope.safetensors")


@pytest.mark.skipif(not NODE_MODELS.is_dir(), reason="tools/tfjs/node_modules not installed (npm ci)")
def test_executor_matches_tfjs_on_mobilefacenet(golden):
    """Covers ops faceres lacks (FusedDepthwiseConv2dNative, Abs, Squeeze, Sum, Rsqrt), read from model.json."""
    g = TfjsGraph.from_model_json(NODE_MODELS / "mobilefacenet.json")
    with torch.no_grad():
        got = g.run(torch.from_numpy(golden["faces_rgb112"]).float() / 255)["embeddings"].numpy()
    assert np.abs(got - golden["mobilefacenet|embeddings"]).max() < TOL


# ------------------------------------------------------------------------------------------ embedder

@pytest.mark.parametrize("name", ["faceres", "faceres_deep"])
def test_embedder_matches_tfjs(golden, embedders, golden_embeddings_of, name):
    """The graph's three heads on the 112 px RGB faces, and the public pipeline's unit embeddings; the golden
    case of each model has the model's name."""
    emb = embedders[name]
    faces = golden["faces_rgb112"]
    ref = golden[f"{name}|global_pooling/Mean"]
    names = ["global_pooling/Mean", "gender_pred/Sigmoid:0", "age_pred/Softmax:0"]
    with torch.no_grad():
        outs = emb.graph.run(emb.preprocess(as_nhwc_255(faces)), names)
    assert np.abs(outs[names[0]].numpy() - ref).max() < TOL * np.abs(ref).max()  # values up to ~2.5
    for out in names[1:]:
        assert np.abs(outs[out].numpy() - golden[f"{name}|{out}"]).max() < TOL
    e = golden_embeddings_of[name]["rgb112"]  # the public pipeline, same faces
    np.testing.assert_allclose(e, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=TOL)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["faceres", "faceres_deep"])
def test_embedder_gray64_pipeline_matches_tfjs(golden, golden_embeddings_of, name):
    ref = golden[f"{name}_gray64|global_pooling/Mean"]
    e = golden_embeddings_of[name]["gray64"]  # N x 64 x 64 uint8 -> RGB -> 224 (half-pixel bilinear)
    np.testing.assert_allclose(e, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=TOL)


# faceres_deep's default 0.83 is the 1 % FAR point of frontal vs 3/4 pairs; frontal impostors are closer (0.74 is
# their 1 % FAR point, docs/evaluators.md), and 001 smiling vs 002 neutral here are 0.79 apart in colour
@pytest.mark.parametrize("name,threshold", [("faceres", None), ("faceres_deep", 0.74)])
def test_embedder_separates_identities_on_golden_faces(golden_embeddings_of, name, threshold):
    cls = EMBEDDERS[name]
    for e in golden_embeddings_of[name].values():  # 001 neutral, 001 smiling, 002 neutral
        same = cls.distance(e[0], e[1])
        assert same < cls.distance(e[0], e[2]) and same < cls.distance(e[1], e[2])
    e = golden_embeddings_of[name]["rgb112"]
    assert cls.same_person(e[[0, 0, 1]], e[[1, 2, 2]], threshold).tolist() == [True, False, False]


def test_embedders_by_name_share_one_pipeline(embedders):
    """faceres_deep is faceres' class with its own asset and threshold; ``embedder(name)`` builds either."""
    deep = embedders["faceres_deep"]
    assert type(embedders["faceres"]) is Embedder and isinstance(deep, Embedder)
    assert (Embedder.name, Embedder.ASSET, Embedder.SAME_PERSON_THRESHOLD) == ("faceres", "faceres.safetensors", 0.94)
    assert (deep.name, deep.ASSET, deep.SAME_PERSON_THRESHOLD) == ("faceres_deep", "faceres_deep.safetensors", 0.83)
    assert deep.metadata["source_files"] == '["models/faceres-deep.json", "models/faceres-deep.bin"]'
    assert deep.dim == 1024 and deep.input_size == 224
    a, b = np.eye(2, 1024, dtype=np.float32), np.zeros((2, 1024), np.float32)
    b[:, 0] = [0.2, 0.15]   # distances 0.8 and 0.85: same for faceres (< 0.94), one of two for faceres_deep (< 0.83)
    assert Embedder.same_person(a[:1].repeat(2, 0), b).tolist() == [True, True]
    assert FaceresDeepEmbedder.same_person(a[:1].repeat(2, 0), b).tolist() == [True, False]
    assert isinstance(make_embedder("faceres_deep", batch_size=4), FaceresDeepEmbedder)
    with pytest.raises(ValueError, match="faceres_deep"):
        make_embedder("mobileface")


def test_faceres_deep_evaluator_separates_the_example_people():
    """``identity_evaluators(["faceres_deep"])`` on the shipped example photos (two London people, frontal and
    3/4, neutral and smiling, aligned by nfgan): every genuine pair is closer than every impostor pair."""
    import csv

    from nfgan.data.align import align_face
    from nfgan.evaluation.evaluators import identity_evaluators

    examples = HERE.parent / "examples" / "london"
    with open(examples / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if "profile" not in r["pose"]]
    faces = np.stack([align_face(examples / r["path"]).crop for r in rows])
    (ev,) = identity_evaluators(["faceres_deep"])
    assert ev.name == "faceres_deep" and not ev.training_aligned and "HSE_FaceRec_tf" in ev.description
    e = ev.embed(faces)
    assert e.shape == (len(rows), 1024) and len({r["subject"] for r in rows}) == 2
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    subject = np.array([r["subject"] for r in rows])
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    upper = np.triu(np.ones_like(d, dtype=bool), 1)
    same = subject[:, None] == subject[None, :]
    assert d[upper & same].max() < d[upper & ~same].min()


def test_embedder_layouts_and_ranges_agree(golden, embedder, golden_embeddings):
    u8 = golden["faces_gray64"][:2]
    e_u8 = golden_embeddings["gray64"][:2]
    t = torch.from_numpy(u8).float()[:, None] / 127.5 - 1.0  # nfgan tensors: B x 1 x H x W in [-1, 1]
    np.testing.assert_allclose(embedder.embed(t), e_u8, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(u8.astype(np.float32) / 255, value_range=(0, 1)), e_u8, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(u8[..., None]), e_u8, atol=1e-5)
    with pytest.raises(ValueError, match="outside value_range"):
        embedder.embed(u8.astype(np.float32))  # 0..255 floats read as [-1, 1]
    with pytest.raises(ValueError, match="channels"):
        embedder.embed(np.zeros((2, 8, 8, 2), np.uint8))


def test_embedder_is_a_differentiable_feature_net(golden, embedder):
    x = (torch.from_numpy(golden["faces_gray64"][:2]).float()[:, None] / 127.5 - 1.0).requires_grad_(True)
    (feat,) = embedder(x)
    assert feat.shape == (2, 1024)
    (feat[0] @ feat[1]).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(not p.requires_grad for p in embedder.parameters())


def test_embedder_identifies_london_subjects(shared_data, embedder):
    """Smiling front faces of 8 people matched against their neutral faces (centre crops, no aligner)."""
    from PIL import Image

    def crop(rel):
        img = Image.open(shared_data / "london" / rel).convert("L")
        return np.asarray(img.crop((136, 120, 376, 360)).resize((64, 64), Image.BILINEAR))

    subjects = [f"{i:03d}" for i in range(1, 9)]
    neutral = embedder.embed(np.stack([crop(f"neutral_front/{s}_03.jpg") for s in subjects]))
    smiling = embedder.embed(np.stack([crop(f"smiling_front/{s}_08.jpg") for s in subjects]))
    d = np.linalg.norm(smiling[:, None] - neutral[None], axis=-1)
    assert (d.argmin(axis=1) == np.arange(len(subjects))).mean() >= 0.75


# ------------------------------------------------------------------------------------------ expressions

@pytest.mark.parametrize("faces_key,golden_key", [("faces_rgb112", "faceapi_expression|probabilities"),
                                                   ("faces_gray64", "faceapi_expression_gray64|probabilities")])
def test_faceapi_expression_matches_tfjs(golden, faces_key, golden_key):
    clf = ExpressionClassifier("faceapi")
    p = clf.predict(golden[faces_key])
    assert p.shape == (3, 7)
    assert np.abs(p - golden[golden_key]).max() < TOL
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_minixception_expression_matches_tfjs(golden):
    clf = ExpressionClassifier("minixception")
    p = clf.predict(golden["faces_gray64"])
    assert np.abs(p - golden["emotion|Identity:0"]).max() < TOL


def test_expression_classes_use_schema_vocabulary(golden):
    from nfgan.data.schema import EXPRESSIONS

    clf = ExpressionClassifier("faceapi")
    assert set(clf.labels) <= set(EXPRESSIONS) and len(set(clf.labels)) == 7
    faces = golden["faces_rgb112"]  # 001 neutral, 001 smiling, 002 neutral (see golden meta)
    p = clf.predict(faces)
    assert clf.predict_labels(faces) == [f["expression"] for f in golden["meta"]["faces"]] == clf.top_labels(p)
    assert clf.probability_of(p, "smiling")[1] > 0.9
    assert clf.neutral_rate(faces) == pytest.approx(2 / 3) and clf.rate(faces, "smiling") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="contempt"):
        clf.probability_of(p, "contempt")


def test_expression_forward_takes_nfgan_tensors(golden):
    clf = ExpressionClassifier("faceapi")
    u8 = golden["faces_gray64"]
    x = (torch.from_numpy(u8).float()[:, None] / 127.5 - 1.0).requires_grad_(True)
    p = clf(x)
    np.testing.assert_allclose(p.detach().numpy(), clf.predict(u8), atol=1e-5)
    p[:, clf.labels.index("neutral")].sum().backward()
    assert float(x.grad.abs().sum()) > 0


def test_faceapi_net_requires_all_weights():
    with pytest.raises(ValueError, match="lack"):
        FaceExpressionNet({"fc/bias": torch.zeros(7)})


def test_pad_to_square_centres_like_face_api():
    from nfgan.models.auxiliary.expression_faceapi import pad_to_square

    x = torch.ones(1, 2, 5, 1)
    y = pad_to_square(x)[0, :, :, 0]
    assert y.shape == (5, 5)
    assert y.sum(dim=1).tolist() == [0, 5, 5, 0, 0]  # 3 rows of padding: 1 before, 2 after


@pytest.mark.skipif(not NODE_MODELS.is_dir(), reason="tools/tfjs/node_modules not installed (npm ci)")
def test_conversion_script_regenerates_the_shipped_assets(tmp_path):
    import importlib.util

    from safetensors.torch import load_file

    from nfgan.weights import assets_dir

    script = HERE.parent / "tools" / "convert_tfjs_models.py"
    spec = importlib.util.spec_from_file_location("convert_tfjs_models", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    for name in ("faceres", "faceres_deep", "emotion_minixception", "faceapi_expression"):
        new = load_file(str(tmp_path / f"{name}.safetensors"))
        shipped = load_file(str(assets_dir() / f"{name}.safetensors"))
        assert new.keys() == shipped.keys()
        assert all(torch.equal(new[k], shipped[k]) for k in new)
    assert load_file(str(tmp_path / "faceres.safetensors"))["feats/kernel"].dtype == torch.float16
    assert load_file(str(tmp_path / "faceres_deep.safetensors"))["feats/kernel"].dtype == torch.float32   # as published
    # --only writes just the named assets
    assert module.main(["--out", str(tmp_path / "only"), "--only", "faceres_deep"]) == 0
    assert [p.name for p in (tmp_path / "only").iterdir()] == ["faceres_deep.safetensors"]
