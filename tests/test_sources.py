"""Training on several prepared folders (data.sources), reading faces through memory maps, empty frames left
out of the pixel loss, and photometric augmentation of the generator's inputs."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import make_prepared, tiny_config, tiny_nets

from nfgan.config import ConfigError
from nfgan.training.config import load_config


def _two_sources(tmp_path, **weights):
    a = make_prepared(tmp_path / "a", subjects=5, seed=1)
    b = make_prepared(tmp_path / "b", subjects=4, seed=2)     # the same subject names (S00...) as in a
    cfg = tiny_config(a, batch_size=8)
    cfg["data"]["root"] = cfg["data"]["splits"] = None
    cfg["data"]["sources"] = {
        "a": {"root": str(a), "splits": str(a / "splits.json"), "weight": weights.get("a"), "empty_border": "off"},
        "b": {"root": str(b), "splits": str(b / "splits.json"), "weight": weights.get("b"), "empty_border": "off"}}
    return cfg, a, b


def test_pairs_never_cross_sources_and_weights_set_the_mix(tmp_path):
    from nfgan.data.dataset import PreparedDataset
    from nfgan.training.data import TrainingData

    cfg, a, b = _two_sources(tmp_path)
    d = TrainingData(cfg, torch.device("cpu"))
    n_a, n = len(PreparedDataset(a)), d.faces.n
    assert n == n_a + len(PreparedDataset(b))
    src_in = d.source_of_rows(d.train.inputs)
    assert set(src_in.tolist()) == {0, 1}
    for r, choices in zip(d.train.inputs, d.train.target_choices):
        assert set(d.source_of_rows(choices).tolist()) == {d.source_of_rows([r])[0]}
    # the faces of source b are read from b's own pack
    face_b = PreparedDataset(b).images[3]
    assert np.array_equal(d.read([n_a + 3])[0], face_b)
    # no weights: every pair equally likely (the single-folder sampler)
    assert d.input_weights is None
    cfg3, _, _ = _two_sources(tmp_path / "w", a=3.0, b=1.0)
    d3 = TrainingData(cfg3, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    rows = np.concatenate([d3.train.sample(64, g, d3.input_weights)[0] for _ in range(60)])
    share_a = float(np.mean(d3.source_of_rows(rows) == 0))
    assert share_a == pytest.approx(0.75, abs=0.04)
    cfg0, _, _ = _two_sources(tmp_path / "z", a=1.0, b=0.0)
    d0 = TrainingData(cfg0, torch.device("cpu"))
    rows = d0.train.sample(256, torch.Generator().manual_seed(0), d0.input_weights)[0]
    assert set(d0.source_of_rows(rows).tolist()) == {0}
    # train subjects are listed once each (the FER leak guard matches names)
    assert d.train_subjects == sorted(set(d.sources[0].splits["train"]) | set(d.sources[1].splits["train"]))


def test_training_on_two_sources_runs_and_resumes(tmp_path):
    from nfgan.training.loop import train

    cfg, _, _ = _two_sources(tmp_path, a=1.0, b=1.0)
    cfg["train"]["steps"] = 2
    cfg["log"].update(checkpoint_every=1, sample_every=1)
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    cfg["train"]["steps"] = 3
    s = train(cfg, tmp_path / "run", resume=True, progress=False, feature_nets=tiny_nets())
    assert s["step"] == 3


def test_sources_config_rules(tmp_path):
    a = make_prepared(tmp_path / "a", subjects=3)
    src = {"a": {"root": str(a), "splits": str(a / "splits.json")}}
    with pytest.raises(ConfigError, match="either data.root"):
        load_config(overrides={"data": {"root": str(a), "sources": src}})
    cfg = load_config(overrides={"data": {"root": None, "splits": None, "sources": src}})
    assert cfg["data"]["sources"]["a"]["weight"] is None and cfg["data"]["root"] is None
    with pytest.raises(ConfigError, match="sources.b.root"):
        load_config(overrides={"data": {"root": None, "splits": None, "sources": {**src, "b": {"weight": 1}}}})
    with pytest.raises(ConfigError, match="entry name"):
        load_config(overrides={"data": {"root": None, "splits": None, "sources": {"a/b": src["a"]}}})
    # --set changes one entry key by key; null removes an entry
    cfg = load_config(overrides={"data": {"root": None, "splits": None, "sources": {**src, "b": src["a"]}}},
                      sets=["data.sources.a.weight=2", "data.sources.b=null"])
    assert list(cfg["data"]["sources"]) == ["a"] and cfg["data"]["sources"]["a"]["weight"] == 2
    assert cfg["data"]["sources"]["a"]["root"] == str(a)
    # a run's saved config (root/splits stored as null) loads again
    from nfgan.training.data import TrainingData
    mixed = tiny_config(a)
    mixed["data"].update(root=None, splits=None, sources={"a": {**src["a"], "weight": 1.0, "empty_border": "off"},
                                                           "b": {**src["a"], "weight": None, "empty_border": "off"}})
    with pytest.raises(ConfigError, match="every source a weight, or none"):
        TrainingData(mixed, torch.device("cpu"))


def test_empty_frame_is_left_out_of_the_pixel_loss(tmp_path):
    from nfgan.models.losses import pixel_loss
    from nfgan.training.data import TrainingData, empty_border_mask

    face = np.full((1, 16, 16), 120, np.uint8)
    face[0, :3, :] = 0                 # a black frame along the top ...
    face[0, 8, 8] = 0                  # ... and a black pixel inside the face, which counts
    m = empty_border_mask(face)[0]
    assert not m[:3].any() and m[3:].sum() == 13 * 16
    a = make_prepared(tmp_path / "a", subjects=4)
    faces = np.load(a / "faces.npy")
    faces[:, :, :5] = 0                # every face gets an empty frame on the left
    np.save(a / "faces.npy", faces)
    cfg = tiny_config(a, batch_size=8)
    plain = TrainingData(cfg, torch.device("cpu"))
    assert plain.sample(8, torch.Generator().manual_seed(0)).y_mask is None   # empty_border: off
    cfg["data"]["root"] = cfg["data"]["splits"] = None
    cfg["data"]["sources"] = {"a": {"root": str(a), "splits": str(a / "splits.json"), "weight": None,
                                    "empty_border": "auto"}}
    d = TrainingData(cfg, torch.device("cpu"))
    b = d.sample(8, torch.Generator().manual_seed(0))
    assert b.y_mask is not None and float(b.y_mask[..., :5].max()) == 0.0 and float(b.y_mask[..., 5:].min()) == 1.0
    fake = torch.full_like(b.y, 0.5)
    changed = b.y.clone()
    changed[..., :5] = 1.0             # what the target shows in its frame does not matter
    assert torch.equal(pixel_loss(fake, b.y, b.y_mask), pixel_loss(fake, changed, b.y_mask))
    assert not torch.equal(pixel_loss(fake, b.y), pixel_loss(fake, changed))


def test_photometric_augmentation_changes_inputs_only(tmp_path):
    from nfgan.data.photometric import photometric_augment, photometric_params
    from nfgan.training.data import TrainingData

    a = make_prepared(tmp_path / "a", subjects=4)
    cfg = tiny_config(a, batch_size=16)
    off = TrainingData(cfg, torch.device("cpu")).sample(16, torch.Generator().manual_seed(0))
    cfg["data"]["photometric"]["p"] = 0.6
    d = TrainingData(cfg, torch.device("cpu"))
    on = d.sample(16, torch.Generator().manual_seed(0))
    again = d.sample(16, torch.Generator().manual_seed(0))
    assert np.array_equal(on.x_rows, off.x_rows) and torch.equal(on.y, off.y) and torch.equal(on.g, off.g)
    differs = (on.x - off.x).abs().amax(dim=(1, 2, 3)) > 0
    assert 8 <= int(differs.sum()) <= 16
    assert torch.equal(on.x, again.x)                  # reproducible from the sampler's state
    parts = [d.sample(16, torch.Generator().manual_seed(0), (r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p.x for p in parts]), on.x)      # a face keeps its settings on any process
    # each step does what it says
    face = np.asarray(np.random.default_rng(0).integers(60, 200, (1, 32, 32)), np.uint8)
    ident = {"contrast": [1.0], "brightness": [0.0], "gamma": [1.0], "blur": [0.0], "noise": [0.0],
             "noise_seed": [0], "jpeg": [0]}
    assert np.array_equal(photometric_augment(face, {k: np.asarray(v) for k, v in ident.items()}), face)
    low = photometric_augment(face, {**{k: np.asarray(v) for k, v in ident.items()}, "contrast": np.asarray([0.5])})
    assert low.std() == pytest.approx(face.std() * 0.5, rel=0.05)
    blur = photometric_augment(face, {**{k: np.asarray(v) for k, v in ident.items()}, "blur": np.asarray([1.5])})
    assert np.abs(np.diff(blur.astype(float), axis=1)).mean() < 0.5 * np.abs(np.diff(face.astype(float), axis=1)).mean()
    p = photometric_params(1000, np.random.default_rng(0), {**cfg["data"]["photometric"], "p": 0.25})
    assert np.mean(p["contrast"] != 1.0) == pytest.approx(0.25, abs=0.05)


def test_framing_jitter_moves_inputs_only_and_puts_points_where_its_matrix_says(tmp_path):
    from nfgan.data.framing_jitter import framing_augment, framing_matrix, framing_params
    from nfgan.training.data import TrainingData

    a = make_prepared(tmp_path / "a", subjects=4)
    cfg = tiny_config(a, batch_size=16)
    cfg["data"]["photometric"]["p"] = 0.5
    off = TrainingData(cfg, torch.device("cpu")).sample(16, torch.Generator().manual_seed(0))
    cfg["data"]["framing_jitter"]["p"] = 0.6
    d = TrainingData(cfg, torch.device("cpu"))
    on = d.sample(16, torch.Generator().manual_seed(0))
    assert np.array_equal(on.x_rows, off.x_rows) and torch.equal(on.y, off.y) and torch.equal(on.g, off.g)
    differs = (on.x - off.x).abs().amax(dim=(1, 2, 3)) > 0
    assert 6 <= int(differs.sum()) <= 16
    assert torch.equal(on.x[~differs], off.x[~differs])   # a face not jittered keeps its photometric settings
    assert torch.equal(d.sample(16, torch.Generator().manual_seed(0)).x, on.x)
    parts = [d.sample(16, torch.Generator().manual_seed(0), (r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p.x for p in parts]), on.x)
    # a bright dot goes where the matrix sends it: scaled about the centre, then shifted
    face = np.zeros((1, 33, 33), np.uint8)
    face[0, 8, 24] = 255                        # (x, y) = (24, 8): 8 right of and 8 above the centre (16, 16)
    params = {"scale": np.array([1.25]), "angle": np.array([0.0]), "dx": np.array([2 / 33]), "dy": np.array([0.0])}
    out = framing_augment(face, params)
    y, x = np.unravel_index(out[0].argmax(), out[0].shape)
    assert (x, y) == (28, 6)                    # 16 + 1.25 * 8 + 2, 16 - 1.25 * 8
    assert np.allclose(framing_matrix(33, 1.25, 0.0, 2 / 33, 0.0) @ [24, 8, 1], [28, 6])
    turned = framing_matrix(33, 1.0, 90.0, 0.0, 0.0) @ [24, 16, 1]
    assert np.allclose(turned, [16, 24])        # a quarter turn about the centre
    ident = {"scale": np.ones(1), "angle": np.zeros(1), "dx": np.zeros(1), "dy": np.zeros(1)}
    assert np.array_equal(framing_augment(face, ident), face)
    p = framing_params(2000, np.random.default_rng(0), {"p": 0.25, "scale": [0.9, 1.1], "rotate_deg": 4.0,
                                                        "shift": 0.03})
    jittered = p["scale"] != 1.0
    assert np.mean(jittered) == pytest.approx(0.25, abs=0.03)
    assert p["scale"].min() >= 0.9 and p["scale"].max() <= 1.1 and np.abs(p["angle"]).max() <= 4.0
    assert np.abs(p["dx"]).max() <= 0.03 and not p["angle"][~jittered].any()
    with pytest.raises(ConfigError, match="framing_jitter.scale"):
        load_config(overrides={"model": {"type": "pix2pix"}, "data": {"root": str(a), "splits": str(a / "splits.json"),
                                                                       "framing_jitter": {"scale": [1.1, 0.9]}}})


def test_frontalised_rows_made_when_read_equal_the_cached_ones(tmp_path, monkeypatch):
    import nfgan.training.data as td
    from test_frontalize import _with_landmarks

    root, rows, _ = _with_landmarks(make_prepared(tmp_path / "d", subjects=4))
    cfg = tiny_config(root, batch_size=8)
    cfg["data"]["frontalize_inputs"] = True
    cached = td.TrainingData(cfg, torch.device("cpu"))
    assert cached.faces.front_cache is not None
    monkeypatch.setattr(td, "FRONTALIZED_CACHE_BYTES", 0)
    lazy = td.TrainingData(cfg, torch.device("cpu"))
    assert lazy.faces.front_cache is None and len(lazy.faces.front_of) > 0
    everything = np.arange(len(cached))
    assert np.array_equal(cached.read(everything), lazy.read(everything))


def test_manifest_columns_match_the_rows(tmp_path):
    from nfgan.data.dataset import PreparedDataset

    a = make_prepared(tmp_path / "a", subjects=5)
    with open(a / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ds = PreparedDataset(a)
    assert ds.records == rows and len(ds) == len(rows)
    assert ds.column("pose") == [r["pose"] for r in rows]
    want = [i for i, r in enumerate(rows) if r["subject"] in {"S01", "S03"} and r["expression"] == "neutral"]
    assert ds.indices(["S01", "S03"], expression="neutral").tolist() == want
    assert ds.indices(expression=("neutral", "happy"), pose="frontal").tolist() == \
        [i for i, r in enumerate(rows) if r["pose"] == "frontal"]
    assert ds.indices(nonexistent_column="x").tolist() == []
    groups = ds.by_subject()
    assert sorted(groups) == ds.subjects() and sum(map(len, groups.values())) == len(rows)


def test_prefetched_batches_and_checkpointed_sampler_equal_the_plain_ones(tmp_path):
    from nfgan.training.loop import Trainer

    a = make_prepared(tmp_path / "a", subjects=4)
    runs = {}
    for prefetch in (False, True):
        cfg = tiny_config(a, batch_size=8, prefetch=prefetch)
        cfg["data"]["photometric"]["p"] = 0.3
        tr = Trainer(cfg, feature_nets=tiny_nets())
        batches = [tr.sample_batch() for _ in range(3)]
        runs[prefetch] = (batches, tr.rng_state()["sampler"])
        assert (tr._ahead is not None) == prefetch       # the fourth batch is already being read
    for b0, b1 in zip(runs[False][0], runs[True][0]):
        assert np.array_equal(b0.x_rows, b1.x_rows) and torch.equal(b0.x, b1.x) and torch.equal(b0.g, b1.g)
    # the checkpointed sampler state is the one after the batches used, not after the one drawn ahead
    assert torch.equal(runs[False][1], runs[True][1])


def test_reframing_moves_faces_and_landmarks_alike():
    """nfgan evaluate --degrade scale=.../rotate=.../shift_x=...: every face warped by the one similarity, its
    landmarks moved by the same map (a dot and its landmark stay together); steps that change nothing copy."""
    from nfgan.data.framing_jitter import reframe
    from nfgan.data.photometric import parse_degradation

    assert parse_degradation("scale=1.1,rotate=-5,shift_x=0.05,blur=1") == {"scale": 1.1, "rotate": -5.0,
                                                                          "shift_x": 0.05, "blur": 1.0}
    for bad, msg in (("scale=0", "scale must be"), ("scale=3", "scale must be"), ("rotate=90", "rotate must be"),
                     ("shift_y=0.8", "shift_y must be"), ("zoom=2", "STEP=VALUE")):
        with pytest.raises(ValueError, match=msg):
            parse_degradation(bad)
    faces = np.zeros((2, 33, 33), np.uint8)
    faces[0, 8, 24] = 255                       # (x, y) = (24, 8)
    faces[1, 20, 10] = 255                      # (10, 20)
    lm = np.array([[[24.0, 8.0], [np.nan, np.nan]], [[10.0, 20.0], [16.0, 16.0]]])
    out, moved = reframe(faces, lm, {"scale": 1.25, "shift_x": 2 / 33, "blur": 3.0})
    for i in range(2):
        y, x = np.unravel_index(out[i].argmax(), out[i].shape)
        assert np.allclose(moved[i, 0], [x, y], atol=0.5)
    assert np.allclose(moved[0, 0], [28, 6]) and np.isnan(moved[0, 1]).all() and np.allclose(moved[1, 1], [18, 16])
    turned, tl = reframe(faces, lm, {"rotate": 90.0})
    assert np.allclose(tl[0, 0], [24, 24])      # 8 above the centre -> 8 right of it: clockwise on screen
    same, sl = reframe(faces, lm, {"blur": 2.0})
    assert np.array_equal(same, faces) and same is not faces and np.array_equal(sl, lm, equal_nan=True)
    none_out, none_lm = reframe(faces, None, {"scale": 0.8})
    assert none_lm is None and not np.array_equal(none_out, faces)
    assert np.array_equal(reframe(faces, lm, {"blur": 1.0, "jpeg": 20.0})[0], faces)   # photometric keys ignored


def test_fixed_degradations_parse_strictly_and_apply_the_same_steps_to_every_face():
    from nfgan.data.photometric import degrade, parse_degradation

    assert parse_degradation("contrast=0.6, jpeg=25") == {"contrast": 0.6, "jpeg": 25.0}
    for bad, msg in (("sharpen=2", "STEP=VALUE"), ("blur", "STEP=VALUE"), ("blur=x", "not a number"),
                     ("contrast=0", "contrast must be"), ("jpeg=10.5", "jpeg must be"), ("noise=nan", "noise must be"),
                     ("blur=1,blur=2", "given twice"), (" , ", "no step"),
                     ("brightness=300", r"brightness must be a shift in grey levels, -255\.\.255"),
                     ("gamma=-1", "gamma must be an exponent > 0")):
        with pytest.raises(ValueError, match=msg):
            parse_degradation(bad)
    from nfgan.data.framing_jitter import REFRAMING_STEPS
    from nfgan.data.photometric import DEGRADATION_STEPS

    for key, (none, _, _) in {**DEGRADATION_STEPS, **REFRAMING_STEPS}.items():   # "no change" is always allowed
        assert parse_degradation(f"{key}={none}") == {key: float(none)}
    faces = np.asarray(np.random.default_rng(1).integers(40, 220, (5, 32, 32)), np.uint8)
    assert np.array_equal(degrade(faces, {"contrast": 1.0, "gamma": 1.0, "blur": 0.0}), faces)
    low = degrade(faces, {"contrast": 0.5})
    assert np.allclose(low.reshape(5, -1).std(1), faces.reshape(5, -1).std(1) * 0.5, rtol=0.05)
    noisy = degrade(faces, {"noise": 8.0}, seed=3)
    assert np.array_equal(noisy, degrade(faces, {"noise": 8.0}, seed=3))
    assert np.array_equal(noisy[2:], degrade(faces[2:], {"noise": 8.0}, seed=5))   # face i's noise: seed + i
    assert 4 < np.abs(noisy.astype(float) - faces).mean() < 10
    jpeg = degrade(faces, {"jpeg": 10})
    assert jpeg.dtype == np.uint8 and jpeg.shape == faces.shape and not np.array_equal(jpeg, faces)
