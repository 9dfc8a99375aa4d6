"""Landmark frontalisation (nfgan.data.frontalize) and its use by the trainer and the evaluator's normaliser."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nfgan.data.align import mirror_landmarks
from nfgan.data.frontalize import (FRONTAL68, WARP_POINTS, Frontalizer, derive_frontal68, frontalize_batch, is_turned,
                              visible_side)

S = 64


def smooth_image(seed: int = 0) -> np.ndarray:
    coarse = np.random.default_rng(seed).uniform(0, 255, size=(8, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((S, S), Image.BICUBIC), dtype=np.float64).clip(0, 255)


def test_template_is_symmetric_and_derivation_is_its_own_fixed_point():
    t = FRONTAL68 * (S - 1)
    assert np.abs(mirror_landmarks(t, S) - t).max() < 0.01            # 4 decimals of rounding
    assert np.allclose(derive_frontal68(t[None], S), FRONTAL68, atol=1e-4)
    # a frontal layout has its nose tip on the midline, so neither half is preferred by much
    assert abs(t[30, 0] - (S - 1) / 2) < 1e-6


def test_warp_undoes_a_known_affine_turn_inside_the_face():
    """Squeeze a face horizontally towards the image's left (a crude turn) and move the landmarks with it:
    the warp brings every pixel inside the landmark mesh back to where it was."""
    f = Frontalizer(S)
    img = smooth_image()
    t = FRONTAL68 * (S - 1)
    a = np.array([[0.8, 0.0, 2.0], [0.0, 1.0, 0.0]])      # x' = 0.8 x + 2
    turned_lm = t @ a[:, :2].T + a[:, 2]
    # turned image: pixel x' shows the original at x = (x' - 2) / 0.8
    xs = np.clip((np.arange(S) - 2.0) / 0.8, 0, S - 1)
    x0 = np.floor(xs).astype(int)
    x1 = np.minimum(x0 + 1, S - 1)
    w = xs - x0
    turned = img[:, x0] * (1 - w) + img[:, x1] * w
    back = f.warp(turned, turned_lm)
    # pixels whose mesh triangle has only landmark vertices (the border points do not move with the face)
    inside = (f.vertices < len(WARP_POINTS)).all(1).reshape(S, S)
    assert inside.sum() > 500
    err = np.abs(back - img)[inside]
    assert err.mean() < 2.0 and err.max() < 20.0        # bilinear resampling error only
    assert np.abs(turned - img)[inside].mean() > 10 * err.mean()   # the turn itself was a large change


def test_frontalized_face_is_the_visible_half_and_its_mirror():
    f = Frontalizer(S)
    t = FRONTAL68 * (S - 1)
    lm = t.copy()
    lm[30, 0] += 6.0                          # nose towards the image's right: the left half faces the camera
    assert visible_side(lm) == "left"
    assert visible_side(mirror_landmarks(lm, S)) == "right"
    img = smooth_image(1).round().astype(np.uint8)
    out = f(img, lm).astype(float)
    assert np.abs(out - out[:, ::-1]).max() <= 1.0         # exactly symmetric up to rounding
    warped = f.warp(img, lm)
    left = slice(0, int((S - 1) / 2 - f.band))
    assert np.abs(out[:, left] - warped[:, left]).max() <= 0.5   # the visible half is the warp itself


def test_frontalize_batch_touches_turned_faces_only_and_refuses_bad_landmarks():
    imgs = np.stack([smooth_image(k).round().astype(np.uint8) for k in range(4)])
    t = FRONTAL68 * (S - 1)
    lms = np.stack([t + [k, 0] for k in range(4)])
    poses = ["frontal", "left_3quarter", "unknown", "right_profile"]
    assert [is_turned(p) for p in poses] == [False, True, False, True]
    out = frontalize_batch(imgs, lms, poses)
    assert np.array_equal(out[0], imgs[0]) and np.array_equal(out[2], imgs[2])
    assert np.array_equal(out[1], Frontalizer(S)(imgs[1], lms[1]))
    assert not np.array_equal(out[3], imgs[3])
    with pytest.raises(ValueError, match="68 finite landmarks"):
        Frontalizer(S)(imgs[0], np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="64x64"):
        Frontalizer(S)(imgs[0][:32], t)


def _with_landmarks(root):
    """Landmarks for the synthetic prepared set of test_trainer: the template moved with each pose's shift."""
    import csv

    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}
    lm = np.stack([FRONTAL68 * (S - 1) + [shift[r["pose"]], 0] for r in rows]).astype(np.float32)
    np.save(root / "landmarks.npy", lm)
    return root, rows, lm


def test_trainer_feeds_frontalized_turned_inputs_and_keeps_real_ones_for_identity(tmp_path):
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.config import ConfigError
    from nfgan.training.data import TrainingData
    from nfgan.training.loop import Trainer

    root = make_prepared(tmp_path / "d", subjects=4)
    cfg = tiny_config(root, steps=1)
    cfg["data"]["frontalize_inputs"] = True
    with pytest.raises(ConfigError, match="landmarks.npy"):
        TrainingData(cfg, torch.device("cpu"))
    root, rows, lm = _with_landmarks(root)
    tr = TrainingData(cfg, torch.device("cpu"))
    n = len(rows)
    inputs = np.unique(np.concatenate([tr.train.inputs, tr.val.inputs]))
    for r in inputs:
        face = r % n
        pose = rows[face]["pose"]
        g = int(tr.gen_rows[r])
        if pose == "frontal":
            assert g == r
            continue
        assert g >= 2 * n                                    # an appended row ...
        mirrored = r >= n
        want_lm = mirror_landmarks(lm[face], S) if mirrored else lm[face]
        want = frontalize_batch(tr.read([r]), want_lm[None], [pose])[0]
        assert np.array_equal(tr.read([g])[0], want)   # ... holding the frontalised (mirrored) input
    # the generator reads the frontalised rows; the input rows themselves (L_id's reference) stay real
    x_rows = tr.train.inputs[:4]
    assert torch.equal(tr.generator_rows(x_rows), tr.rows(tr.gen_rows[x_rows]))
    assert all(r < 2 * n for r in tr.train.inputs)
    Trainer(cfg, feature_nets=tiny_nets()).train_step()


def test_same_pose_targets_are_the_frontalised_neutral_face_in_the_input_pose(tmp_path):
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.config import ConfigError
    from nfgan.training.config import load_config
    from nfgan.training.data import TrainingData
    from nfgan.training.loop import Trainer

    root, rows, lm = _with_landmarks(make_prepared(tmp_path / "d", subjects=4))
    cfg = tiny_config(root, steps=1)
    cfg["data"]["turned_targets"] = "same_pose"
    with pytest.raises(ConfigError, match="frontalize_inputs"):
        load_config(overrides=cfg)
    cfg["data"]["frontalize_inputs"] = True
    tr = TrainingData(cfg, torch.device("cpu"))
    n = len(rows)
    faces = tr.read(np.arange(n))
    seen = set()
    for pairs in (tr.train, tr.val):
        for r, choices in zip(pairs.inputs, pairs.target_choices):
            face, pose = int(r) % n, rows[int(r) % n]["pose"]
            assert len(choices) == 1
            t = int(choices[0])
            if pose == "frontal":
                assert t < n and (rows[t]["pose"], rows[t]["expression"]) == ("frontal", "neutral")
                continue
            # the same subject's neutral face in the input's pose, mirrored with the input, frontalised
            want = next(i for i, q in enumerate(rows) if q["subject"] == rows[face]["subject"]
                        and q["pose"] == pose and q["expression"] == "neutral")
            mirrored = int(r) >= n
            img = faces[want, :, ::-1] if mirrored else faces[want]
            want_lm = mirror_landmarks(lm[want], S) if mirrored else lm[want]
            assert t >= 2 * n
            assert np.array_equal(tr.read([t])[0], frontalize_batch(img[None], want_lm[None], [pose])[0])
            seen.add(pose)
    assert {"left_3quarter", "right_3quarter"} <= seen
    Trainer(cfg, feature_nets=tiny_nets()).train_step()


def test_evaluator_normalizer_frontalizes_like_the_trainer(tmp_path):
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.data.generator_input import InputRule, MissingLandmarksError
    from nfgan.inference import load_model
    from nfgan.training.loop import train

    root, rows, lm = _with_landmarks(make_prepared(tmp_path / "d", subjects=4))
    cfg = tiny_config(root, steps=1)
    cfg["data"]["frontalize_inputs"] = True
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    g = load_model(tmp_path / "run")
    assert g.frontalize
    faces = np.load(root / "faces.npy")
    poses = [r["pose"] for r in rows]
    flipped = [r["flipped"] for r in rows]
    with pytest.raises(MissingLandmarksError, match="landmarks"):
        g.normalize(faces, poses, flipped)
    x = g.generator_inputs(faces, poses, flipped, lm)
    flip = g.mirror_mask(poses, flipped)
    for i, p in enumerate(poses):
        face = faces[i, :, ::-1] if flip[i] else faces[i]
        if p == "frontal":
            assert np.array_equal(x[i], face)
        else:
            want_lm = mirror_landmarks(lm[i], S) if flip[i] else lm[i]
            assert np.array_equal(x[i], frontalize_batch(face[None], want_lm[None], [p])[0])
    # a turned face without landmarks (a resize-aligned crop) goes in unwarped, with a warning; the others
    # are still frontalised
    bad = lm.copy()
    k = next(i for i, p in enumerate(poses) if p != "frontal")
    bad[k] = np.nan
    with pytest.warns(UserWarning, match="1 turned face"):
        y = g.generator_inputs(faces, poses, flipped, bad)
    face_k = faces[k, :, ::-1] if flip[k] else faces[k]
    assert np.array_equal(y[k], face_k)
    others = [i for i in range(len(poses)) if i != k]
    assert np.array_equal(y[others], x[others])
    # without frontalize_inputs nothing needs landmarks
    plain = load_model(tmp_path / "run")
    plain.rule = InputRule(plain.rule.flip_left_poses, frontalize=False)
    assert plain.normalize(faces, poses, flipped).shape == faces.shape


def test_fill_none_keeps_the_warped_far_half():
    f = Frontalizer(S)
    lm = FRONTAL68 * (S - 1)
    lm = lm.copy()
    lm[30, 0] += 6.0
    img = smooth_image(2).round().astype(np.uint8)
    plain = f(img, lm, fill="none")
    assert np.array_equal(plain, np.clip(np.round(f.warp(img, lm)), 0, 255).astype(np.uint8))
    mirrored = f(img, lm)
    left = slice(0, S // 2 - 3)
    assert np.array_equal(plain[:, left], mirrored[:, left])               # the kept (near) half is the same
    assert np.abs(plain[:, -20:].astype(int) - mirrored[:, -20:]).mean() > 5  # the far half is not the mirror
    with pytest.raises(ValueError, match="fill 'blur'"):
        f(img, lm, fill="blur")
    both = frontalize_batch(np.stack([img, img]), np.stack([lm, lm]), ["right_3quarter", "frontal"], fill="none")
    assert np.array_equal(both[0], plain) and np.array_equal(both[1], img)


def test_fill_travels_from_the_config_to_the_model_file_and_onnx_record(tmp_path):
    from conftest import make_prepared, tiny_config, tiny_nets

    from nfgan.config import ConfigError
    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.training.config import load_config
    from nfgan.training.loop import train

    root, rows, lm = _with_landmarks(make_prepared(tmp_path / "d", subjects=4))
    cfg = tiny_config(root, steps=1)
    cfg["data"]["frontalize_inputs"] = True
    cfg["data"]["frontalize_fill"] = "sideways"
    with pytest.raises(ConfigError, match="frontalize_fill"):
        load_config(overrides=cfg)
    cfg["data"]["frontalize_fill"] = "none"
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    g = load_model(tmp_path / "run")
    assert g.rule == InputRule(True, True, "none")
    faces = np.load(root / "faces.npy")
    poses, flipped = [r["pose"] for r in rows], [r["flipped"] for r in rows]
    x = g.generator_inputs(faces, poses, flipped, lm)
    flip = g.mirror_mask(poses, flipped)
    for i, p in enumerate(poses):
        if p != "frontal":
            face = faces[i, :, ::-1] if flip[i] else faces[i]
            want_lm = mirror_landmarks(lm[i], S) if flip[i] else lm[i]
            assert np.array_equal(x[i], frontalize_batch(face[None], want_lm[None], [p], fill="none")[0])
    # the exported file keeps it; a record from before the option existed reads as the mirror fill
    exported = load_model(export_model(tmp_path / "run", tmp_path / "m.safetensors"))
    assert exported.rule.fill == "none"
    assert InputRule.from_record(g.rule.as_dict()) == g.rule
    assert InputRule.from_record({"flip_left_poses": True, "frontalize": True}).fill == "mirror"
    with pytest.raises(ValueError, match="fill"):
        InputRule(True, True, "blur")


def _fill_both_config(tmp_path, steps: int):
    """The synthetic set with landmarks and a tiny pix2pix config with ``frontalize_fill: both`` (``model.in_channels``
    left at 1): ``(root, manifest rows, landmarks, config dict)``."""
    from conftest import make_prepared, p2p_config

    root, rows, lm = _with_landmarks(make_prepared(tmp_path / "d", subjects=4))
    cfg = p2p_config(root, steps=steps)
    cfg["data"].update(frontalize_inputs=True, frontalize_fill="both")
    return root, rows, lm, cfg


def test_fill_both_feeds_two_channels_through_training_inference_and_onnx(tmp_path):
    """``data.frontalize_fill: both``: channel 0 is exactly the mirror-filled input, channel 1 the plain warp (the
    face itself where nothing is warped), in the trainer's batches, a model file's rule and its ONNX graph."""
    from nfgan.config import ConfigError
    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.inference.generator import export_model
    from nfgan.training.config import load_config
    from nfgan.training.data import TrainingData
    from nfgan.training.loop import train

    root, rows, lm, cfg = _fill_both_config(tmp_path, steps=2)
    with pytest.raises(ConfigError, match="reads 2 channel.*model.in_channels is 1"):
        load_config(overrides=cfg)
    cfg["model"]["in_channels"] = 2
    with pytest.raises(ConfigError, match="does nothing without data.frontalize_inputs"):
        load_config(overrides={**cfg, "data": {**cfg["data"], "frontalize_inputs": False}})
    nfgan_cfg = {"data": {"root": str(root), "splits": str(root / "splits.json"), "frontalize_inputs": True,
                          "frontalize_fill": "both"}}
    with pytest.raises(ConfigError, match="nfgan generator reads one channel"):
        load_config(overrides=nfgan_cfg)
    cfg = load_config(overrides=cfg)

    # the trainer's batches: channel 0 is the one-channel mirror rule's input, to the bit
    mirror_cfg = load_config(overrides={**cfg, "data": {**cfg["data"], "frontalize_fill": "mirror"},
                                        "model": {**cfg["model"], "in_channels": 1}})
    both, one = TrainingData(cfg, torch.device("cpu")), TrainingData(mirror_cfg, torch.device("cpu"))
    b2 = both.sample(16, torch.Generator().manual_seed(3))
    b1 = one.sample(16, torch.Generator().manual_seed(3))
    assert b2.x.shape == (16, 2, S, S) and b1.x.shape == (16, 1, S, S)
    assert torch.equal(b2.x[:, :1], b1.x) and torch.equal(b2.y, b1.y)
    turned = np.asarray([is_turned(p) for p in both.faces.poses[b2.x_rows % both.faces.n]])
    assert turned.any() and (~turned).any()
    differs = (b2.x[:, 0] != b2.x[:, 1]).flatten(1).any(1).numpy()
    assert np.array_equal(differs, turned)       # only frontalised faces differ between the channels

    # the trained model's rule, its file and its ONNX graph read the same two channels
    train(cfg, tmp_path / "run", progress=False)
    g = load_model(tmp_path / "run")
    assert g.rule == InputRule(False, True, "both") and g.rule.channels == 2
    faces = np.load(root / "faces.npy")
    poses = [r["pose"] for r in rows]
    x = g.generator_inputs(faces, poses, None, lm)
    assert x.shape == (len(faces), 2, S, S)
    assert np.array_equal(x[:, 0], InputRule(False, True, "mirror").apply(faces, poses, None, lm))
    assert np.array_equal(x[:, 1], InputRule(False, True, "none").apply(faces, poses, None, lm))
    out = g.normalize(faces, poses, landmarks=lm)
    assert out.shape == faces.shape and out.dtype == np.uint8
    # the second channel is read: changing it changes the output of a turned face
    x_t = torch.from_numpy(x[:4]).float() / 127.5 - 1
    x_swapped = x_t.clone()
    x_swapped[:, 1] = x_t[:, 0]
    with torch.no_grad():
        assert not torch.equal(g(x_t), g(x_swapped))
    exported = load_model(export_model(tmp_path / "run", tmp_path / "m.safetensors"))
    assert exported.rule == g.rule and InputRule.from_record(g.rule.as_dict()) == g.rule
    assert np.array_equal(exported.normalize(faces, poses, landmarks=lm), out)
    pytest.importorskip("onnxruntime")
    from nfgan.inference.onnx_backend import load_onnx_generator

    onnx_g = load_onnx_generator(tmp_path / "m.safetensors")
    assert onnx_g.rule == g.rule
    assert np.abs(onnx_g.normalize(faces, poses, landmarks=lm).astype(int) - out).max() <= 1


def test_a_rule_replaced_by_hand_must_give_the_channels_the_network_reads(tmp_path):
    from nfgan.data.generator_input import InputRule
    from nfgan.inference import load_model
    from nfgan.training.config import load_config
    from nfgan.training.loop import train

    root, rows, lm, cfg = _fill_both_config(tmp_path, steps=1)
    cfg["model"]["in_channels"] = 2
    train(load_config(overrides=cfg), tmp_path / "run", progress=False)
    g = load_model(tmp_path / "run")
    assert g.in_channels == 2
    faces, poses = np.load(root / "faces.npy"), [r["pose"] for r in rows]
    g.rule = InputRule(False, True, "mirror")
    with pytest.raises(ValueError, match="reads 2 channel.*gives 1.*fill 'mirror'"):
        g.normalize(faces, poses, landmarks=lm)
    g.rule = InputRule(False, True, "both")
    assert g.normalize(faces, poses, landmarks=lm).shape == faces.shape
