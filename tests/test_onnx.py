"""`nfgan export --format onnx`, the onnxruntime backend (`Normalizer.from_onnx`, `nfgan normalize --backend
onnxruntime`) and the faster torch options of `Generator.normalize`: parity with today's torch path on real faces
(the aligned London example photos) and generated prepared faces (docs/deploy.md)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, make_prepared, make_tiny_fer, p2p_config
from nfgan.cli import main
from nfgan.inference import DEFAULT_MODEL_NAME, Normalizer, default_model_path, load_model, nfgan_model_path

HAVE_ORT = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))

needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="onnx / onnxruntime are not installed "
                                                    "(the optional extra: pip install 'nfgan[onnx]')")
PHOTOS = sorted((REPO / "examples" / "london").glob("*/*.jpg"))
DEFAULT_ONNX = DEFAULT_MODEL_NAME.removesuffix(".safetensors") + ".onnx"   # the default normaliser's graph


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def london(london_examples):
    """The example photos the aligner finds a face in: crops, poses, mirroring flags, landmarks."""
    return london_examples


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Prepared faces made by conftest.make_prepared (54 faces, three poses, two expressions)."""
    from nfgan.data.dataset import PreparedDataset

    ds = PreparedDataset(make_prepared(tmp_path_factory.mktemp("onnx-prepared"), subjects=9))
    return np.asarray(ds.images), ds.column("pose"), ds.column("flipped")


@pytest.fixture(scope="module")
def fer_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-fer")
    data, _ = make_tiny_fer(folder)
    assert main(["fer", "train", "--data", str(data), "--out", str(folder / "model"), "--epochs", "2",
                 "--threads", "1"]) == 0
    return data, folder / "model" / "fer_model.safetensors"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fer_model):
    """`nfgan export --format onnx` of the shipped generators and the tiny FER model (checked against torch)."""
    out = tmp_path_factory.mktemp("onnx-out")
    assert main(["export", "--format", "onnx", "-o", str(out), "--fer-model", str(fer_model[1])]) == 0
    return out


def _meta(path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@needs_ort
def test_export_writes_each_graph_with_a_dynamic_batch_and_its_metadata(exported):
    names = sorted(p.name for p in exported.glob("*.onnx"))
    assert names == sorted(["fer_model.onnx", "nfgan_london64.onnx", "nfgan_london64_decoder.onnx",
                            "nfgan_london64_encoder.onnx", DEFAULT_ONNX])
    import onnx

    unet = exported / DEFAULT_ONNX
    model = onnx.load(str(unet))
    onnx.checker.check_model(model)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "faces" and out.name == "normalized"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 64, 64]
    meta = _meta(unet)
    assert meta["nfgan.format"] == "nfgan-onnx/1" and meta["nfgan.kind"] == "pix2pix"
    assert meta["nfgan.graph"] == "normalizer" and json.loads(meta["nfgan.image_size"]) == 64
    rule = json.loads(meta["nfgan.input_rule"])
    from nfgan.data.neutral_shape import shipped

    assert rule == {"flip_left_poses": True, "frontalize": True, "fill": "mirror", "neutralize": True,
                    "neutral_shape": shipped().as_record(), "neutralize_mode": "warp_frame",
                    "neutralize_threshold": 0.013}      # the gate at inference (docs/model_card.md)
    info = json.loads(meta["nfgan.info"])
    assert info["identity_thresholds"]["dlib"] > 0 and "non-commercial research use only" in info["license"]
    five = {"london", "canada", "ckplus", "jaffe", "yale"}    # and, since round 44, SFM-turned faces of each
    assert {d["source"] for d in info["training_data"]} == (five | {"london_sfm", "canada_sfm"}
                                                            | {f"{s}_turned" for s in five})
    nf = _meta(exported / "nfgan_london64.onnx")
    assert nf["nfgan.kind"] == "nfgan" and json.loads(nf["nfgan.input_rule"]) == {"flip_left_poses": True,
                                                                                  "frontalize": False,
                                                                                  "fill": "mirror",
                                                                                  "neutralize": False}
    assert nf["nfgan.encoder_file"] == "nfgan_london64_encoder.onnx"
    assert _meta(exported / "nfgan_london64_encoder.onnx")["nfgan.graph"] == "encoder"
    fer = _meta(exported / "fer_model.onnx")
    assert fer["nfgan.kind"] == "fer" and json.loads(fer["nfgan.classes"]) == ["anger", "happy", "surprise"]
    assert json.loads(fer["nfgan.crop"]) == 60 and json.loads(fer["nfgan.tta"]) in (True, False)
    assert "fer_normalize" in fer["nfgan.pre_step"]


@needs_ort
def test_default_normaliser_in_onnxruntime_is_within_one_gray_level_of_torch(exported, london, generated):
    crops, poses, flipped, lms = london
    torch_norm = Normalizer.from_checkpoint()
    ort_norm = Normalizer.from_onnx(exported / DEFAULT_ONNX, threads=1)
    assert ort_norm.info["backend"] == "onnxruntime" and ort_norm.kind == "pix2pix"
    # the graph is the plain generator: the default's identity pull of turned faces is a PyTorch step
    want = torch_norm.normalize(crops, poses, flipped, lms, identity_pull=False)
    got = ort_norm.normalize(crops, poses, flipped, lms, batch_size=7)      # batches of another size
    assert got.shape == want.shape and _diff(got, want) <= 1
    meta = ort_norm.generator.info["onnx_metadata"]
    assert meta.get("nfgan.identity_pull_not_in_graph") == (torch_norm.generator.pull.as_dict()
                                                            if torch_norm.generator.pull else None)
    assert "identity_pull" not in meta["nfgan.info"]
    faces = generated[0]
    assert _diff(ort_norm.normalize(faces), torch_norm.normalize(faces)) <= 1
    # the backend from the safetensors file, exported in memory: the same graph
    mem = Normalizer.from_checkpoint(default_model_path(), backend="onnxruntime", threads=1)
    assert np.array_equal(mem.normalize(crops, poses, flipped, lms), got)


@needs_ort
def test_nfgan_in_onnxruntime_matches_torch_and_encodes_and_decodes(exported, london, generated):
    crops, poses, flipped, _ = london
    torch_norm = Normalizer.from_checkpoint(nfgan_model_path())
    ort_norm = Normalizer.from_onnx(exported / "nfgan_london64.onnx", threads=1)
    assert _diff(ort_norm.normalize(crops, poses, flipped), torch_norm.normalize(crops, poses, flipped)) <= 1
    faces, gposes, gflipped = generated
    assert _diff(ort_norm.normalize(faces, gposes, gflipped), torch_norm.normalize(faces, gposes, gflipped)) <= 1
    z_t, z_o = torch_norm.encode(crops), ort_norm.encode(crops)
    assert z_o.shape == z_t.shape and float((z_o - z_t).abs().max()) < 1e-4
    assert _diff(ort_norm.decode(z_t), torch_norm.decode(z_t)) <= 1


@needs_ort
def test_fer_model_in_onnxruntime_gives_the_same_probabilities(exported, fer_model):
    from nfgan.data.dataset import PreparedDataset
    from nfgan.fer.classifier import FERClassifier
    from nfgan.fer.onnx import OnnxFERClassifier

    data, path = fer_model
    faces = np.asarray(PreparedDataset(data).images)
    clf = FERClassifier(path)
    ort_clf = OnnxFERClassifier(exported / "fer_model.onnx", threads=1)
    assert ort_clf.classes == clf.classes and ort_clf.crop == clf.meta["crop"]
    want = clf.predict_proba(faces)
    got = ort_clf.predict_proba(faces, batch=5)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    # the other test-time rule too (ten crops averaged / the centre crop)
    clf.meta["tta"] = ort_clf.tta = not ort_clf.tta
    assert np.abs(ort_clf.predict_proba(faces) - clf.predict_proba(faces)).max() < 1e-4


@needs_ort
@pytest.mark.parametrize("trunk_input", [48, 96])
def test_the_pretrained_trunk_and_its_resized_input_export_exactly(trunk_input):
    """configs/fer/ckplus.yaml's net: the mini-XCEPTION trunk reading the crop resized to 96 px (antialiased
    bilinear, exported as two matrix products); 48 px: a downsizing resize, where antialiasing matters."""
    import torch

    from nfgan.fer.model import FERNet
    from nfgan.fer.onnx import _FERHead
    from nfgan.inference.export import check_graph, onnx_bytes

    net = FERNet(7, trunk="mini_xception", trunk_input=trunk_input).eval()
    data = onnx_bytes(_FERHead(net), torch.zeros(2, 1, 60, 60), ["crops"], ["probabilities", "embedding"], {})
    assert check_graph(data, _FERHead(net, exportable=False), torch.randn(3, 1, 60, 60)) < 1e-5


@needs_ort
def test_cli_normalize_with_the_onnxruntime_backend_matches_torch(exported, tmp_path, capsys):
    photos = [str(p) for p in PHOTOS if "front" in p.parent.name or "3quarter" in p.parent.name][:4]
    onx = exported / DEFAULT_ONNX
    # the graph is the plain network: the torch path without the default's identity pull of turned faces
    assert main(["normalize", *photos, "-o", str(tmp_path / "torch"), "--no-identity-pull"]) == 0
    assert main(["normalize", *photos, "--model", str(onx), "-o", str(tmp_path / "ort")]) == 0   # .onnx: auto
    assert main(["normalize", *photos, "--backend", "onnxruntime", "-o", str(tmp_path / "mem")]) == 0
    capsys.readouterr()
    for p in map(Path, photos):
        want = np.asarray(Image.open(tmp_path / "torch" / f"{p.stem}.png"))
        assert _diff(np.asarray(Image.open(tmp_path / "ort" / f"{p.stem}.png")), want) <= 1
        assert _diff(np.asarray(Image.open(tmp_path / "mem" / f"{p.stem}.png")), want) <= 1
    # an ONNX graph given to the torch backend is refused with the option to use
    assert main(["normalize", *photos, "--model", str(onx), "--backend", "torch", "-o", str(tmp_path / "x")]) == 2
    assert "--backend onnxruntime" in capsys.readouterr().err


def test_without_onnx_packages_export_and_the_backend_say_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)             # import onnx -> ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", "--format", "onnx", "-o", str(tmp_path / "e")]) == 2
    assert "pip install 'nfgan[onnx]'" in capsys.readouterr().err and not (tmp_path / "e").exists()
    crop = tmp_path / "crop.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(crop)
    assert main(["normalize", str(crop), "--backend", "onnxruntime", "-o", str(tmp_path / "n")]) == 2
    assert "pip install 'nfgan[onnx]'" in capsys.readouterr().err
    with pytest.raises(ImportError, match="nfgan\\[onnx\\]"):
        Normalizer.from_onnx()


@pytest.mark.parametrize("model,bf16_bound", [("default", 5), ("london", 3)])
def test_faster_torch_options_leave_the_default_path_and_stay_close(london, model, bf16_bound):
    import torch

    from nfgan.pixels import to_uint8, to_unit_batch

    crops, poses, flipped, lms = london
    g = load_model(model)
    keys = sorted(g.state_dict())
    # the network's paths (the default's identity pull of turned faces runs after them, always in fp32)
    today = g.normalize(crops, poses, flipped, landmarks=lms, identity_pull=False)
    with torch.no_grad():   # the default path is the plain fp32 forward, bit for bit
        plain = to_uint8(g(to_unit_batch(g.generator_inputs(crops, poses, flipped, lms))))
    assert np.array_equal(today, plain)
    cl = g.normalize(crops, poses, flipped, landmarks=lms, channels_last=True, identity_pull=False)
    assert _diff(cl, today) <= 1
    bf = g.normalize(crops, poses, flipped, landmarks=lms, bf16=True, identity_pull=False)
    # measured on these faces: 2 for london, 4 for the default (docs/deploy.md): why bf16 is off by default
    assert _diff(bf, today) <= bf16_bound
    # the channels-last copy is no sub-module, and the default path after it is unchanged
    assert sorted(g.state_dict()) == keys and all(p.is_contiguous() for p in g.parameters())
    assert np.array_equal(g.normalize(crops, poses, flipped, landmarks=lms, identity_pull=False), today)


@needs_ort
@pytest.mark.parametrize("lock", [False, True])
def test_a_tone_normalised_generator_exports_with_its_tone_steps(tmp_path, generated, lock):
    """model.tone_norm's statistics, affine maps and clamp (and model.tone_lock's second measurement) are part
    of the exported graph: onnxruntime gives the torch model's faces, for the faces as they are and for a
    darker, flatter copy."""
    from nfgan.training.loop import train

    cfg = p2p_config(make_prepared(tmp_path / "d", subjects=4), steps=2)
    cfg["model"].update(tone_norm=True, tone_lock=lock)
    train(cfg, tmp_path / "run", progress=False)
    torch_norm = Normalizer.from_checkpoint(tmp_path / "run")
    ort_norm = Normalizer.from_checkpoint(tmp_path / "run", backend="onnxruntime", threads=1)
    faces = generated[0][:12]
    flat = (faces * 0.4 + 30).astype(np.uint8)
    for x in (faces, flat):
        assert _diff(ort_norm.normalize(x), torch_norm.normalize(x)) <= 1
    assert abs(float(torch_norm.normalize(flat).mean()) - float(torch_norm.normalize(faces).mean() * 0.4 + 30)) < 6
