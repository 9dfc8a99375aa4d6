"""Identity mixing (data.identity_mix): morphs of two training pairs as the pair of a new person."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import make_prepared, p2p_config, tiny_nets

from nfgan.config import ConfigError
from nfgan.data.frontalize import FRONTAL68
from nfgan.data.identity_mix import mix_params, morph
from nfgan.pixels import to_unit_batch
from nfgan.training.config import load_config

S = 64


def _dot_faces(points: np.ndarray) -> np.ndarray:
    """Gray faces with one bright 3 x 3 dot centred on each given point (``B x 2``, whole pixels)."""
    faces = np.full((len(points), S, S), 40, np.uint8)
    for f, (x, y) in zip(faces, points.astype(int)):
        f[y - 1:y + 2, x - 1:x + 2] = 250
    return faces


def test_morph_ends_are_the_faces_and_a_landmark_lands_on_the_weighted_layout():
    rng = np.random.default_rng(0)
    base = FRONTAL68 * (S - 1)
    lm_a = base + rng.normal(0, 1.0, (4, 68, 2))
    lm_b = base * 0.9 + 3.0 + rng.normal(0, 1.0, (4, 68, 2))     # another face shape
    a = rng.integers(0, 256, (4, S, S), dtype=np.uint8)
    b = rng.integers(0, 256, (4, S, S), dtype=np.uint8)
    assert np.array_equal(morph(a, b, lm_a, lm_b, np.zeros(4)), a)
    assert np.array_equal(morph(a, b, lm_a, lm_b, np.ones(4)), b)
    # a face morphed with itself is itself, whatever the weight
    assert np.array_equal(morph(a, a, lm_a, lm_a, np.full(4, 0.4)), a)
    # the nose tip (landmark 30) of each face carries a dot: in the morph both dots meet at the weighted layout
    k = 30
    lm_a[:, k] = np.round(lm_a[:, k])
    lm_b[:, k] = np.round(lm_b[:, k])
    alpha = np.array([0.25, 0.5, 0.75, 0.5])
    out = morph(_dot_faces(lm_a[:, k]), _dot_faces(lm_b[:, k]), lm_a, lm_b, alpha)
    for o, pa, pb, w in zip(out, lm_a[:, k], lm_b[:, k], alpha):
        want = (1 - w) * pa + w * pb
        y, x = np.unravel_index(np.argmax(o.astype(float)), o.shape)
        assert abs(x - want[0]) <= 1.0 and abs(y - want[1]) <= 1.0
        assert o.max() >= 200          # both dots land on the same pixels, so the blend stays bright


def test_morph_keeps_only_pixels_both_faces_fill():
    base = FRONTAL68 * (S - 1)
    lm = np.stack([base, base])
    a = np.full((2, S, S), 120, np.uint8)
    b = a.copy()
    valid_a = np.ones((2, S, S), bool)
    valid_a[:, :, :5] = False                 # a's empty frame on the left
    valid_b = np.ones((2, S, S), bool)
    valid_b[:, :4, :] = False                 # b's along the top
    _, valid = morph(a, b, lm, lm, np.full(2, 0.5), valid_a, valid_b)
    assert not valid[:, :, :5].any() and not valid[:, :4, :].any()
    assert valid[:, 10:, 10:].all()


def test_mix_params_mix_only_eligible_rows_at_the_set_rate():
    eligible = np.arange(4000) % 4 != 0
    p = mix_params(eligible, np.random.default_rng(0), {"p": 0.5, "alpha": [0.25, 0.75]})
    assert not p["mixed"][~eligible].any()
    assert p["mixed"][eligible].mean() == pytest.approx(0.5, abs=0.03)
    assert p["alpha"].min() >= 0.25 and p["alpha"].max() <= 0.75
    assert p["u"].shape == (4000, 2) and (p["u"] >= 0).all() and (p["u"] < 1).all()


def _with_landmarks(root, seed=0):
    """Landmarks for make_prepared's set: the template moved with each pose's shift, each person's a little
    scaled (so morphs really warp)."""
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}
    scale = {s: 1.0 + 0.06 * k for k, s in enumerate(sorted({r["subject"] for r in rows}))}
    centre = np.array([(S - 1) / 2, (S - 1) / 2])
    lm = np.stack([centre + (FRONTAL68 * (S - 1) - centre) * scale[r["subject"]] + [shift[r["pose"]], 0]
                   for r in rows]).astype(np.float32)
    np.save(root / "landmarks.npy", lm)
    return rows


def _config(root, p, border="off", **data):
    cfg = p2p_config(root, batch_size=32)
    cfg["data"].update({"root": None, "splits": None, "frontalize_inputs": True,
                        **{k: v for k, v in data.items() if k != "identity_mix"}})
    cfg["data"]["sources"] = {"a": {"root": str(root), "splits": str(root / "splits.json"), "weight": None,
                                    "empty_border": border}}
    cfg["data"]["identity_mix"]["p"] = p
    cfg["data"]["identity_mix"].update(data.get("identity_mix", {}))
    return cfg


def test_mixed_pairs_are_morphs_of_two_pairs_of_one_source_and_turned_inputs_stay(tmp_path):
    from nfgan.training.data import TrainingData

    a = make_prepared(tmp_path / "a", subjects=6)
    rows = _with_landmarks(a)
    off = TrainingData(_config(a, 0.0), torch.device("cpu"))
    d = TrainingData(_config(a, 1.0), torch.device("cpu"))
    draw = d.draw(32, torch.Generator().manual_seed(0))
    b = d.load(draw)
    plain = off.sample(32, torch.Generator().manual_seed(0))
    # the mix is drawn last: the rows and the unmixed faces are those of the run without it
    assert np.array_equal(b.x_rows, plain.x_rows) and np.array_equal(b.y_rows, plain.y_rows)
    assert torch.equal(b.g, plain.g)
    m = b.mixed
    frontal = np.asarray([rows[r]["pose"] == "frontal" for r in b.x_rows])
    assert np.array_equal(m, frontal) and m.any() and (~m).any()     # turned (frontalised) inputs are never mixed
    assert torch.equal(b.x[~m], plain.x[~m]) and torch.equal(b.y[~m], plain.y[~m])
    mix = draw.mix
    lm = np.load(a / "landmarks.npy")
    faces = np.load(a / "faces.npy")
    want_y = morph(faces[b.y_rows[m]], faces[mix["y"][m]], lm[b.y_rows[m]], lm[mix["y"][m]], mix["alpha"][m])
    want_x = morph(faces[b.x_rows[m]], faces[mix["x"][m]], lm[b.x_rows[m]], lm[mix["x"][m]], mix["alpha"][m])
    assert torch.equal(b.y[m], to_unit_batch(want_y)) and torch.equal(b.x[m], to_unit_batch(want_x))
    assert torch.equal(b.x_real, to_unit_batch(want_x))              # L_id's reference: the real inputs' morph
    # a partner pair is a training pair: its target is a frontal neutral face of its input's person
    for px, py in zip(mix["x"][m], mix["y"][m]):
        assert rows[py]["subject"] == rows[px]["subject"] and rows[py]["expression"] == "neutral"
        assert rows[px]["subject"] in d.sources[0].splits["train"] and rows[px]["pose"] == "frontal"
    assert not np.array_equal(mix["x"][m], b.x_rows[m])
    # a rank keeps its slice of the mixed batch
    parts = [d.sample(32, torch.Generator().manual_seed(0), (r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p.y for p in parts]), b.y)


def test_mixed_targets_keep_both_empty_frames_out_of_the_pixel_loss(tmp_path):
    from nfgan.training.data import TrainingData

    a = make_prepared(tmp_path / "a", subjects=6)
    _with_landmarks(a)
    faces = np.load(a / "faces.npy")
    faces[:, :, :5] = 0
    np.save(a / "faces.npy", faces)
    b = TrainingData(_config(a, 1.0, border="auto"), torch.device("cpu")).sample(32, torch.Generator().manual_seed(1))
    m = torch.from_numpy(b.mixed)
    assert b.y_mask is not None and b.mixed.any()
    assert float(b.y_mask[m][..., :5].max()) == 0.0 and float(b.y_mask[m][..., 8:56, 20:44].min()) == 1.0


def test_mixed_rows_take_their_identity_and_target_features_from_their_faces(tmp_path):
    from nfgan.models import losses as L
    from nfgan.training.loop import Trainer

    a = make_prepared(tmp_path / "a", subjects=6)
    _with_landmarks(a)
    cfg = _config(a, 1.0)
    cfg["loss"].update(id=1.0, feat=1.0)
    cfg["train"]["share_trunk"] = False
    nets = tiny_nets()
    tr = Trainer(cfg, feature_nets=nets)
    b = tr.sample_batch()
    m = b.mixed
    assert m.any()
    fake = torch.rand_like(b.y) * 2 - 1
    f = tr.model.features
    got = f(fake, b.x_rows, b.y_rows, b.mixed, b.x_real, b.y)
    refs = [c.clone() for c in f.input_cache(b.x_rows)]
    targets = [c.clone() for c in f.target_cache(b.y_rows)]
    with torch.no_grad():
        for c, v in zip(refs, nets["identity"](b.x_real)):
            c[torch.from_numpy(m)] = v
        for c, v in zip(targets, nets["perceptual"](b.y[torch.from_numpy(m)])):
            c[torch.from_numpy(m)] = v
    assert torch.allclose(got["id"], L.identity_loss(nets["identity"](fake), refs))
    assert torch.allclose(got["feat"], L.feature_loss(nets["perceptual"](fake), targets))
    cached = f(fake, b.x_rows, b.y_rows)        # the rows' own (unmixed) features give another loss
    assert not torch.allclose(got["id"], cached["id"]) and not torch.allclose(got["feat"], cached["feat"])


def test_training_with_identity_mixing_runs(tmp_path):
    from nfgan.training.loop import train

    a = make_prepared(tmp_path / "a", subjects=6)
    _with_landmarks(a)
    cfg = _config(a, 0.5)
    cfg["loss"].update(id=0.2, feat=1.0)
    cfg["train"]["steps"] = 3
    s = train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    assert s["step"] == 3


def test_identity_mix_config_rules(tmp_path):
    with pytest.raises(ConfigError, match="identity_mix.alpha"):
        load_config(overrides={"data": {"identity_mix": {"p": 0.5, "alpha": [0.8, 0.2]}}})
    with pytest.raises(ConfigError, match="id_rank"):
        load_config(overrides={"model": {"type": "pix2pix"}, "data": {"identity_mix": {"p": 0.5}},
                               "loss": {"id_rank": 1.0}})
    a = make_prepared(tmp_path / "a", subjects=4)          # no landmarks.npy: nothing can be mixed
    from nfgan.training.data import TrainingData
    cfg = _config(a, 0.5, frontalize_inputs=False)
    with pytest.raises(ConfigError, match="identity_mix"):
        TrainingData(cfg, torch.device("cpu"))


def test_turned_mixing_morphs_two_photos_of_one_view_then_warps_them_as_inference_would(tmp_path):
    from nfgan.training.data import TrainingData

    a = make_prepared(tmp_path / "a", subjects=6)
    rows = _with_landmarks(a)
    frontal_only = TrainingData(_config(a, 1.0, flip_left_poses=True), torch.device("cpu"))
    d = TrainingData(_config(a, 1.0, flip_left_poses=True, identity_mix={"p": 1.0, "turned": True}),
                     torch.device("cpu"))
    draw = d.draw(32, torch.Generator().manual_seed(0))
    b = d.load(draw)
    n = d.faces.n
    m = b.mixed
    warped = d.gen_rows[b.x_rows] != b.x_rows
    assert (m & warped).any() and (m & (b.x_rows >= n)).any()     # turned and mirrored rows are mixed now
    assert not frontal_only.sample(32, torch.Generator().manual_seed(0)).mixed[warped].any()
    lm = np.load(a / "landmarks.npy").astype(np.float64)
    faces = np.load(a / "faces.npy")
    for i in np.flatnonzero(m & warped).tolist():
        r, p, w = b.x_rows[i], draw.mix["x"][i], draw.mix["alpha"][i]
        assert rows[p % n]["pose"] == rows[r % n]["pose"] and (p >= n) == (r >= n)   # a partner of the same view
        real = morph(faces[[r % n]], faces[[p % n]], lm[[r % n]], lm[[p % n]], np.array([w]))
        if r >= n:
            real = real[..., ::-1]
        k = int(np.flatnonzero(np.flatnonzero(m) == i)[0])
        assert torch.equal(b.x_real[k], to_unit_batch(real)[0])
        gen = d.rule.reshape(real, [rows[r % n]["pose"]], (1 - w) * lm[[r % n]] + w * lm[[p % n]], mirrored=[r >= n],
                             strict=True)
        assert torch.equal(b.x[i], to_unit_batch(gen)[0])
        assert not torch.equal(b.x[i], to_unit_batch(real)[0])      # the generator reads it frontalised
