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
    from nfgan.inference.generator import shipped_model

    return default_model() if which == "default" else shipped_model(which)


#: the face sets the default trained on (each also as SFM-turned faces since round 44)
FIVE_SETS = {"london", "canada", "ckplus", "jaffe", "yale"}


def _licences(info: dict) -> dict:
    """{dataset: licence} of a shipped model's training data (one London dict, or one entry per source)."""
    data = info["training_data"]
    return {"london": data["license"]} if isinstance(data, dict) else {d["source"]: d["license"] for d in data}


@pytest.mark.parametrize("which,kind", [("default", "pix2pix"), ("cc_by", "pix2pix"), ("london", "pix2pix"),
                                        ("nfgan", "nfgan")])
def test_shipped_models(which, kind):
    path = _shipped(which)
    assert path.is_file(), f"{path}: a shipped model is missing (tools/export_default_model.py)"
    g = load_model(path)
    assert g.kind == kind and g.info["model"]["image_size"] == 64
    assert g.info["name"] == path.name.removesuffix(".safetensors")
    assert path.stat().st_size < 20e6
    assert g.info["stored_dtype"] == "float16"                  # every shipped generator: float16, run in float32
    assert _licences(g.info)["london"] == "CC BY 4.0"
    assert set(g.info["identity_thresholds"]) >= {"dlib", "faceres"}
    x = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        y = g(x)
    assert y.shape == (1, 1, 64, 64) and torch.isfinite(y).all()


def test_shipped_names_resolve_to_files_with_their_training_data_and_terms():
    """default (= all_data) is the research model; cc_by is trained on CC BY sets only; london is the earlier
    London-only default (issue #23 item 8, docs/model_card.md)."""
    from nfgan.inference.generator import SHIPPED_MODELS, default_model_path, shipped_model

    assert shipped_model("default") == shipped_model("all_data") == default_model_path()
    assert shipped_model("default").name == "pix2pix_all_data_research64.safetensors"
    assert shipped_model("london").name == "pix2pix_lid_frontalized_london64.safetensors"
    assert shipped_model("cc_by").name == "pix2pix_cc_by64.safetensors"
    assert set(SHIPPED_MODELS) == {"default", "all_data", "cc_by", "london", "nfgan"}
    for name in ("default", "cc_by", "london"):
        assert shipped_model(name).is_file(), name
    default, cc_by, london = (load_model(n).info for n in ("default", "cc_by", "london"))
    # the default names the research-only sets and says what that means
    sfm = "CC BY 4.0 faces deformed with the Surrey Face Model: non-commercial (SFM licence)"
    turned = " faces turned with the Surrey Face Model: non-commercial (SFM licence)"
    assert _licences(default) == {"london": "CC BY 4.0", "canada": "CC BY 4.0", "ckplus": "research use only",
                                  "jaffe": "non-commercial research only", "yale": "research use",
                                  "london_sfm": sfm, "canada_sfm": sfm,   # since round 44 also SFM-turned faces:
                                  "london_turned": "CC BY 4.0" + turned, "canada_turned": "CC BY 4.0" + turned,
                                  "ckplus_turned": "research use only" + turned,
                                  "jaffe_turned": "non-commercial research only" + turned,
                                  "yale_turned": "research use" + turned}
    assert "non-commercial research use only" in default["license"]
    # cc_by: London and canada only, both CC BY 4.0, no research-only terms; the networks of its losses are
    # CC0 / MIT, and the landmark model of the alignment is named as non-commercial
    assert _licences(cc_by) == {"london": "CC BY 4.0", "canada": "CC BY 4.0"}
    assert "research" not in cc_by["license"] and "CC BY 4.0" in cc_by["license"]
    assert cc_by["config"]["loss"]["neutral"] > 0 and cc_by["step"] == 2000
    nets = cc_by["loss_networks"]
    assert {n["license"] for n in nets} <= {"CC0", "MIT"}
    assert {n["role"] for n in nets} == {"identity", "perceptual", "neutral"}     # L_feat since round 29
    assert "non-commercial" in cc_by["alignment"]["license"]
    assert set(cc_by["train_subjects"]).isdisjoint(_test_subjects(cc_by))
    assert {"S010", "KL", "subject01"}.isdisjoint(cc_by["train_subjects"])   # no CK+, JAFFE or Yale person
    # london: the earlier default, London's 70 training people
    assert _licences(london) == {"london": "CC BY 4.0"} and london["training_data"]["train_subject_count"] == 70


def test_shipped_default_and_cc_by_are_skip_mask_recipes_with_the_codes_mask():
    """The default since round 44 (docs/experiments.md): round 8's five-set chain with model.skip_mask 1.0, the
    lever from step 0 and the synthetic expressions, step 2500, plus NFGAN's perceptual loss L_feat (round 26) at
    weight 1.0 (round 32), its generator's moving average over the second stage (round 35), and the equal average
    of three such second stages from one first stage, two of them with SFM-turned faces (round 44); cc_by since
    round 9: London and canada with the same mask and lever, step 2000 (L_feat since round 29, at 0.5 since round
    31), its moving average (round 20).
    The gates stored in each file are the ones the code computes (a file with other gates would shut the skips
    somewhere else); london keeps every skip."""
    from nfgan.models.unet import UNetGenerator

    fresh = UNetGenerator(skip_mask=1.0)
    for name, step, sources in (("default", 2500, FIVE_SETS | {"london_sfm", "canada_sfm"}),
                                ("cc_by", 2000, {"london", "canada"})):
        g = load_model(name)
        info, cfg = g.info, g.info["config"]
        assert info["model"]["skip_mask"] == 1.0 and info["step"] == step, name
        assert cfg["model"]["skip_mask"] == 1.0 and cfg["loss"]["neutral"] > 0, name
        assert set(cfg["data"]["sources"]) == sources, name    # the (first) recorded config's
        assert info["weights"] == "ema" and cfg["train"]["ema_half_life"] == 100, name   # rounds 20 and 35
        if name == "cc_by":     # L_feat at 0.5 (round 31)
            assert cfg["name"] == "cc_by_feat05" and cfg["loss"]["feat"] == 0.5 and cfg["loss"]["id"] == 0.2
        else:                   # the skip-mask chain with L_feat (rounds 8, 26, 30, 32) and the average (35)
            assert cfg["name"] == "all_data_feat10_ema_sfm" and cfg["loss"]["feat"] == 1.0 and cfg["loss"]["id"] == 0.2
            assert cfg["feature_nets"]["perceptual"] == {"type": "dlib_perceptual", "stage": "level2"}
            assert [n["role"] for n in info["loss_networks"]] == ["identity", "perceptual", "neutral"]
            assert {n["license"] for n in info["loss_networks"]} == {"CC0", "MIT"}
            # round 44: the equal average of the three second stages of one first stage
            assert [(r["config_name"], r["step"], r["weight"]) for r in info["averaged_from"]] == [
                (f"all_data_feat10_ema{c}_sfm", 2500, pytest.approx(1 / 3))
                for c in ("", "_turned", "_turned_london")]
            assert "london_turned" not in info["averaged_from"][1]["sources"]
            assert "london_turned" in info["averaged_from"][2]["sources"]
            # its training data: the union of the three stages'
            assert {d["source"] for d in info["training_data"]} == sources | {f"{s}_turned" for s in FIVE_SETS}
        net = g.nets["gen"]
        for i in range(3):
            stored, computed = getattr(net, f"skip_gate{i}"), getattr(fresh, f"skip_gate{i}")
            assert torch.equal(stored.float(), computed.half().float()), (name, i)     # the files store float16
            assert float(stored.min()) == 0.0 and float(stored.max()) == 1.0
    assert load_model("london").info["model"].get("skip_mask", 0.0) == 0.0     # the London-only U-Net keeps its skips


def _test_subjects(info: dict) -> set:
    return {s for d in info["training_data"] for s in d["test"]}


@pytest.mark.parametrize("which", ["london", "nfgan"])
def test_shipped_models_record_their_training_subjects_for_the_fer_guard(which):
    import json

    from nfgan.fer.augment import recorded_train_subjects

    splits = json.loads((REPO / "src" / "nfgan" / "assets" / "splits" / "london.json").read_text())
    recorded = recorded_train_subjects(_shipped(which))
    assert recorded == sorted(splits["train"])
    assert not set(recorded) & set(splits["test"])


@pytest.mark.parametrize("which", ["default", "cc_by"])
def test_multi_set_models_record_every_training_subject_for_the_fer_guard(which):
    """The default trained on CK+ and JAFFE people, so the leak guard refuses it for their folds (docs/fer.md)."""
    from nfgan.fer.augment import recorded_train_subjects

    recorded = set(recorded_train_subjects(_shipped(which)))
    info = load_model(_shipped(which)).info
    assert recorded == set(info["train_subjects"]) and recorded.isdisjoint(_test_subjects(info))
    assert ("S010" in recorded) == (which == "default")


def test_shipped_models_load_by_name_and_the_default_research_model_says_so():
    from nfgan.inference.generator import SHIPPED_MODELS, shipped_model

    for name, file in SHIPPED_MODELS.items():
        assert shipped_model(name).name == file and load_model(name).info["name"] == file.removesuffix(".safetensors")
    g = load_model("all_data")
    assert g.kind == "pix2pix" and g.frontalize and g.info["config"]["loss"]["neutral"] > 0
    assert "non-commercial research use only" in g.info["license"]
    sets = {d["source"]: d for d in g.info["training_data"]}
    assert set(sets) == FIVE_SETS | {"london_sfm", "canada_sfm"} | {f"{s}_turned" for s in FIVE_SETS}
    turned = sets["ckplus_turned"]
    assert "turned 15-40 degrees" in turned["name"] and "non-commercial" in turned["license"]
    assert "Surrey Face Model" in sets["london_sfm"]["name"] and "non-commercial" in sets["london_sfm"]["license"]
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


def test_demo_detector_choice(small_model, tmp_path):
    """``--detector blazeface``: the demo aligns with BlazeFace, which refuses the example profiles that HOG
    aligns as 3/4 views, so the same folder gives fewer aligned photos and 'no face' failures for profiles."""
    kw = dict(identity=("dlib",), expression=("fer",), tile=64, progress=False)
    hog = run_demo(EXAMPLES, small_model, tmp_path / "hog", **kw)
    blaze = run_demo(EXAMPLES, small_model, tmp_path / "blaze", detector="blazeface", **kw)
    assert hog["photos"] == blaze["photos"] == 20
    assert blaze["aligned"] < hog["aligned"]
    assert {f["reason"] for f in blaze["failed"]} == {"no face"}
    assert all("profile" in Path(f["path"]).parent.name for f in blaze["failed"])
    with pytest.raises(SystemExit):
        main(["--detector", "mtcnn"])
