"""The demo job end to end on two of the shipped example photos, and the shipped default model's file."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nfgan.checkpoint import save_checkpoint
from nfgan.demo import default_model, format_summary, list_photos, main, run_demo
from nfgan.inference import export_model, load_model
from nfgan.models.networks import build_networks

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "london"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """An (untrained) NFGAN generator exported the way tools/export_default_model.py does it."""
    d = tmp_path_factory.mktemp("demo_model")
    torch.manual_seed(0)
    nets = build_networks()
    ck = save_checkpoint(d / "step_00000000.safetensors", 0, nets,
                         model={"latent_dim": 256, "image_size": 64, "lrelu_alpha": 0.3, "init_std": 0.02},
                         extra={"config": {"data": {"flip_left_poses": True}}})
    return export_model(ck, d / "model.safetensors", identity_thresholds={"dlib": 0.59})


def test_examples_are_held_out_london_subjects():
    import json

    photos = list_photos(EXAMPLES)
    assert len(photos) == 20
    test_subjects = set(json.loads((REPO / "src" / "nfgan" / "assets" / "splits" / "london.json").read_text())["test"])
    assert {p["subject"] for p in photos} <= test_subjects
    assert {p["expression"] for p in photos} == {"neutral", "happy"}
    assert {p["pose"] for p in photos} == {"frontal", "left_3quarter", "right_3quarter", "left_profile", "right_profile"}
    assert all(p["path"].is_file() for p in photos)
    assert "CC BY 4.0" in (EXAMPLES / "ATTRIBUTION.md").read_text()
    assert sum(p["path"].stat().st_size for p in photos) < 1.2e6


def test_demo_end_to_end_on_two_photos(small_model, tmp_path, capsys):
    s = run_demo(EXAMPLES, small_model, tmp_path / "demo", limit=2, identity=("dlib",), expression=("fer",),
                 tile=64, progress=False)
    assert s["photos"] == 2 and s["aligned"] == 2 and not s["failed"]
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "demo" / "grid.png"))
    assert grid.shape == (14 + 2 * 66 + 2, 120 + 4 * 66 + 2)     # 2 rows x (photo | input | output | truth)
    # overview: per subject 3 rows (photo, aligned, output) x one column per expression/view + the truth column
    ov = np.asarray(Image.open(tmp_path / "demo" / "overview.png"))
    assert ov.shape == (14 + 3 * 98 + 2, 84 + 3 * 98 + 2)
    truth = lambda r: ov[14 + 2 + r * 98: 14 + 2 + r * 98 + 96, 84 + 2 + 2 * 98: 84 + 2 + 2 * 98 + 96]  # noqa: E731
    assert (truth(0) == 255).all() and (truth(1) == 255).all() and truth(2).std() > 10   # only in the output row
    with open(tmp_path / "demo" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["pose"] for r in rows] == ["frontal", "left_3quarter"]
    assert all(float(r["id_dist_dlib"]) > 0 for r in rows)
    assert s["identity_threshold"] == {"dlib": 0.59}
    assert 0.0 <= s["identity_pass"]["dlib"] <= 1.0 and 0.0 <= s["output_neutral"]["fer"] <= 1.0
    # the frontal neutral photo is its subject's ground truth
    assert -1.0 <= float(rows[0]["ssim_to_gt"]) < 1.0
    text = format_summary(s)
    assert "identity kept (dlib" in text and "classified neutral (fer)" in text
    # the CLI entry point, on a folder without a face: a clear error naming the file and the reason
    empty = tmp_path / "noface"
    empty.mkdir()
    from PIL import Image as _I

    _I.fromarray(np.full((80, 80), 128, np.uint8)).save(empty / "blank.png")
    code = main(["--photos", str(empty), "--model", str(small_model), "--out", str(tmp_path / "d2"),
                 "--identity", "dlib", "--expression", "fer", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "blank.png" in err and "no face" in err


def _shipped(which: str) -> Path:
    from nfgan.inference.normalizer import nfgan_model_path

    return default_model() if which == "default" else nfgan_model_path()


@pytest.mark.parametrize("which,kind", [("default", "pix2pix"), ("nfgan", "nfgan")])
def test_shipped_models(which, kind):
    path = _shipped(which)
    assert path.is_file(), f"{path}: a shipped model is missing (tools/export_default_model.py)"
    g = load_model(path)
    assert g.kind == kind and g.info["model"]["image_size"] == 64
    assert g.info["name"] == path.name.removesuffix(".safetensors")
    assert path.stat().st_size < 20e6
    assert "CC BY 4.0" in g.info["training_data"]["license"]
    assert set(g.info["identity_thresholds"]) >= {"dlib"}
    x = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        y = g(x)
    assert y.shape == (1, 1, 64, 64) and torch.isfinite(y).all()


@pytest.mark.parametrize("which", ["default", "nfgan"])
def test_shipped_models_record_their_training_subjects_for_the_fer_guard(which):
    import json

    from nfgan.fer.augment import recorded_train_subjects

    splits = json.loads((REPO / "src" / "nfgan" / "assets" / "splits" / "london.json").read_text())
    recorded = recorded_train_subjects(_shipped(which))
    assert recorded == sorted(splits["train"])
    assert not set(recorded) & set(splits["test"])


def test_shipped_models_load_by_name_and_the_research_model_says_so():
    from nfgan.inference.generator import SHIPPED_MODELS, shipped_model

    for name, file in SHIPPED_MODELS.items():
        assert shipped_model(name).name == file and load_model(name).info["name"] == file.removesuffix(".safetensors")
    g = load_model("all_data")
    assert g.kind == "pix2pix" and g.frontalize and g.info["config"]["loss"]["neutral"] > 0
    assert "non-commercial research use only" in g.info["license"]
    sets = {d["source"]: d for d in g.info["training_data"]}
    assert set(sets) == {"london", "canada", "ckplus", "jaffe", "yale"}
    assert sets["ckplus"]["license"] == "research use only" and sets["london"]["license"] == "CC BY 4.0"
    # every training subject is listed for the FER leak guard, none of a set's test subjects among them
    assert set(sets["london"]["test"]).isdisjoint(g.info["train_subjects"])
    assert {"S010", "KL", "001", "subject01"} & set(g.info["train_subjects"]) >= {"S010", "KL", "001"}
    with pytest.raises(Exception, match="shipped model"):
        load_model("no_such_model")
    # it normalises the example faces to faces (not blank), within the generator's range
    from PIL import Image

    faces = np.stack([np.asarray(Image.open(p).convert("L").resize((64, 64)))
                      for p in sorted(EXAMPLES.rglob("*.jpg"))[:4]])
    out = g.normalize(faces)
    assert out.shape == faces.shape and out.reshape(len(out), -1).std(1).min() > 10
