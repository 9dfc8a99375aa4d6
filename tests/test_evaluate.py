"""nfgan evaluate: end to end on tiny runs (metrics.json keys and sane values, figures, HTML, CSV), model
loading/export, the mirroring rule, and identity calibration."""
from __future__ import annotations

import base64
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_prepared, p2p_config, tiny_config, tiny_nets
from nfgan.data.generator_input import InputRule
from nfgan.evaluation.evaluate import EvalSet, IdentityEvaluator, calibrate_identity, evaluate, load_eval_set
from nfgan.inference import Generator, export_model, load_model
from nfgan.training.loop import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny prepared set, an NFGAN run and a pix2pix run of 2 steps each."""
    base = tmp_path_factory.mktemp("evaluate")
    root = make_prepared(base / "prepared", subjects=6)
    train(tiny_config(root, steps=2), base / "nfgan", progress=False, feature_nets=tiny_nets())
    train(p2p_config(root, steps=2, batch_size=6), base / "p2p", progress=False)
    return base, root


@pytest.fixture(scope="module")
def evaluated(runs):
    base, root = runs
    m = evaluate([f"nfgan={base / 'nfgan'}", f"p2p={base / 'p2p'}"], root, split="train", splits=root / "splits.json",
                 out=base / "eval", identity=("dlib",), expression=("fer",), kid_subsets=5, progress=False)
    return base / "eval", m


def test_metrics_json_keys_and_values(evaluated, runs):
    out, m = evaluated
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["models"].keys() == {"input", "ground_truth", "nfgan", "p2p"}
    assert on_disk["split"] == "train" and on_disk["n_inputs"] == 4 * 6
    assert set(on_disk["group_sizes"]) >= {"all", "frontal/neutral", "3/4/happy", "*/neutral", "3/4/*"}
    assert on_disk["group_sizes"]["all"] == 24 and on_disk["group_sizes"]["3/4/*"] == 16
    # the smiles are the tiny set's only expressive inputs
    sizes = on_disk["group_sizes"]
    assert 0 < sizes["expressive"] == sizes["*/happy"] == sizes["all"] - sizes["*/neutral"]
    for name in ("input", "nfgan"):
        g = on_disk["models"][name]["groups"]
        assert g["expressive"]["neutral_fer"] == pytest.approx(g["*/happy"]["neutral_fer"])
    cal = on_disk["identity_calibration"]["dlib"]
    assert cal["training_aligned"] is True
    assert 0.0 <= cal["eer"] <= 0.5 and cal["n_genuine"] == 4 * 15 and cal["n_impostor"] == 6 * 36
    assert cal["far_at_threshold"] <= 0.01
    gt = on_disk["models"]["ground_truth"]["groups"]
    assert gt["all"]["ssim"] == pytest.approx(1.0) and gt["all"]["l1"] == 0.0
    assert gt["all"]["psnr"] is None and gt["all"]["psnr_identical"] == 24     # identical images: inf dB
    assert gt["all"]["id_gt_pass_dlib"] == 1.0
    assert gt["all"]["rank1_dlib"] == 1.0            # each real neutral face is its own gallery entry
    per = list(csv.DictReader(open(out / "per_face.csv")))
    for name in ("input", "nfgan"):                  # the table's rank-1 is the per-face column's mean
        hits = [int(r["rank1_dlib"]) for r in per if r["model"] == name]
        assert len(hits) == 24 and np.mean(hits) == pytest.approx(on_disk["models"][name]["groups"]["all"]["rank1_dlib"])
    inp = on_disk["models"]["input"]["groups"]
    assert inp["all"]["id_pass_dlib"] == 1.0                                    # distance 0 to itself
    assert inp["frontal/neutral"]["ssim"] == pytest.approx(1.0)                 # the input is its own target
    assert inp["3/4/neutral"]["ssim"] < 0.999                                   # a shifted face is not
    for name in ("nfgan", "p2p"):
        g = on_disk["models"][name]["groups"]["all"]
        assert g["n"] == 24 and 0 <= g["id_pass_dlib"] <= 1 and 0 <= g["neutral_fer"] <= 1
        assert -1 <= g["ssim"] < 1 and 0 < g["psnr"] < 60 and 0 < g["l1"] <= 2
        assert g["kid"] is not None and np.isfinite(g["kid"])
    assert on_disk["models"]["p2p"]["kind"] == "pix2pix" and on_disk["models"]["p2p"]["step"] == 2


def test_report_figures_and_csv(evaluated):
    out, m = evaluated
    from PIL import Image

    for key in ("fig1", "fig3", "fig4_dlib", "fig5", "fig7"):
        assert (out / m["figures"][key]).is_file(), key
    fig3 = np.asarray(Image.open(out / m["figures"]["fig3"]))
    assert fig3.shape[1] == 2 + 4 * 66          # input | target | nfgan | p2p
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(m["figures"])
    assert 'src="http' not in html and "<table>" in html
    first = html.index("base64,") + 7
    assert base64.b64decode(html[first:html.index('"', first)])[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "per_face.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 24
    assert {r["model"] for r in rows} == {"input", "ground_truth", "nfgan", "p2p"}
    gt_rows = [r for r in rows if r["model"] == "ground_truth"]
    assert all(float(r["ssim"]) == pytest.approx(1.0) for r in gt_rows)


def test_export_roundtrip_and_errors(runs, tmp_path):
    base, _ = runs
    g = load_model(base / "nfgan")
    assert g.kind == "nfgan" and g.info["step"] == 2
    path = export_model(base / "nfgan", tmp_path / "model.safetensors", identity_thresholds={"dlib": 0.5})
    e = load_model(path)
    assert e.kind == "nfgan" and e.info["identity_thresholds"] == {"dlib": 0.5}
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), e(x))
    assert path.stat().st_size < 0.6 * (base / "nfgan" / "checkpoints" / "step_00000002.safetensors").stat().st_size
    half = load_model(export_model(base / "nfgan", tmp_path / "half.safetensors", half=True))
    assert half.info["stored_dtype"] == "float16"
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        assert (half(x) - g(x)).abs().max() < 0.02
    bad = tmp_path / "not_a_model.safetensors"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not_a_model.safetensors"):
        load_model(bad)
    with pytest.raises(ValueError, match="no such run folder"):
        load_model(tmp_path / "missing.safetensors")


def test_normalize_mirrors_inputs_like_the_trainer():
    """With an identity 'generator' the output shows exactly which inputs were mirrored."""
    g = Generator("pix2pix", {"gen": torch.nn.Identity()}, {"flip_left_poses": True, "model": {}})
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    poses = ["left_3quarter", "frontal", "right_3quarter", "left_profile"]
    flipped = ["0", "0", "1", "1"]        # the last: already mirrored by prepare, so not again
    assert g.mirror_mask(poses, flipped).tolist() == [True, False, True, False]
    out = g.normalize(faces, poses, flipped, batch_size=3)
    assert np.array_equal(out[[0, 2]], faces[[0, 2]][:, :, ::-1])
    assert np.array_equal(out[[1, 3]], faces[[1, 3]])
    assert np.array_equal(g.normalize(faces), faces)
    g.rule = InputRule(flip_left_poses=False)
    assert np.array_equal(g.normalize(faces, poses, flipped), faces)


def test_calibration_on_real_pairs(runs):
    """Pixels as the embedding: the synthetic subjects differ more between people than between the views and
    expressions of one person, so genuine pairs are closer and the EER is low."""
    _, root = runs
    es = load_eval_set(root, root / "splits.json", "train")
    pixels = IdentityEvaluator("pixels", False, lambda u8: u8.reshape(len(u8), -1).astype(np.float64) / 255)
    cal, emb = calibrate_identity(pixels, es.dataset, es.subjects)
    assert emb.shape == (24, 64 * 64)
    assert cal["n_subjects"] == 4 and cal["n_faces"] == 24
    assert cal["n_genuine"] == 4 * 15 and cal["n_impostor"] == 276 - 60
    assert cal["genuine_mean"] < cal["impostor_mean"]
    assert cal["eer"] < 0.25 and cal["far_at_threshold"] <= 0.01
    assert cal["far_threshold"] <= cal["eer_threshold"] + 1e-9


def test_groups_cover_views_and_expressions(runs):
    _, root = runs
    es = load_eval_set(root, root / "splits.json", "train")
    assert isinstance(es, EvalSet) and len(es) == 24
    groups = es.groups()
    per_cell = [k for k in groups if "*" not in k and k not in ("all", "expressive")]
    assert sum(groups[k].sum() for k in per_cell) == len(es)
    assert set(es.views) == {"frontal", "3/4"}
    limited = load_eval_set(root, root / "splits.json", "train", limit=5)
    assert len(limited) == 5 and limited.targets.shape == (5,)


def test_goal_checks_say_by_how_much_a_goal_is_missed(evaluated):
    from nfgan.evaluation.evaluate import goal_checks
    from nfgan.evaluation.report import goals_table

    metrics = {
        "identity_calibration": {"dlib": {"training_aligned": True}, "faceres": {"training_aligned": False}},
        "expression_evaluators": {"fer": "", "faceapi": ""},
        "models": {
            "input": {"kind": "reference", "groups": {}},
            "m": {"kind": "pix2pix", "groups": {
                "frontal/*": {"id_pass_dlib": 0.5, "id_pass_faceres": 1.0},
                "3/4/*": {"id_pass_dlib": 1.0, "id_pass_faceres": 0.42},
                "all": {"neutral_fer": 0.956, "neutral_faceapi": 0.881}}}}}
    goals = goal_checks(metrics)
    assert list(goals) == ["m"]                      # references are not judged
    got = {(r["group"], r["evaluator"]): (r["met"], r["margin_points"]) for r in goals["m"]}
    # identity goals use the independent embedder only; neutrality goals every classifier
    assert got == {("frontal/*", "faceres"): (True, 5.0), ("3/4/*", "faceres"): (False, -53.0),
                   ("all", "fer"): (True, 5.6), ("all", "faceapi"): (False, -1.9)}
    table = goals_table({"goals": goals})
    assert "| m | identity kept, 3/4 inputs | faceres | 42.0 | 95 | missed by 53.0 points |" in table
    assert "| m | outputs classified neutral | fer | 95.6 | 90 | met |" in table
    # blank outputs (flat gray: what a barely trained model draws) meet no goal, however they are classified
    metrics["models"]["m"]["groups"]["all"]["blank"] = 1.0
    neutral = [r for r in goal_checks(metrics)["m"] if r["evaluator"] == "fer"][0]
    assert neutral["met"] is False and "blank" in neutral["note"]
    assert "100 % of the outputs are blank (no face): not met" in goals_table({"goals": goal_checks(metrics)})
    # the neutrality goal holds for every expression class of the inputs (not for neutral faces or their variants)
    del metrics["models"]["m"]["groups"]["all"]["blank"]
    metrics["models"]["m"]["groups"].update({
        "*/neutral": {"neutral_fer": 1.0, "neutral_faceapi": 1.0}, "*/neutral_glasses": {"neutral_fer": 0.0},
        "*/anger": {"neutral_fer": 0.8, "neutral_faceapi": 1.0}, "*/sleepy": {"neutral_fer": 0.9}})
    per_class = {(r["group"], r["evaluator"]): (r["met"], r["margin_points"]) for r in goal_checks(metrics)["m"]
                 if r["goal"] == "outputs neutral, each expression"}
    assert per_class == {("*/anger", "fer"): (False, -10.0), ("*/anger", "faceapi"): (True, 10.0),
                         ("*/sleepy", "fer"): (True, 0.0), ("*/sleepy", "faceapi"): (None, None)}
    # nfgan evaluate writes them to metrics.json and the report
    out, m = evaluated
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk["goals"]) == {"nfgan", "p2p"}
    # the 2-step NFGAN draws one flat gray face: whatever the classifiers say, it meets no goal
    assert on_disk["models"]["nfgan"]["groups"]["all"]["blank"] == 1.0
    assert not any(r["met"] for r in on_disk["goals"]["nfgan"])
    assert "<h2>Goals</h2>" in (out / "report.html").read_text()


def test_tables_goals_and_generalisation_summary_take_every_identity_evaluator():
    """A third identity evaluator (faceres_deep, in nfgan evaluate's default) gets its columns in the results
    table, its identity goals, and its columns in benchmarks/generalisation.py's summary, independent ones first."""
    from conftest import load_script
    from nfgan.evaluation.evaluate import DEFAULT_IDENTITY, goal_checks
    from nfgan.evaluation.evaluators import IDENTITY_EVALUATORS
    from nfgan.evaluation.report import summary_table

    assert DEFAULT_IDENTITY == ("dlib", "faceres", "faceres_deep") and set(DEFAULT_IDENTITY) <= set(IDENTITY_EVALUATORS)
    ids = {"dlib": {"training_aligned": True}, "faceres": {"training_aligned": False},
           "faceres_deep": {"training_aligned": False}}
    st = {"n": 2, **{f"{k}_{e}": v for e in ids for k, v in (("id_pass", 1.0), ("id_gt_pass", 0.5), ("rank1", 0.5))}}
    st["id_pass_faceres_deep"] = 0.25
    metrics = {"identity_calibration": ids, "expression_evaluators": {"fer": ""}, "n_inputs": 2,
               "models": {"m": {"kind": "pix2pix", "groups": {"all": st, "frontal/*": st, "3/4/*": st}}}}
    header = summary_table(metrics).splitlines()[0]
    assert "| id pass dlib* % | id pass faceres % | id pass faceres_deep % | gt pass dlib % |" in header
    assert "| rank-1 faceres_deep % |" in header
    identity_goals = {(r["group"], r["evaluator"], r["value"]) for r in goal_checks(metrics)["m"]
                      if r["goal"].startswith("identity")}
    assert identity_goals == {(g, e, v) for g in ("frontal/*", "3/4/*")
                              for e, v in (("faceres", 1.0), ("faceres_deep", 0.25))}
    gen = load_script("benchmarks/generalisation.py")
    table = gen.summary({"london": metrics}, ["m"]).splitlines()
    assert table[0].startswith("| set | inputs | model | gt pass faceres % | gt pass faceres_deep % | "
                               "gt pass dlib* % | rank-1 faceres % | rank-1 faceres_deep % | rank-1 dlib* % | "
                               "neutral fer")
    assert table[2].startswith("| london | 2 | m | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 |")
    # rank-1 among every person of the set gets its columns only where an evaluation wrote it
    assert "among everyone" not in table[0]
    st["rank1_every_faceres"] = 0.25
    table = gen.summary({"london": metrics}, ["m"]).splitlines()
    assert "| rank-1 dlib* % | rank-1 among everyone faceres % | neutral fer" in table[0]
    assert table[2].startswith("| london | 2 | m | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 25.0 |")
    # the neutral rate on expressive inputs leaves out neutral faces and their variants (Yale's glasses, light)
    groups = {"*/neutral": {"n": 4, "neutral_fer": 1.0}, "*/neutral_glasses": {"n": 4, "neutral_fer": 1.0},
              "*/happy": {"n": 2, "neutral_fer": 0.0}, "*/wink": {"n": 2, "neutral_fer": 0.5}, "all": {"n": 12}}
    assert gen._expressive(groups, "neutral_fer") == pytest.approx(0.25)
    assert gen._expressive({**groups, "expressive": {"n": 4, "neutral_fer": 0.25}}, "neutral_fer") == 0.25
    # a set run without identity evaluators (one photo per person) keeps the two-evaluator columns
    assert "| gt pass faceres % | gt pass dlib* % | rank-1 faceres % | rank-1 dlib* % |" in gen.summary({}, ["m"])


def test_rank1_and_fairness_groups():
    """rank-1 is the nearest real frontal neutral face among the evaluated people; recorded attributes make
    groups of their own."""
    from nfgan.evaluation.evaluate import EvalSet

    es = EvalSet(None, "test", ["a", "b"], np.arange(4), np.array([0, 0, 2, 2]), ["frontal"] * 4, ["0"] * 4,
                 ["frontal"] * 4, ["neutral", "happy", "neutral", "happy"], input_subjects=["a", "a", "b", "b"],
                 attributes={"gender": ["female", "female", "male", "male"], "ethnicity": ["", "", "", ""]})
    g = es.groups()
    assert g["gender=female"].tolist() == [True, True, False, False] and "ethnicity=" not in g


def test_rank1_among_every_person_needs_the_own_face_nearer_than_every_distractor():
    """rank1: the nearest gallery face must be the person's own; with distractors (other people's faces), the own
    face must also be nearer than each of them."""
    from nfgan.evaluation.evaluate import rank1

    gallery = np.array([[0.0, 0.0], [10.0, 0.0]])                  # persons 0 and 1
    emb = np.array([[1.0, 0.0], [9.0, 0.0], [4.0, 0.0], [1.0, 3.0]])
    own = np.array([0, 1, 1, 0])
    assert rank1(emb, gallery, own).tolist() == [True, True, False, True]
    distractors = np.array([[1.0, 2.5], [20.0, 0.0]])             # nearer to the last face than its own person
    assert rank1(emb, gallery, own, distractors).tolist() == [True, True, False, False]
    assert rank1(emb, gallery, own, distractors[:0]).tolist() == [True, True, False, True]


def test_rank1_every_person_adds_the_set_s_other_people_as_distractors(runs, tmp_path):
    """Evaluating the test people of a set adds the real neutral faces of its other people to the gallery of
    `rank1_every_*` (never above plain rank-1); evaluating every person adds none and writes no such column."""
    base, root = runs
    kw = dict(splits=root / "splits.json", identity=("dlib",), expression=(), kid_subsets=2, figures=False,
              progress=False)
    m = evaluate([f"p2p={base / 'p2p'}"], root, split="test", calibration_split="all", out=tmp_path / "t", **kw)
    people = {str(r["subject"]) for r in csv.DictReader(open(root / "manifest.csv"))}
    assert m["rank1_every_gallery"] == len(people) > len(m["subjects"])
    per = list(csv.DictReader(open(tmp_path / "t" / "per_face.csv")))
    assert per and all(int(r["rank1_every_dlib"]) <= int(r["rank1_dlib"]) for r in per)
    assert all(r["rank1_every_dlib"] == "1" for r in per if r["model"] == "ground_truth")
    assert m["models"]["ground_truth"]["groups"]["all"]["rank1_every_dlib"] == 1.0
    (tmp_path / "one_split.json").write_text(json.dumps({"train": sorted(people), "val": [], "test": []}))
    every = evaluate([f"p2p={base / 'p2p'}"], root, split="train", out=tmp_path / "a",
                     **{**kw, "splits": tmp_path / "one_split.json"})
    assert set(every["subjects"]) == people and every["rank1_every_gallery"] is None
    assert "rank1_every_dlib" not in every["models"]["p2p"]["groups"]["all"]
    assert every["models"]["p2p"]["groups"]["all"]["rank1_dlib"] is not None


def test_calibration_on_every_subject_of_the_split_file(runs, tmp_path):
    """A test split of one person has no impostor pairs to set a threshold with; 'all' calibrates on the real
    faces of every subject in the split file and evaluates the same faces."""
    from nfgan.evaluation.evaluate import EvaluateError

    base, root = runs
    kw = dict(split="test", splits=root / "splits.json", identity=("dlib",), expression=(), kid_subsets=2,
              progress=False)
    with pytest.raises(EvaluateError, match="impostor"):
        evaluate([f"p2p={base / 'p2p'}"], root, out=tmp_path / "own", **kw)
    every = evaluate([f"p2p={base / 'p2p'}"], root, out=tmp_path / "all", calibration_split="all", **kw)
    cal = every["identity_calibration"]["dlib"]
    assert every["calibration_split"] == "all" and cal["n_impostor"] > 0 and cal["n_genuine"] > 0
    assert every["subjects"] == json.loads((root / "splits.json").read_text())["test"]


def test_parse_run_spec_names_runs_checkpoints_and_shipped_models(runs):
    """A model argument names its column: NAME=PATH as given, a run folder by its name, a checkpoint inside a
    run as RUN@STEP, a shipped model by its name."""
    from nfgan.evaluation.evaluate import parse_run_spec

    base, _ = runs
    ckpt = sorted((base / "p2p" / "checkpoints").iterdir())[-1]
    assert parse_run_spec(f"mine={base / 'p2p'}") == ("mine", base / "p2p")
    assert parse_run_spec(str(base / "p2p")) == ("p2p", base / "p2p")
    assert parse_run_spec(str(ckpt)) == (f"p2p@{ckpt.stem}", ckpt)
    assert parse_run_spec("cc_by") == ("cc_by", Path("cc_by"))
    assert parse_run_spec(f"{base / 'p2p'}#live") == ("p2p#live", Path(f"{base / 'p2p'}#live"))


def test_evaluate_takes_a_checkpoints_live_weights_by_path(runs, tmp_path):
    """RUN#live is a column of its own; a run trained without a moving average has no RUN#ema."""
    from nfgan.checkpoint import CheckpointError

    base, root = runs
    kw = dict(split="train", splits=root / "splits.json", identity=("dlib",), expression=("fer",), kid_subsets=2,
              figures=False, progress=False)
    m = evaluate([str(base / "p2p"), f"{base / 'p2p'}#live"], root, out=tmp_path / "e", **kw)
    plain, live = m["models"]["p2p"]["groups"]["all"], m["models"]["p2p#live"]["groups"]["all"]
    assert live["ssim"] == pytest.approx(plain["ssim"]) and live["l1"] == pytest.approx(plain["l1"])
    with pytest.raises(CheckpointError, match="no moving average"):
        evaluate([f"{base / 'p2p'}#ema"], root, out=tmp_path / "f", **kw)


def test_degraded_inputs_are_scored_from_the_changed_images_against_clean_targets(runs, tmp_path):
    """--degrade changes the inputs only: the input row is embedded from the changed images (a frontal neutral
    input, its own target when clean, is then no longer at distance 0 from it), the ground truth row is the
    clean target, the models see the changed faces, and a bad setting is refused before any work."""
    from nfgan.evaluation.evaluate import with_degraded_inputs

    base, root = runs
    kw = dict(split="train", splits=root / "splits.json", identity=("dlib",), expression=(), kid_subsets=2,
              progress=False, figures=False)
    clean = evaluate([f"p2p={base / 'p2p'}"], root, out=tmp_path / "clean", **kw)
    blur = evaluate([f"p2p={base / 'p2p'}"], root, out=tmp_path / "blur", degradation="blur=2,jpeg=20", **kw)
    assert clean["input_degradation"] is None and blur["input_degradation"] == {"blur": 2.0, "jpeg": 20.0}

    def rows(out):
        return list(csv.DictReader(open(out / "per_face.csv")))

    def col(out, model, key):
        return np.array([float(r[key]) for r in rows(out) if r["model"] == model])

    fn = np.array([r["view"] == "frontal" and r["expression"] == "neutral" for r in rows(tmp_path / "clean")
                   if r["model"] == "input"])
    assert fn.any()
    assert np.all(col(tmp_path / "clean", "input", "id_gt_dist_dlib")[fn] < 1e-5)
    assert np.all(col(tmp_path / "blur", "input", "id_gt_dist_dlib")[fn] > 1e-3)
    assert np.all(col(tmp_path / "blur", "input", "ssim")[fn] < 0.99)
    for out in ("clean", "blur"):
        assert np.allclose(col(tmp_path / out, "ground_truth", "ssim"), 1.0)
    assert not np.allclose(col(tmp_path / "clean", "p2p", "ssim"), col(tmp_path / "blur", "p2p", "ssim"))
    es = load_eval_set(root, root / "splits.json", "train")
    changed = with_degraded_inputs(es, {"contrast": 0.5})
    assert changed.target_images is es.target_images and es.input_degradation is None
    assert changed.input_images.std() < 0.6 * es.input_images.std()
    with pytest.raises(ValueError, match="already changed"):
        with_degraded_inputs(changed, {"blur": 1.0})
    # re-framing moves the input faces and their landmarks alike; the targets stay as they are
    marked = replace(es, input_landmarks=np.tile(np.array([[31.5, 31.5], [47.5, 31.5]]), (len(es), 1, 1)))
    framed = with_degraded_inputs(marked, {"scale": 1.2, "shift_y": 0.1})
    assert framed.target_images is es.target_images and not np.array_equal(framed.input_images, es.input_images)
    assert np.allclose(framed.input_landmarks[:, 0], [31.5, 31.5 + 6.4])
    assert np.allclose(framed.input_landmarks[:, 1], [31.5 + 1.2 * 16, 31.5 + 6.4])
    assert np.array_equal(marked.input_landmarks[:, 1], np.tile([47.5, 31.5], (len(es), 1)))
    with pytest.raises(ValueError, match="blur must be"):
        evaluate([f"p2p={base / 'p2p'}"], root, out=tmp_path / "bad", degradation="blur=-1", **kw)
    assert not (tmp_path / "bad").exists()


def test_photometric_robustness_benchmark_scores_each_condition_against_clean(runs, tmp_path, capsys):
    """benchmarks/photometric_robustness.py's per-set job on the tiny set: one CSV per condition, the clean
    condition as each number's baseline, the tables with the change from it."""
    import importlib.util

    from nfgan.evaluation.evaluate import load_model

    spec = importlib.util.spec_from_file_location("prbench", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "photometric_robustness.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base, root = runs
    models = {"p2p": load_model(base / "p2p")}
    res = mod.run_set("tiny", root, root / "splits.json", "train", models, ["clean", "noise=20", "gamma=1.4",
                                                                            "scale=1.2"], tmp_path)
    assert list(res) == ["clean", "noise=20", "gamma=1.4", "scale=1.2"]
    assert {p.name for p in (tmp_path / "tiny_train").iterdir()} == {"clean.csv", "noise20.csv", "gamma1.4.csv",
                                                                      "scale1.2.csv"}
    assert res["scale=1.2"]["input"]["ssim"] < res["clean"]["input"]["ssim"] - 0.02   # the face moved in its crop
    assert res["clean"]["input"]["ssim"] < 1.0 and res["clean"]["input"]["n"] == 24
    assert res["noise=20"]["input"]["ssim"] < res["clean"]["input"]["ssim"] - 0.05
    assert res["noise=20"]["p2p"]["ssim"] != res["clean"]["p2p"]["ssim"]
    table = mod.summary({"tiny": res}, ["p2p"])
    noisy = next(line for line in table.splitlines() if "| noise=20 |" in line)
    d = res["noise=20"]["input"]["ssim"] - res["clean"]["input"]["ssim"]
    assert f"({d:+.3f})" in noisy
    assert mod.pooled({"tiny": res}, ["p2p"]).count("\n") == 2 + 4
    # --rescore: the same numbers from the CSVs, without a model
    again = mod.rescore_set("tiny", "train", ["p2p"], ["clean", "noise=20", "gamma=1.4", "scale=1.2"], tmp_path)
    for cond in res:
        for name in ("input", "p2p"):
            for key, v in res[cond][name].items():
                assert again[cond][name][key] == (v if v is None or isinstance(v, int) else pytest.approx(v, abs=1e-5))
    with pytest.raises(SystemExit):
        mod.main(["p2p=" + str(base / "p2p"), "--conditions", "clean,sharpen=2", "--out", str(tmp_path / "x")])
    assert "sharpen=2" in capsys.readouterr().err and not (tmp_path / "x").exists()
