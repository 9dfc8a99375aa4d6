"""Geometric neutralisation (nfgan.data.neutral_shape) and its place in the input rule, the trainer and model
files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nfgan.data.align import apply_transform, similarity_transform
from nfgan.data.frontalize import FRONTAL68, frontalize_batch
from nfgan.data.align import INNER49, template_points, transform_scale
from nfgan.data.neutral_shape import (REFERENCE, STABLE, NeutralShape, NeutralShapeError, fit, framing_shift,
                                      landmark_error, neutralize, neutralize_batch, neutralize_reframe,
                                      pair_landmarks, reframe, reframe_transform, shipped, strength)

S = 64
LOWER = list(range(5, 12)) + list(range(55, 60)) + list(range(65, 68)) + [48, 54]   # chin, lower lip
BROWS = list(range(17, 27))


def open_mouth(lm: np.ndarray, amount: float) -> np.ndarray:
    """Landmarks with the jaw and lower lip dropped by ``amount`` px and the brows raised by half of it."""
    out = np.array(lm, dtype=np.float64, copy=True)
    out[LOWER, 1] += amount
    out[BROWS, 1] -= 0.5 * amount
    return out


def people(n: int, seed: int) -> np.ndarray:
    """``n`` neutral landmark sets: the template with a random face shape, scale, position and tilt."""
    rng = np.random.default_rng(seed)
    base = FRONTAL68 * (S - 1)
    out = []
    for _ in range(n):
        lm = base + rng.normal(0, 0.8, base.shape)
        a = np.deg2rad(rng.uniform(-5, 5))
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out.append((lm - 31.5) @ rot.T * rng.uniform(0.9, 1.1) + 31.5 + rng.uniform(-2, 2, 2))
    return np.stack(out)


def synthetic_pairs(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    pairs = []
    for lm in people(n, seed):
        amount = rng.uniform(0, 5)
        x, y = pair_landmarks(open_mouth(lm, amount), lm)
        pairs.append({"x": x, "y": y, "expression": "open", "amount": amount})
    return pairs


def test_fit_learns_to_close_a_mouth_and_leaves_neutral_faces_nearly_alone():
    shape = fit(synthetic_pairs(400, 0), ridge=10.0)
    test = synthetic_pairs(60, 7)
    before, after = landmark_error(None, test), landmark_error(shape, test)
    assert after.mean() < 0.3 * before.mean()
    # a face with the mouth shut is moved far less than the mouth of an open one
    lm = people(1, 9)[0]
    assert np.abs(shape.predict(lm) - lm).max() < 0.5
    opened = open_mouth(lm, 4.0)
    pred = shape.predict(opened)
    assert np.abs(pred[LOWER] - lm[LOWER]).mean() < 0.25 * np.abs(opened[LOWER] - lm[LOWER]).mean()
    # the stable points define the frame: they stay where they were
    assert np.abs(pred[list(STABLE)] - opened[list(STABLE)]).max() < 0.6


def test_map_round_trips_through_its_file_and_refuses_damaged_ones(tmp_path):
    shape = fit(synthetic_pairs(100, 1), ridge=10.0, info={"note": "test"})
    shape.save(tmp_path / "m.safetensors")
    back = NeutralShape.load(tmp_path / "m.safetensors")
    lm = people(3, 2)
    assert np.array_equal(np.stack([back.predict(p) for p in lm]), np.stack([shape.predict(p) for p in lm]))
    assert back.info["note"] == "test" and back.info["ridge"] == 10.0
    with pytest.raises(NeutralShapeError, match="not found"):
        NeutralShape.load(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(NeutralShapeError, match="bad.safetensors"):
        NeutralShape.load(tmp_path / "bad.safetensors")
    from safetensors.numpy import save_file

    save_file({"mean": np.zeros(136), "weights": np.zeros((136, 10)), "bias": np.zeros(136)},
              str(tmp_path / "shape.safetensors"))
    with pytest.raises(NeutralShapeError, match="weights"):
        NeutralShape.load(tmp_path / "shape.safetensors")
    with pytest.raises(NeutralShapeError, match="68 finite"):
        shape.predict(np.full((68, 2), np.nan))


def test_shipped_map_closes_an_opened_mouth_on_the_template():
    shape = shipped()
    assert shape.info["pairs"] > 1000 and shape.info["validation_error_px"] < shape.info["validation_error_unchanged_px"]
    lm = FRONTAL68 * (S - 1)
    assert np.linalg.norm(shape.predict(lm) - lm, axis=1).mean() < 1.0
    opened = open_mouth(lm, 5.0)
    pred = shape.predict(opened)
    # the jaw and lower lip come back up by more than half of the drop
    assert (opened[LOWER, 1] - pred[LOWER, 1]).mean() > 2.5


def smooth_face(seed: int = 0) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (8, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((S, S), Image.BICUBIC)).clip(0, 255).astype(np.uint8)


def test_neutralize_moves_the_face_with_its_landmarks_and_leaves_the_background(monkeypatch):
    face = smooth_face()
    lm = FRONTAL68 * (S - 1)
    still = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.zeros(136), {})
    assert np.array_equal(neutralize(face, lm, still), face)           # no predicted motion: the very pixels
    down = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.tile([0.0, -3.0], 68), {})
    out = neutralize(face, lm, down)
    assert not np.array_equal(out, face)
    # every landmark moves up 3 px: the pixel at a landmark's new place is the one it had
    for p in lm[[30, 33, 51, 57]]:
        x, y = np.round(p).astype(int)
        assert abs(int(out[y - 3, x]) - int(face[y, x])) <= 12
    assert np.array_equal(out[:, :2], face[:, :2]) and np.array_equal(out[:, -2:], face[:, -2:])
    # landmarks far outside the crop still give a face (moved points are kept inside it)
    far = lm.copy()
    far[:, 1] += 200
    assert neutralize(face, far, down).shape == (S, S)
    # a face whose warp mesh fails is kept as it is, with a warning naming its row
    import nfgan.data.neutral_shape as ns

    real = ns.landmark_warp

    def fails_far_down(img, src, dst):
        if src[:, 1].min() > 100:
            raise ValueError("warp mesh does not cover the crop")
        return real(img, src, dst)

    monkeypatch.setattr(ns, "landmark_warp", fails_far_down)
    with pytest.raises(NeutralShapeError, match="cannot neutralise"):
        neutralize(face, far, down)
    with pytest.warns(UserWarning, match=r"rows \[1\]"):
        both = neutralize_batch(np.stack([face, face]), np.stack([lm, far]), down)
    assert np.array_equal(both[0], out) and np.array_equal(both[1], face)


def _expressive_landmarks(root):
    """The synthetic set's landmarks: the template (turned faces shifted like their pixels), the 'happy'
    faces' mouths and jaws opened by 4 px."""
    import csv

    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}
    lm = []
    for r in rows:
        p = FRONTAL68 * (S - 1) + [shift[r["pose"]], 0]
        lm.append(open_mouth(p, 4.0) if r["expression"] == "happy" else p)
    lm = np.stack(lm).astype(np.float32)
    np.save(root / "landmarks.npy", lm)
    return rows, lm


def test_input_rule_neutralizes_frontal_faces_only_and_reads_old_records():
    from nfgan.data.generator_input import InputRule, MissingLandmarksError

    faces = np.stack([smooth_face(1), smooth_face(2), smooth_face(3)])
    base = FRONTAL68 * (S - 1)
    lm = np.stack([open_mouth(base, 4.0), base + [6, 0], base])
    poses = ["frontal", "right_3quarter", "unknown"]
    rule = InputRule(True, True, "mirror", True)
    x = rule.apply(faces, poses, ["0", "0", "0"], lm)
    assert np.array_equal(x[0], neutralize(faces[0], lm[0]))
    assert not np.array_equal(x[0], faces[0])
    assert np.array_equal(x[1], frontalize_batch(faces[1:2], lm[1:2], poses[1:2])[0])   # turned: frontalised
    assert np.array_equal(x[2], neutralize(faces[2], lm[2]))                              # unknown pose too
    # without poses every face counts as of unknown pose
    assert np.array_equal(rule.apply(faces, None, None, lm)[0], x[0])
    with pytest.raises(MissingLandmarksError, match="neutralises frontal inputs"):
        rule.apply(faces, poses, ["0"] * 3, None)
    missing = lm.copy()
    missing[0] = np.nan
    with pytest.warns(UserWarning, match="un-?neutralised"):
        y = rule.apply(faces, poses, ["0"] * 3, missing)
    assert np.array_equal(y[0], faces[0])
    # a model without the step, and a record from before it existed, leave frontal faces alone
    assert np.array_equal(InputRule(True, True).apply(faces, poses, ["0"] * 3, lm)[0], faces[0])
    assert InputRule.from_record({"flip_left_poses": True, "frontalize": True, "fill": "mirror"}).neutralize is False
    assert InputRule.from_record(rule.as_dict()) == rule


STILL = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.zeros(136), {})   # predicts no motion


def framed_landmarks() -> np.ndarray:
    """Landmarks as alignment leaves a neutral face: its 49 fitted points exactly on the template."""
    lm = FRONTAL68 * (S - 1)
    lm[list(INNER49)] = template_points(S)
    return lm


def test_reframe_undoes_a_smaller_framing_and_leaves_a_neutral_framing_alone():
    from nfgan.data.align import invert_transform
    from nfgan.data.frontalize import bilinear_sample

    face, lm = smooth_face(5), framed_landmarks()
    m = reframe_transform(lm, S, STILL)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert np.abs(reframe(face, lm, STILL).astype(int) - face).max() <= 1
    # the same face framed 12 % smaller and 2 px higher, as alignment frames a surprised face
    small = np.array([[0.88, 0, 31.5 * 0.12], [0, 0.88, 31.5 * 0.12 - 2]])
    ys, xs = np.mgrid[0:S, 0:S]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    shrunk = bilinear_sample(face, apply_transform(invert_transform(small), grid)).reshape(S, S).round()
    back = reframe(shrunk.astype(np.uint8), apply_transform(small, lm), STILL)
    centre = np.s_[12:52, 12:52]
    assert transform_scale(reframe_transform(apply_transform(small, lm), S, STILL)) == pytest.approx(1 / 0.88)
    assert np.abs(back[centre].astype(int) - face[centre]).mean() < 2.0
    assert np.abs(shrunk[centre] - face[centre]).mean() > 8.0
    with pytest.raises(NeutralShapeError, match="square gray"):
        reframe(face[:, :40], lm, STILL)


def test_warp_frame_warps_onto_the_predicted_landmarks_then_reframes_them():
    face, lm = smooth_face(6), framed_landmarks()
    small = np.array([[0.9, 0, 3.15], [0, 0.9, 3.15]])      # framed 10 % smaller
    lm_small = apply_transform(small, lm)
    # a map that predicts no motion: the warp changes nothing, so both modes re-frame alike
    assert np.array_equal(neutralize_reframe(face, lm_small, STILL), reframe(face, lm_small, STILL))
    # a map that lifts every landmark 3 px: the warp moves the face, and the re-framing is fit to where it moved
    up = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.tile([0.0, -3.0], 68), {})
    warped = neutralize(face, lm_small, up)
    out = neutralize_reframe(face, lm_small, up)
    m = similarity_transform(up.predict(lm_small)[list(INNER49)], template_points(S))
    assert transform_scale(m) == pytest.approx(1 / 0.9)
    assert np.array_equal(out, reframe(warped, up.predict(lm_small), STILL))
    assert not np.array_equal(out, reframe(face, lm_small, up))


def test_shipped_map_reframes_an_opened_mouth_larger():
    """Alignment fits the template to points that include the mouth: a dropped jaw and raised brows frame the
    face smaller. The shipped map predicts the closed mouth, and re-framing on it makes the face larger again."""
    lm = framed_landmarks()
    opened = open_mouth(lm, 5.0)
    as_aligned = apply_transform(similarity_transform(opened[list(INNER49)], template_points(S)), opened)
    assert transform_scale(similarity_transform(opened[list(INNER49)], template_points(S))) < 0.97
    assert transform_scale(reframe_transform(as_aligned, S, shipped())) > 1.02
    assert transform_scale(reframe_transform(lm, S, shipped())) == pytest.approx(1.0, abs=0.02)


def test_input_rule_reframes_in_frame_mode_and_records_it():
    from nfgan.data.generator_input import InputRule

    faces = np.stack([smooth_face(1), smooth_face(2)])
    lm = np.stack([open_mouth(framed_landmarks(), 4.0), framed_landmarks()])
    rule = InputRule(True, True, "mirror", True, None, "frame")
    x = rule.apply(faces, ["frontal", "frontal"], ["0", "0"], lm)
    assert all(np.array_equal(x[i], reframe(faces[i], lm[i])) for i in range(2))
    assert not np.array_equal(x[0], neutralize(faces[0], lm[0]))
    assert np.array_equal(neutralize_batch(faces, lm, mode="frame"), x)
    both = InputRule(True, True, "mirror", True, None, "warp_frame").apply(faces, ["frontal"] * 2, ["0"] * 2, lm)
    assert all(np.array_equal(both[i], neutralize_reframe(faces[i], lm[i])) for i in range(2))
    record = rule.as_dict()
    assert record["neutralize_mode"] == "frame" and InputRule.from_record(record).mode == "frame"
    old = dict(record)
    del old["neutralize_mode"]
    assert InputRule.from_record(old).mode == "warp"     # a record from before the mode existed
    with pytest.raises(ValueError, match="neutralisation mode 'tilt'"):
        InputRule(True, True, "mirror", True, None, "tilt")
    with pytest.raises(ValueError, match="neutralisation mode 'tilt'"):
        neutralize_batch(faces, lm, mode="tilt")


def test_threshold_leaves_faces_framed_within_it_and_gives_the_others_a_share_of_the_step():
    face, lm = smooth_face(7), framed_landmarks()
    small = np.array([[0.9, 0, 3.15], [0, 0.9, 3.15]])      # framed 10 % smaller
    lm_small = apply_transform(small, lm)
    assert framing_shift(lm, S, STILL) < 1e-9
    shift = framing_shift(lm_small, S, STILL)
    # the template's points move by 1/0.9 - 1 of their distance from the centre the similarity keeps
    moved = apply_transform(reframe_transform(lm_small, S, STILL), template_points(S))
    assert shift == pytest.approx(np.linalg.norm(moved - template_points(S), axis=1).mean() / S)
    assert 0.01 < shift < 0.05
    assert strength(lm_small, S, STILL, 0.0) == 1.0
    assert strength(lm_small, S, STILL, shift * 1.01) == 0.0
    assert strength(lm_small, S, STILL, shift / 4) == pytest.approx(0.75)
    faces, both = np.stack([face, face]), np.stack([lm, lm_small])
    for mode in ("warp", "frame", "warp_frame"):
        # no threshold: every face gets the whole step, as before the threshold existed
        full = neutralize_batch(faces, both, STILL, mode)
        assert np.array_equal(neutralize_batch(faces, both, STILL, mode, 0.0), full)
        # a threshold above both shifts: the very pixels
        assert np.array_equal(neutralize_batch(faces, both, STILL, mode, shift * 1.01), faces)
    # between them: the neutral framing stays, the smaller one is re-framed three quarters of the way
    out = neutralize_batch(faces, both, STILL, "frame", shift / 4)
    assert np.array_equal(out[0], face)
    assert np.array_equal(out[1], reframe(face, lm_small, STILL, 0.75))
    scale = transform_scale(reframe_transform(lm_small, S, STILL))
    part = np.eye(2, 3) + 0.75 * (reframe_transform(lm_small, S, STILL) - np.eye(2, 3))
    assert transform_scale(part) == pytest.approx(1 + 0.75 * (scale - 1))
    assert not np.array_equal(out[1], reframe(face, lm_small, STILL))
    # a share of the warp: the landmarks go that share of the way to the predicted ones
    up = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.tile([0.0, -4.0], 68), {})
    half_up = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.tile([0.0, -2.0], 68), {})
    assert np.abs(neutralize(face, lm, up, 0.5).astype(int) - neutralize(face, lm, half_up)).max() <= 1
    assert np.abs(neutralize(face, lm, up).astype(int) - neutralize(face, lm, half_up)).mean() > 2


def test_shipped_map_gates_an_opened_mouth_and_not_a_neutral_face():
    lm = framed_landmarks()
    opened = open_mouth(lm, 5.0)
    as_aligned = apply_transform(similarity_transform(opened[list(INNER49)], template_points(S)), opened)
    assert framing_shift(lm, S, shipped()) < 0.012 < framing_shift(as_aligned, S, shipped())


def test_input_rule_records_the_threshold():
    from nfgan.data.generator_input import InputRule

    rule = InputRule(True, True, "mirror", True, None, "warp_frame", 0.012)
    record = rule.as_dict()
    assert record["neutralize_threshold"] == 0.012 and InputRule.from_record(record) == rule
    old = dict(record)
    del old["neutralize_threshold"]
    assert InputRule.from_record(old).threshold == 0.0         # a record from before the threshold existed
    assert "neutralize_threshold" not in InputRule(True, True, "mirror", True, None, "warp_frame").as_dict()
    with pytest.raises(ValueError, match="neutralisation threshold 1.5"):
        InputRule(True, True, "mirror", True, None, "warp", 1.5)


@pytest.mark.parametrize("key,value,field", [("neutralize_mode", "frame", "mode"),
                                             ("neutralize_threshold", 0.01, "threshold")])
def test_step_3_options_are_a_config_error_without_neutralize_shape(tmp_path, key, value, field):
    from nfgan.config import ConfigError
    from nfgan.data.generator_input import InputRule
    from nfgan.training.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=rf"c.yaml: data.{key} = {value} does nothing without "
                                          r"data.neutralize_shape: true"):
        load_config(cfg)
    cfg.write_text(f"data: {{neutralize_shape: true, {key}: {value}}}\n")
    assert getattr(InputRule.from_config(load_config(cfg)), field) == value


@pytest.mark.parametrize("mode,gate", [("warp", False), ("frame", False), ("warp_frame", True)])
def test_trainer_reads_neutralized_inputs_real_targets_and_the_model_file_keeps_the_rule(tmp_path, mode, gate):
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.training.data import TrainingData
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=4)
    rows, lm = _expressive_landmarks(root)
    cfg = tiny_config(root, steps=1)
    cfg["data"]["frontalize_inputs"] = True
    cfg["data"]["neutralize_shape"] = True
    cfg["data"]["neutralize_mode"] = mode
    n = len(rows)
    threshold = 0.0
    if gate:   # a threshold between the neutral and the opened faces' framing shifts
        shifts = {r["expression"]: framing_shift(lm[i], S, shipped()) for i, r in enumerate(rows)
                  if r["pose"] == "frontal"}
        assert shifts["happy"] > 2 * shifts["neutral"]
        threshold = cfg["data"]["neutralize_threshold"] = (shifts["happy"] + shifts["neutral"]) / 2

    def step(face, landmarks):
        return neutralize_batch(face[None], landmarks[None], shipped(), mode, threshold)[0]

    tr = TrainingData(cfg, torch.device("cpu"))
    faces = np.load(root / "faces.npy")
    for r in np.unique(np.concatenate([tr.train.inputs, tr.val.inputs])):
        face, pose = r % n, rows[r % n]["pose"]
        assert tr.gen_rows[r] >= 2 * n                      # every input is read warped
        if pose == "frontal":
            assert np.array_equal(tr.read([tr.gen_rows[r]])[0], step(faces[face], lm[face]))
    # targets (frontal neutral faces) are the real faces
    targets = np.unique(np.concatenate([tr.train.group_rows, tr.val.group_rows]))
    assert (targets < 2 * n).all()
    assert all(rows[t % n]["pose"] == "frontal" and rows[t % n]["expression"] == "neutral" for t in targets)

    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    g = load_model(tmp_path / "run")
    assert g.rule == InputRule(True, True, "mirror", True, None, mode, threshold)
    poses, flipped = [r["pose"] for r in rows], [r["flipped"] for r in rows]
    x = g.generator_inputs(faces, poses, flipped, lm)
    happy = [i for i, r in enumerate(rows) if r["pose"] == "frontal" and r["expression"] == "happy"]
    assert happy and all(np.array_equal(x[i], step(faces[i], lm[i])) for i in happy)
    assert all(not np.array_equal(x[i], faces[i]) for i in happy)
    neutral = [i for i, r in enumerate(rows) if r["pose"] == "frontal" and r["expression"] == "neutral"]
    assert all(np.array_equal(x[i], faces[i]) for i in neutral) == gate     # the gate leaves them as they are
    exported = load_model(export_model(tmp_path / "run", tmp_path / "m.safetensors"))
    assert exported.rule.neutralize and exported.rule.mode == mode and exported.rule.threshold == threshold
    assert np.array_equal(exported.generator_inputs(faces, poses, flipped, lm), x)


def test_a_map_of_ones_own_travels_in_the_config_and_is_embedded_in_exported_files(tmp_path):
    """data.neutral_shape_map: the trainer and a checkpoint use that file; an exported model carries the map
    itself, so it no longer needs the file."""
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.config import ConfigError
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=4)
    rows, lm = _expressive_landmarks(root)
    up = NeutralShape(np.zeros(136), np.zeros((136, 136)), np.tile([0.0, -2.0], 68), {"note": "up"})
    up.save(tmp_path / "up.safetensors")
    cfg = tiny_config(root, steps=1)
    cfg["data"]["neutralize_shape"] = True
    cfg["data"]["neutral_shape_map"] = str(tmp_path / "missing.safetensors")
    with pytest.raises((NeutralShapeError, ConfigError), match="missing.safetensors"):
        train(cfg, tmp_path / "bad", progress=False, feature_nets=tiny_nets())
    cfg["data"]["neutral_shape_map"] = str(tmp_path / "up.safetensors")
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    faces = np.load(root / "faces.npy")
    poses, flipped = [r["pose"] for r in rows], [r["flipped"] for r in rows]
    g = load_model(tmp_path / "run")
    x = g.generator_inputs(faces, poses, flipped, lm)
    front = [i for i, r in enumerate(rows) if r["pose"] == "frontal"]
    assert all(np.array_equal(x[i], neutralize(faces[i], lm[i], up)) for i in front)
    assert not all(np.array_equal(x[i], neutralize(faces[i], lm[i])) for i in front)    # not the shipped map
    out = export_model(tmp_path / "run", tmp_path / "m.safetensors")
    (tmp_path / "up.safetensors").unlink()
    exported = load_model(out)
    assert exported.rule.neutral_shape().info["note"] == "up"
    assert np.array_equal(exported.generator_inputs(faces, poses, flipped, lm), x)
    # an ONNX graph records the rule with the map in its metadata, and the onnxruntime backend applies it
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from nfgan.cli import main
    from nfgan.inference.onnx_backend import load_onnx_generator

    assert main(["export", "--format", "onnx", "-o", str(tmp_path / "onnx"), "--model", str(out)]) == 0
    graph = sorted((tmp_path / "onnx").glob("*.onnx"))[0]
    ort = load_onnx_generator(graph)
    assert ort.rule.neutralize and ort.rule.neutral_shape().info["note"] == "up"
    assert np.array_equal(ort.generator_inputs(faces, poses, flipped, lm), x)


def test_pairs_align_the_neutral_face_on_the_stable_points():
    lm = people(1, 3)[0]
    m = similarity_transform(lm[list(STABLE)], lm[list(STABLE)] * 1.1 + 2)     # the same face, moved and scaled
    x, y = pair_landmarks(open_mouth(lm, 3.0), apply_transform(m, lm))
    assert np.abs(x[list(STABLE)] - REFERENCE[list(STABLE)]).max() < 1.5
    assert np.abs(y[list(STABLE)] - x[list(STABLE)]).max() < 1e-6 + 0.1
    assert (x[LOWER, 1] - y[LOWER, 1]).mean() > 2.0


def test_set_input_rule_adds_step_3_at_inference_to_a_model_that_never_trained_with_it(tmp_path):
    """tools/set_input_rule.py: the same weights, the input rule extended by the gated warp, the map embedded;
    a model that already neutralises its inputs is refused."""
    from conftest import load_script, make_prepared, tiny_config, tiny_nets

    from nfgan.inference import load_model
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=4)
    rows, lm = _expressive_landmarks(root)
    cfg = tiny_config(root, steps=1)
    cfg["data"]["frontalize_inputs"] = True
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    tool = load_script("tools/set_input_rule.py")
    out = tmp_path / "gated.safetensors"
    assert tool.main([str(tmp_path / "run"), str(out), "--neutralize-mode", "warp_frame",
                      "--neutralize-threshold", "0.004"]) == 0
    before, after = load_model(tmp_path / "run"), load_model(out)
    assert not before.rule.neutralize
    assert (after.rule.neutralize, after.rule.mode, after.rule.threshold) == (True, "warp_frame", 0.004)
    assert after.rule.frontalize and after.info["input_rule_added"]["map"] == "shipped"
    # the FER leak guard reads what the file saw: the run's training people and the shipped map's people
    from nfgan.fer.augment import AugmentLeakError, check_no_leak, recorded_train_subjects

    from nfgan.data.generator_input import fit_subjects
    from nfgan.inference import export_model

    learned = recorded_train_subjects(tmp_path / "run")
    mapped = fit_subjects(shipped())
    assert learned and "KA" in mapped and "S005" in mapped and not set(learned) & mapped
    assert recorded_train_subjects(out) == sorted(set(learned) | mapped)
    # any export whose rule embeds the map records them (tools/export_default_model.py --neutralize-mode goes here)
    direct = export_model(tmp_path / "run", tmp_path / "direct.safetensors",
                          rule=before.rule.with_step3("warp_frame", 0.004))
    assert recorded_train_subjects(direct) == recorded_train_subjects(out)
    assert recorded_train_subjects(export_model(direct, tmp_path / "again_plain.safetensors")) == \
        recorded_train_subjects(out)                                               # a re-export adds nothing new
    with pytest.raises(AugmentLeakError, match="KA"):
        check_no_leak(recorded_train_subjects(out), ["KA"], str(out))     # a JAFFE person the map was fit on
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    faces = np.load(root / "faces.npy")
    poses, flipped = [r["pose"] for r in rows], [r["flipped"] for r in rows]
    x0, x1 = before.generator_inputs(faces, poses, flipped, lm), after.generator_inputs(faces, poses, flipped, lm)
    frontal = [i for i, r in enumerate(rows) if r["pose"] == "frontal"]
    happy = [i for i in frontal if rows[i]["expression"] == "happy"]
    assert np.array_equal(x1[frontal], neutralize_batch(faces[frontal], lm[frontal], shipped(), "warp_frame", 0.004))
    assert happy and all(not np.array_equal(x1[i], x0[i]) for i in happy)       # gated and changed
    turned = [i for i in range(len(rows)) if i not in frontal]
    assert np.array_equal(x1[turned], x0[turned])                                # step 2 as before
    with pytest.raises(SystemExit):
        tool.main([str(out), str(tmp_path / "again.safetensors"), "--neutralize-mode", "warp"])
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "run"), str(tmp_path / "bad.safetensors"), "--neutralize-mode", "warp",
                   "--neutralize-threshold", "2"])
    (tmp_path / "not_a_map.safetensors").write_bytes(b"garbage")
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "run"), str(tmp_path / "bad.safetensors"), "--neutralize-mode", "warp",
                   "--neutral-shape-map", str(tmp_path / "not_a_map.safetensors")])
    assert not (tmp_path / "bad.safetensors").exists()


def test_a_gated_rule_lets_frontal_faces_without_landmarks_through_with_a_warning():
    """The gate leaves most faces as they are, so a frontal crop without landmarks goes to the generator unchanged
    (with a warning); an ungated warp still refuses, and turned faces still need landmarks."""
    from nfgan.data.generator_input import InputRule, MissingLandmarksError

    faces = np.stack([smooth_face(3), smooth_face(4)])
    gated = InputRule(True, True, "mirror", True, None, "warp_frame", 0.013)
    with pytest.warns(UserWarning, match="2 frontal face\\(s\\) without landmarks go to the generator as they are"):
        assert np.array_equal(gated.apply(faces, ["frontal", "unknown"], ["0", "0"], None), faces)
    with pytest.raises(MissingLandmarksError, match="neutralises frontal inputs"):
        InputRule(True, True, "mirror", True, None, "warp_frame").apply(faces, ["frontal"] * 2, ["0"] * 2, None)
    with pytest.raises(MissingLandmarksError, match="frontalises turned inputs"), pytest.warns(UserWarning):
        gated.apply(faces, ["frontal", "left_3quarter"], ["0", "0"], None)


def test_identity_map_re_aligns_faces_framed_otherwise_and_leaves_aligned_ones_exactly(tmp_path):
    """NeutralShape.identity() (--neutral-shape-map identity): step 3 in frame mode then only re-aligns faces whose
    landmarks sit off nfgan prepare's template (another aligner's crop) and returns aligned faces bit for bit."""
    from conftest import load_script, make_prepared, tiny_config, tiny_nets

    from nfgan.data.framing_jitter import reframe as move
    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.training.loop import train

    ident = NeutralShape.identity()
    assert ident.info["kind"] == "identity" and not ident.weights.any()
    lm = framed_landmarks()
    assert framing_shift(lm, S, ident) == pytest.approx(0.0, abs=1e-12)
    face = smooth_face(3)
    moved, moved_lm = move(face[None], lm[None], {"shift_y": 0.06, "scale": 1.08})
    centre = np.s_[14:50, 14:50]
    assert np.abs(moved[0][centre].astype(int) - face[centre]).mean() > 8.0
    for t in (0.0, 0.001):          # 0.001: cc_by's rule (a face off by more than 1/16 px is re-framed)
        rule = InputRule(flip_left_poses=True, frontalize=True).with_step3("frame", t, "identity")
        assert rule.neutral_shape().info["kind"] == "identity"
        assert np.array_equal(rule.apply(face[None], ["frontal"], None, lm[None])[0], face)
        back = rule.apply(moved, ["frontal"], None, moved_lm)[0]
        assert np.abs(back[centre].astype(int) - face[centre]).mean() < 2.0
    with pytest.warns(UserWarning, match="without landmarks go to the generator as they are"):
        assert np.array_equal(rule.apply(moved, ["frontal"], None, None), moved)   # a bare crop passes as it is
    # the tool embeds it in a model file, which reads it back
    root = make_prepared(tmp_path / "d", subjects=4)
    train(tiny_config(root, steps=1), tmp_path / "run", progress=False, feature_nets=tiny_nets())
    out = tmp_path / "framed.safetensors"
    assert load_script("tools/set_input_rule.py").main([str(tmp_path / "run"), str(out), "--neutralize-mode",
                                                        "frame", "--neutral-shape-map", "identity"]) == 0
    g = load_model(out)
    assert g.rule.mode == "frame" and g.rule.neutral_shape().info["kind"] == "identity"
    assert g.info["input_rule_added"]["map"] == "identity"
    from nfgan.fer.augment import recorded_train_subjects   # the identity map learned from nobody

    assert recorded_train_subjects(out) == recorded_train_subjects(tmp_path / "run")
    from nfgan.inference import export_model   # a plain export keeps the run's people too

    assert recorded_train_subjects(export_model(tmp_path / "run", tmp_path / "plain.safetensors")) == \
        recorded_train_subjects(tmp_path / "run")
    # a map that does not say whose faces it was fit on: nothing recorded, so the leak guard refuses the file
    m = shipped()
    unknown = NeutralShape(m.mean, m.weights, m.bias, {"ridge": 1.0})
    from nfgan.data.generator_input import fit_subjects

    tool = load_script("tools/set_input_rule.py")
    assert fit_subjects(unknown) is None
    unknown.save(tmp_path / "anonymous.safetensors")
    out2 = tmp_path / "anonymous_model.safetensors"
    assert tool.main([str(tmp_path / "run"), str(out2), "--neutralize-mode", "frame",
                      "--neutral-shape-map", str(tmp_path / "anonymous.safetensors")]) == 0
    assert recorded_train_subjects(out2) is None
