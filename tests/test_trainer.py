"""Trainer: run folder contents, exact resume, NaN/Inf guard, fast path vs plain losses, config errors.
(The generated dataset and the tiny auxiliary nets come from conftest.py.)"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import EXPRESSIONS, POSES, make_prepared, tiny_config, tiny_nets
from nfgan.checkpoint import load_checkpoint
from nfgan.config import ConfigError
from nfgan.data.pairs import save_splits
from nfgan.models.nfgan import plain_losses
from nfgan.pixels import to_unit_batch as to_unit
from nfgan.rundir import latest_checkpoint
from nfgan.training.config import load_config
from nfgan.training.loop import NonFiniteLossError, Trainer, train

@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def _losses(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_has_everything(prepared, tmp_path):
    cfg = tiny_config(prepared)
    summary = train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    run = tmp_path / "run"
    assert summary["step"] == 4
    assert yaml.safe_load((run / "config.yaml").read_text()) == cfg
    recs = _losses(run)
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    for r in recs:
        for k in ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis", "time"):
            assert np.isfinite(r[k])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step_00000002.png", "step_00000004.png"]
    grid = np.asarray(Image.open(grids[-1]))
    assert grid.shape == (3 * 66 + 2, 3 * 66 + 2)  # 3 examples x (input | output | target)
    ck = load_checkpoint(latest_checkpoint(run))
    assert ck["step"] == 4 and set(ck["nets"]) == {"enc", "dec", "dis"}
    assert ck["model"]["latent_dim"] == 256
    assert not list(run.rglob("*.tmp"))
    # the subjects whose faces trained it are recorded, and the FER leak guard reads them from the run
    from nfgan.fer.augment import recorded_train_subjects
    from nfgan.data.pairs import load_splits

    train_subjects = sorted(load_splits(Path(cfg["data"]["splits"]))["train"])
    assert ck["extra"]["train_subjects"] == train_subjects
    assert recorded_train_subjects(run) == train_subjects


@pytest.mark.slow
def test_training_reduces_pixel_loss(prepared, tmp_path):
    """30 real steps (about 30 s on 2 free cores): the outputs move towards the targets."""
    cfg = tiny_config(prepared, steps=30, batch_size=8)
    cfg["optim"]["enc"]["lr"] = cfg["optim"]["dec"]["lr"] = 1e-3
    cfg["log"].update(sample_every=100, checkpoint_every=100)
    train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    pix = [r["pixel"] for r in _losses(tmp_path / "run")]
    assert np.mean(pix[-5:]) < 0.7 * np.mean(pix[:5])


def test_resume_continues_exactly(prepared, tmp_path):
    cfg = tiny_config(prepared, steps=4)
    train(cfg, tmp_path / "full", progress=False, feature_nets=tiny_nets())
    full = _losses(tmp_path / "full")

    half = dict(cfg, train={**cfg["train"], "steps": 2})
    train(half, tmp_path / "resumed", progress=False, feature_nets=tiny_nets())
    # a crash after the checkpoint leaves extra metric lines; resume must drop them
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "pixel": -1.0}) + "\n")
    train(cfg, tmp_path / "resumed", resume=True, progress=False, feature_nets=tiny_nets())
    resumed = _losses(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(full, resumed):
        for k in ("feat", "id", "pixel", "sym", "gan_dec", "gan_dis"):
            assert a[k] == b[k], (a["step"], k)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(prepared, tmp_path):
    cfg = tiny_config(prepared, steps=20)
    cfg["log"]["checkpoint_every"] = 1
    for name in ("enc", "dec", "dis"):
        cfg["optim"][name]["lr"] = 1e30
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, tmp_path / "run", progress=False, feature_nets=tiny_nets())
    msg = str(err.value)
    assert "not finite at step" in msg and "last good checkpoint" in msg
    failed_step = int(msg.split("at step ")[1].split()[0])
    assert (tmp_path / "run" / "FAILED.txt").read_text().strip() == msg
    ck = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert ck["step"] == failed_step - 1


def test_fast_path_matches_plain_losses(prepared):
    """bf16 + channels_last + cached features give the plain fp32 losses within bf16 tolerance."""
    results = {}
    for fast in (False, True):
        cfg = tiny_config(prepared, bf16=fast, channels_last=fast)
        tr = Trainer(cfg, feature_nets=tiny_nets())
        b = tr.sample_batch()
        got = tr.model.compute_losses(b)
        x, y, g = (to_unit(tr.data.read(r)) for r in (b.x_rows, b.y_rows, b.g_rows))
        f = tr.model.features
        ref = plain_losses(tr.model.nets, f.perceptual, f.identity, x, y, g, tr.model.weights)
        results[fast] = (got, ref)
    got32, ref32 = results[False]
    for k in ref32:  # fp32 with caches: same numbers up to float rounding
        assert float(got32[k].detach()) == pytest.approx(float(ref32[k].detach()), rel=1e-4, abs=1e-6), k
    gotbf, refbf = results[True]
    for k in refbf:
        assert float(gotbf[k].detach()) == pytest.approx(float(refbf[k].detach()), rel=0.05, abs=2e-3), k


def test_config_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  pixle: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*loss\.pixle"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_subjects_without_target_are_reported(tmp_path):
    root = make_prepared(tmp_path / "p", subjects=5, skip_targets=("S01",))
    save_splits(root / "splits.json", {"train": ["S00", "S01", "S02", "S03"], "val": ["S04"], "test": []})
    with pytest.warns(UserWarning, match="S01"):
        train(tiny_config(root, steps=1), tmp_path / "run", progress=False, feature_nets=tiny_nets())
    assert (tmp_path / "run" / "subjects_without_target.txt").read_text().split() == ["S01"]


def test_cli_train_and_resume(prepared, tmp_path):
    from nfgan.cli import main

    cfg = tiny_config(prepared, steps=5)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    # the command line has no tiny nets: switch L_feat and L_id off with --set (also shows --set works)
    off = ["--set", "loss.feat=0", "--set", "loss.id=0"]
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"), "--name", "r",
                 "--steps", "2", *off, "--quiet"]) == 0
    saved = yaml.safe_load((tmp_path / "runs" / "r" / "config.yaml").read_text())
    assert saved["train"]["steps"] == 2 and saved["loss"]["feat"] == 0 and saved["loss"]["id"] == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "r"), "--steps", "3", "--quiet"]) == 0
    assert [r["step"] for r in _losses(tmp_path / "runs" / "r")] == [1, 2, 3]
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--quiet"]) == 1
    for bad_name in ("../escape", "/abs/run", "a/b", ".."):   # a run folder is one name inside --out
        assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"),
                     "--name", bad_name, *off, "--quiet"]) == 2
    assert not (tmp_path / "escape").exists()


def test_shared_dlib_trunk_equals_separate_nets_and_plain_losses(tmp_path):
    """With the default dlib auxiliary nets the trainer runs one trunk pass on x~; the losses equal those of
    the two separate nets run plainly (fp32 exactly up to rounding, bf16 within its tolerance)."""
    from nfgan.models.feature_losses import SharedTrunk

    root = make_prepared(tmp_path / "p", subjects=4, poses=("frontal", "right_3quarter"))
    for bf16 in (False, True):
        cfg = load_config(overrides={"data": {"root": str(root), "splits": str(root / "splits.json")},
                                     "train": {"batch_size": 4, "bf16": bf16, "channels_last": bf16}})
        tr = Trainer(cfg)
        f = tr.model.features
        assert isinstance(f.shared_trunk, SharedTrunk)
        b = tr.sample_batch()
        with torch.no_grad():
            got = tr.model.compute_losses(b)
            x, y, g = (to_unit(tr.data.read(r)) for r in (b.x_rows, b.y_rows, b.g_rows))
            for n in tr.model.nets.values():
                n.to(memory_format=torch.contiguous_format)
            ref = plain_losses(tr.model.nets, f.perceptual, f.identity, x, y, g, tr.model.weights)
        tol = dict(rel=0.05, abs=2e-3) if bf16 else dict(rel=1e-4, abs=1e-6)
        for k in ref:
            assert float(got[k]) == pytest.approx(float(ref[k]), **tol), (bf16, k)
        assert float(ref["feat"]) > 0 and float(ref["id"]) > 0


def test_pairs_targets_guides_and_splits(prepared):
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.pairs import SplitError, build_pairs, check_splits, load_splits

    ds = PreparedDataset(prepared)
    splits = load_splits(prepared / "splits.json")
    pairs = build_pairs(ds, splits["train"])
    recs = ds.records
    assert len(pairs) == len(splits["train"]) * len(POSES) * len(EXPRESSIONS)
    for i, choices in zip(pairs.inputs, pairs.target_choices):
        assert recs[i]["subject"] in splits["train"]
        for t in choices:
            assert recs[t]["subject"] == recs[i]["subject"]
            assert (recs[t]["pose"], recs[t]["expression"]) == ("frontal", "neutral")
    assert sorted(recs[g]["subject"] for g in pairs.guides) == sorted(splits["train"])
    xs, ys = pairs.sample(50, torch.Generator().manual_seed(3))
    assert all(recs[x]["subject"] == recs[y]["subject"] for x, y in zip(xs, ys))
    only_3q = build_pairs(ds, splits["train"], input_poses=["left_3quarter", "right_3quarter"])
    assert {recs[i]["pose"] for i in only_3q.inputs} == {"left_3quarter", "right_3quarter"}
    with pytest.raises(SplitError, match="'S01' is in both 'train' and 'test'"):
        check_splits({"train": ["S00", "S01"], "val": [], "test": ["S01"]})


def test_mirror_pairs_add_mirrored_frontal_pairs_only(prepared, tmp_path):
    from nfgan.training.data import TrainingData

    cfg = tiny_config(prepared)
    cfg["data"]["flip_left_poses"] = False          # mirror_pairs makes its own mirror rows
    cpu = torch.device("cpu")
    plain = TrainingData(cfg, cpu)
    cfg["data"]["mirror_pairs"] = True
    tr = TrainingData(cfg, cpu)
    n = len(tr.sources[0].dataset)
    assert len(tr) == 2 * n
    assert np.array_equal(tr.read(np.arange(n, 2 * n)), tr.read(np.arange(n))[..., ::-1])
    poses = tr.sources[0].dataset.column("pose")
    base = len(plain.train)
    frontal = [j for j, i in enumerate(plain.train.inputs) if poses[i] == "frontal"]
    assert 0 < len(frontal) < base
    assert len(tr.train) == base + len(frontal)
    assert np.array_equal(tr.train.inputs[:base], plain.train.inputs)
    assert np.array_equal(tr.train.inputs[base:], plain.train.inputs[frontal] + n)
    for j, k in enumerate(frontal):   # each mirrored input is paired with its own subject's mirrored targets
        assert np.array_equal(tr.train.target_choices[base + j], plain.train.target_choices[k] + n)
    assert np.array_equal(tr.train.guides, np.concatenate([plain.train.guides, plain.train.guides + n]))
    assert len(tr.val) == len(plain.val)            # validation pairs are not mirrored
    Trainer(cfg, feature_nets=tiny_nets()).train_step()
    with pytest.raises(ConfigError, match="mirror_pairs .* needs data.target_pose: frontal"):
        load_config(overrides={**cfg, "data": {**cfg["data"], "target_pose": "left_3quarter"}})


def test_committed_london_split():
    from nfgan.data.pairs import load_splits

    root = Path(__file__).resolve().parents[1]
    sp = load_splits("london")   # the shipped split, by name; raises if a subject is in two splits
    assert sp == load_splits(root / "src" / "nfgan" / "assets" / "splits" / "london.json")
    assert [len(sp[k]) for k in ("train", "val", "test")] == [70, 10, 22]
    assert len(set(sp["train"] + sp["val"] + sp["test"])) == 102


def test_london_split_covers_the_london_subjects(shared_data):
    from nfgan.data.pairs import load_splits

    with open(shared_data / "london" / "manifest.csv", newline="") as f:
        subjects = {r["subject"] for r in csv.DictReader(f)}
    sp = load_splits("london")
    assert set(sp["train"] + sp["val"] + sp["test"]) == subjects


def test_resume_falls_back_past_a_damaged_checkpoint_and_a_torn_metrics_line(prepared, tmp_path):
    """A kill can leave a torn metrics line and temp files; a disk error or tampering a bad newest checkpoint.
    Resume sets the bad checkpoint aside, continues from the previous good one and gives the same losses as an
    uninterrupted run."""
    cfg = tiny_config(prepared, steps=6)
    train(cfg, tmp_path / "full", progress=False, feature_nets=tiny_nets())
    full = _losses(tmp_path / "full")
    run = tmp_path / "hurt"
    train(dict(cfg, train={**cfg["train"], "steps": 4}), run, progress=False, feature_nets=tiny_nets())
    newest = run / "checkpoints" / "step_00000004.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])                      # damaged
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "pix')                                      # torn by a kill
    (run / "checkpoints" / ".step_00000006.safetensors.abc.tmp").write_bytes(b"half")   # an interrupted write
    with pytest.warns(UserWarning, match="step_00000004.safetensors: cannot be resumed from"):
        train(cfg, run, resume=True, progress=False, feature_nets=tiny_nets())
    resumed = _losses(run)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full, resumed):
        assert {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}
    assert (run / "checkpoints" / "step_00000004.safetensors.damaged").is_file()
    assert not list(run.rglob("*.tmp"))


def test_a_run_stopped_before_its_first_checkpoint_can_resume_or_restart(prepared, tmp_path):
    from nfgan.cli import main

    cfg = tiny_config(prepared, steps=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))    # as a kill before the first checkpoint leaves it
    (run / "metrics.jsonl").write_text('{"step": 1, "pixel": 0.5}\n')
    off = ["--set", "loss.feat=0", "--set", "loss.id=0", "--quiet"]
    with pytest.warns(UserWarning, match="no checkpoint yet"):
        assert main(["train", "--resume", str(run), *off]) == 0
    assert [r["step"] for r in _losses(run)] == [1, 2] and _losses(run)[0]["pixel"] != 0.5
    (tmp_path / "runs" / "s").mkdir()
    (tmp_path / "runs" / "s" / "config.yaml").write_text("half a conf")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"), "--name", "s",
                 *off]) == 0
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"), "--name", "s",
                 *off]) == 2                                # now it holds a checkpoint: refused, not overwritten


def test_tensorboard_keeps_the_checkpoint_steps_events_after_resume(prepared, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(prepared, steps=4)
    train(dict(cfg, train={**cfg["train"], "steps": 2}), tmp_path / "r", progress=False, feature_nets=tiny_nets())
    train(cfg, tmp_path / "r", resume=True, progress=False, feature_nets=tiny_nets())
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/pixel")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Images("samples")] == [2, 4]


def test_identity_jitter_moves_faces_within_its_bounds_and_keeps_gradients():
    """loss.id_jitter's transform: strength 0 leaves faces as they are; strength 1 moves a centred dot by at most
    the documented shift plus what rotation and scale add, differently per face; gradients reach the input."""
    from nfgan.models.feature_losses import jitter

    torch.manual_seed(0)
    x = torch.rand(8, 1, 64, 64)
    assert torch.allclose(jitter(x, 0.0), x, atol=1e-5)
    dot = torch.zeros(64, 1, 64, 64)
    dot[:, :, 30:34, 30:34] = 1.0
    moved = jitter(dot, 1.0)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    w = moved[:, 0].clamp_min(0)
    cy, cx = (w * ys).sum((1, 2)) / w.sum((1, 2)), (w * xs).sum((1, 2)) / w.sum((1, 2))
    shift = torch.stack([cy - 31.5, cx - 31.5], 1).abs()
    assert shift.max() <= 0.1 * 64 / 1.0 * 1.12 and shift.max() > 2.0      # up to ~6.4 px, and it does move
    assert len({(round(float(a), 2), round(float(b), 2)) for a, b in zip(cy, cx)}) == 64
    xg = x.clone().requires_grad_(True)
    jitter(xg, 0.5).sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0


def test_identity_jitter_changes_only_the_identity_pass(prepared):
    """With loss.id_jitter the identity net sees moved outputs (L_id changes, L_feat and the pixel loss do not);
    with 0 the losses are those of the plain path."""
    got = {}
    for s in (0.0, 1.0):
        cfg = tiny_config(prepared)
        cfg["loss"]["id_jitter"] = s
        tr = Trainer(cfg, feature_nets=tiny_nets())
        b = tr.sample_batch()
        torch.manual_seed(1)
        with torch.no_grad():
            got[s] = {k: float(v) for k, v in tr.model.compute_losses(b).items()}
    assert got[0.0]["id"] != pytest.approx(got[1.0]["id"], rel=1e-3)
    for k in ("feat", "pixel"):
        assert got[0.0][k] == pytest.approx(got[1.0][k], rel=1e-6), k
