"""Own-shape frontalisation (nfgan.data.frontal_shape): the map, the warp onto it, and its way through configs,
model files, tools/set_input_rule.py and ONNX."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from nfgan.data.align import mirror_landmarks
from nfgan.data.frontal_shape import (FrontalShape, FrontalShapeError, collect_pairs, fit, landmark_error, shipped,
                                      symmetric)
from nfgan.data.frontalize import FRONTAL68, WARP_POINTS, Frontalizer, frontalize_batch

S = 64
T = FRONTAL68 * (S - 1)


def smooth_face(seed: int = 0) -> np.ndarray:
    from PIL import Image

    coarse = np.random.default_rng(seed).uniform(0, 255, size=(8, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((S, S), Image.BICUBIC)).clip(0, 255).round().astype(np.uint8)


def person(width: float, mouth: float) -> np.ndarray:
    """A frontal layout with the template's points spread horizontally by ``width`` about the midline and the mouth
    moved down by ``mouth`` px: one person's own proportions."""
    lm = T.copy()
    lm[:, 0] = (lm[:, 0] - (S - 1) / 2) * width + (S - 1) / 2
    lm[48:68, 1] += mouth
    return lm


def turned(frontal: np.ndarray) -> np.ndarray:
    """The layout as a crude 3/4 view: squeezed horizontally towards the image's left (far side on the right)."""
    lm = frontal.copy()
    lm[:, 0] = 0.8 * lm[:, 0] + 2.0
    return lm


def map_of(xs, ys, ridge=1.0, **info) -> FrontalShape:
    return fit(np.stack([x.reshape(136) for x in xs]), np.stack([symmetric(y).reshape(136) for y in ys]), ridge,
               info)


def test_fit_learns_each_persons_proportions_from_the_turned_face():
    rng = np.random.default_rng(0)
    people = [person(rng.uniform(0.9, 1.1), rng.uniform(-2, 2)) for _ in range(60)]
    m = map_of([turned(p) for p in people[:50]], people[:50], ridge=0.1, poses=["3quarter"])
    xv = np.stack([turned(p).reshape(136) for p in people[50:]])
    yv = np.stack([p.reshape(136) for p in people[50:]])
    assert landmark_error(m, xv, yv) < 0.05 < 0.5 < landmark_error(None, xv, yv)
    wide, narrow = person(1.1, 2.0), person(0.9, -2.0)
    pw, pn = m.predict(turned(wide)), m.predict(turned(narrow))
    assert np.abs(pw - wide).max() < 0.2 and np.abs(pn - narrow).max() < 0.2
    assert np.abs(mirror_landmarks(pw, S) - pw).max() < 1e-9          # always symmetric
    lopsided = FrontalShape(m.mean_in, m.weights, (T + [2.0, 0.0]).reshape(136), {})   # even from a lopsided map
    p = lopsided.predict(turned(wide))
    assert np.abs(mirror_landmarks(p, S) - p).max() < 1e-9 and abs(p[30, 0] - (S - 1) / 2) < 1e-9
    # another crop size: the same prediction, scaled
    assert np.allclose(m.predict(turned(wide) * 127 / 63, 128), pw * 127 / 63)
    assert m.applies_to("left_3quarter") and not m.applies_to("right_profile")
    with pytest.raises(FrontalShapeError, match="no pairs"):
        fit(np.zeros((0, 136)), np.zeros((0, 136)), 1.0)


def test_shipped_map_follows_the_turned_faces_proportions():
    m = shipped()
    assert m.poses == ("3quarter",) and m.info["validation_error_px"] < m.info["validation_error_template_px"]
    x = m.mean_in.reshape(68, 2)
    base = m.predict(x)
    assert np.abs(base - T).max() < 0.5                    # the average turned face -> about the template
    wider = x.copy()
    wider[42:48, 0] += 2.0                                  # the far eye further out
    lower = x.copy()
    lower[48:68, 1] += 2.0                                  # the mouth further down
    spacing = lambda p: p[42:48, 0].mean() - p[36:42, 0].mean()    # noqa: E731
    mouth = lambda p: p[48:68, 1].mean() - p[30, 1]                 # noqa: E731
    assert spacing(m.predict(wider)) > spacing(base) + 0.5
    assert mouth(m.predict(lower)) > mouth(base) + 1.0


def test_map_round_trips_through_its_file_and_record_and_refuses_damaged_ones(tmp_path):
    m = shipped()
    m.save(tmp_path / "m.safetensors")
    back = FrontalShape.load(tmp_path / "m.safetensors")
    assert np.array_equal(back.weights, m.weights) and back.info == m.info
    rec = FrontalShape.from_record(m.as_record())
    assert np.array_equal(rec.mean_out, m.mean_out) and rec.poses == m.poses
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(FrontalShapeError, match="bad.safetensors"):
        FrontalShape.load(tmp_path / "bad.safetensors")
    with pytest.raises(FrontalShapeError, match="not found"):
        FrontalShape.load(tmp_path / "missing.safetensors")
    with pytest.raises(FrontalShapeError, match="damaged"):
        FrontalShape.from_record({"mean_in": [0.0]})
    with pytest.raises(FrontalShapeError, match="weights"):
        FrontalShape.from_record({**m.as_record(), "weights": [[0.0] * 3]})


def test_warp_onto_a_destination_moves_each_landmark_there():
    """Where the landmarks are an affine image of the destination, the warp reads every pixel inside the landmark
    mesh at that affine image; the template as destination is the usual warp, to the bit."""
    f = Frontalizer(S)
    face = smooth_face()
    lm = turned(T)
    assert np.array_equal(f(face, lm, dst=T), f(face, lm))
    dst = person(1.08, 1.5)
    a = np.array([[0.8, 0.0, 2.0], [0.0, 1.0, 0.0]])
    src = dst @ a[:, :2].T + a[:, 2]
    q = f.sample_points(src, dst)
    from nfgan.data.frontalize import crop_border, delaunay_barycentric

    mesh = np.concatenate([dst[list(WARP_POINTS)], crop_border(S)])
    corners, _, _ = delaunay_barycentric(mesh, f.pix)
    inside = (corners < len(WARP_POINTS)).all(1)
    assert inside.sum() > 500
    assert np.abs(q[inside] - (f.pix[inside] @ a[:, :2].T + a[:, 2])).max() < 1e-9
    with pytest.raises(ValueError, match="outside the crop"):
        f.sample_points(src, dst + [S, 0])


def test_frontalize_batch_uses_the_map_for_its_poses_and_the_template_otherwise():
    rng = np.random.default_rng(1)
    people = [person(rng.uniform(0.9, 1.1), rng.uniform(-2, 2)) for _ in range(40)]
    m = map_of([turned(p) for p in people], people, poses=["3quarter"])
    faces = np.stack([smooth_face(k) for k in range(4)])
    own = person(1.1, 2.0)
    lms = np.stack([own, turned(own), turned(own), turned(own)])
    poses = ["frontal", "left_3quarter", "right_profile", "right_3quarter"]
    out = frontalize_batch(faces, lms, poses, shape=m)
    f = Frontalizer(S)
    assert np.array_equal(out[0], faces[0])                                       # frontal: untouched
    assert np.array_equal(out[1], f(faces[1], lms[1], dst=m.predict(lms[1])))     # 3/4: onto its own shape
    assert not np.array_equal(out[1], f(faces[1], lms[1]))
    assert np.array_equal(out[2], f(faces[2], lms[2]))                            # profile: the template
    # mirrored faces: the map reads the landmarks as the generator sees them
    out_m = frontalize_batch(faces[3:], lms[3:], poses[3:], mirrored=[True], shape=m)
    seen = mirror_landmarks(lms[3], S)
    assert np.array_equal(out_m[0], f(faces[3], seen, dst=m.predict(seen)))
    # a prediction that leaves the crop falls back to the template
    away = FrontalShape(m.mean_in, np.zeros((136, 136)), (T + [0, S]).reshape(136), {"poses": ["3quarter"]})
    assert away.destination(lms[1]) is None
    assert np.array_equal(frontalize_batch(faces[1:2], lms[1:2], poses[1:2], shape=away)[0], f(faces[1], lms[1]))


def _landmarked_set(tmp_path, people: int = 8):
    """conftest's synthetic prepared set with per-person proportions: frontal faces on ``person(w, m)``, turned ones
    on its squeezed (left) or mirrored-squeezed (right) layout."""
    from conftest import make_prepared

    root = make_prepared(tmp_path / "d", subjects=people)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(2)
    own = {f"S{s:02d}": person(rng.uniform(0.9, 1.1), rng.uniform(-2, 2)) for s in range(people)}
    lm = []
    for r in rows:
        p = own[r["subject"]]
        lm.append(p if r["pose"] == "frontal" else turned(p) if r["pose"].startswith("right")
                  else mirror_landmarks(turned(p), S))
    lm = np.stack(lm).astype(np.float32)
    np.save(root / "landmarks.npy", lm)
    return root, rows, lm, own


def test_fit_tool_chooses_the_ridge_on_validation_people_and_writes_map_and_report(tmp_path):
    from conftest import load_script

    root, rows, lm, own = _landmarked_set(tmp_path, people=12)
    x, y = collect_pairs(root, ["S00"])
    assert x.shape == (4, 136)      # S00's four turned faces, each as the generator sees it (far side on the right)
    assert np.allclose(x, turned(own["S00"]).reshape(136)) and np.allclose(y, symmetric(own["S00"]).reshape(136))
    tool = load_script("tools/fit_frontal_shape.py")
    out, report = tmp_path / "map.safetensors", tmp_path / "report"
    assert tool.main(["--data", str(root), "--splits", str(root / "splits.json"), "--out", str(out),
                      "--report", str(report), "--ridges", "0.01,1000000"]) == 0
    m = FrontalShape.load(out)
    assert m.info["ridge"] == 0.01 and m.poses == ("3quarter",)
    assert m.info["validation_error_px"] < m.info["validation_error_template_px"]
    assert "(chosen)" in (report / "report.md").read_text()
    with pytest.raises(SystemExit):
        tool.main(["--data", str(root), "--splits", str(root / "splits.json"), "--poses", "profile",
                   "--out", str(tmp_path / "none.safetensors"), "--report", str(report)])
    assert not (tmp_path / "none.safetensors").exists()


def test_own_shape_travels_from_config_through_training_model_files_tools_and_onnx(tmp_path):
    from conftest import load_script, p2p_config

    from nfgan.config import ConfigError
    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.training.config import load_config
    from nfgan.training.data import TrainingData
    from nfgan.training.loop import train

    root, rows, lm, own = _landmarked_set(tmp_path)
    m = map_of([turned(p) for p in own.values()], list(own.values()), poses=["3quarter"])
    m.save(tmp_path / "map.safetensors")
    cfg = p2p_config(root, steps=1)
    cfg["data"].update(frontalize_inputs=False, frontalize_shape="own")
    with pytest.raises(ConfigError, match="do nothing without data.frontalize_inputs"):
        load_config(overrides=cfg)
    cfg["data"].update(frontalize_inputs=True, frontalize_shape="template",
                       frontal_shape_map=str(tmp_path / "map.safetensors"))
    with pytest.raises(ConfigError, match="only with data.frontalize_shape: own"):
        load_config(overrides=cfg)
    cfg["data"]["frontalize_shape"] = "sideways"
    with pytest.raises(ConfigError, match="frontalize_shape"):
        load_config(overrides=cfg)
    template_cfg = load_config(overrides={**cfg, "data": {**cfg["data"], "frontalize_shape": "template",
                                                          "frontal_shape_map": None}})
    cfg = load_config(overrides={**cfg, "data": {**cfg["data"], "frontalize_shape": "own"}})

    # the trainer's batches: turned rows warped onto their own shape, frontal rows and targets as with the template
    a, b = TrainingData(cfg, torch.device("cpu")), TrainingData(template_cfg, torch.device("cpu"))
    ba, bb = a.sample(16, torch.Generator().manual_seed(5)), b.sample(16, torch.Generator().manual_seed(5))
    assert torch.equal(ba.y, bb.y)
    is_turned = np.asarray([p != "frontal" for p in a.faces.poses[ba.x_rows % a.faces.n]])
    assert is_turned.any() and (~is_turned).any()
    differs = (ba.x != bb.x).flatten(1).any(1).numpy()
    assert np.array_equal(differs, is_turned)

    # the trained model's rule, its exported file (the map embedded: the map file may go) and ONNX
    train(cfg, tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "own.safetensors")
    (tmp_path / "map.safetensors").rename(tmp_path / "moved.safetensors")
    exported = load_model(tmp_path / "own.safetensors")
    assert exported.rule.frontal == "own" and InputRule.from_record(exported.rule.as_dict()) == exported.rule
    assert np.array_equal(exported.rule.frontal_shape().weights, m.weights)
    faces = np.load(root / "faces.npy")
    poses, flipped = [r["pose"] for r in rows], [r["flipped"] for r in rows]
    x = exported.generator_inputs(faces, poses, flipped, lm)
    flip = exported.mirror_mask(poses, flipped)
    for i, p in enumerate(poses):
        face = faces[i, :, ::-1] if flip[i] else faces[i]
        if p == "frontal":
            assert np.array_equal(x[i], face)
        else:
            seen = mirror_landmarks(lm[i], S) if flip[i] else lm[i]
            assert np.array_equal(x[i], Frontalizer(S)(face, seen, dst=m.predict(seen)))
    assert InputRule.from_record({"flip_left_poses": True, "frontalize": True}).frontal == "template"
    with pytest.raises(ValueError, match="frontalisation shape"):
        InputRule(True, True, frontal="sideways")
    with pytest.raises(ValueError, match="frontalises its turned inputs"):
        InputRule(True, False).with_own_shape()

    # tools/set_input_rule.py adds it to a model trained with the template: same weights, turned inputs change
    train(template_cfg, tmp_path / "run_t", progress=False)
    tool = load_script("tools/set_input_rule.py")
    added = tmp_path / "added.safetensors"
    assert tool.main([str(tmp_path / "run_t"), str(added), "--frontal-shape", "own"]) == 0
    before, after = load_model(tmp_path / "run_t"), load_model(added)
    assert (before.rule.frontal, after.rule.frontal) == ("template", "own")
    assert after.info["input_rule_added"] == {"frontal_shape_map": "shipped"}
    from nfgan.fer.augment import recorded_train_subjects   # the own-shape map's people join the run's (London's)

    learned, with_map = recorded_train_subjects(tmp_path / "run_t"), recorded_train_subjects(added)
    assert learned and set(learned) < set(with_map) and len(with_map) - len(set(learned)) >= 50
    assert all(torch.equal(p, q) for p, q in zip(before.state_dict().values(), after.state_dict().values()))
    x0, x1 = before.generator_inputs(faces, poses, flipped, lm), after.generator_inputs(faces, poses, flipped, lm)
    frontal = np.asarray([p == "frontal" for p in poses])
    assert np.array_equal(x0[frontal], x1[frontal])
    assert all(not np.array_equal(x0[i], x1[i]) for i in np.flatnonzero(~frontal))
    with pytest.raises(SystemExit):
        tool.main([str(added), str(tmp_path / "again.safetensors"), "--frontal-shape", "own"])
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "run_t"), str(tmp_path / "none.safetensors")])
    assert not (tmp_path / "again.safetensors").exists() and not (tmp_path / "none.safetensors").exists()

    pytest.importorskip("onnxruntime")
    from nfgan.inference.onnx_backend import load_onnx_generator

    onnx_g = load_onnx_generator(added)
    assert onnx_g.rule == after.rule and onnx_g.rule.frontal == "own"
    out = after.normalize(faces, poses, flipped, landmarks=lm)
    assert np.abs(onnx_g.normalize(faces, poses, flipped, landmarks=lm).astype(int) - out).max() <= 1
