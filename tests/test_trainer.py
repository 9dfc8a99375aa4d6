"""Trainer: run folder contents, exact resume, NaN/Inf guard, fast path vs plain losses, config errors.

Also home of the small helpers the other NFGAN test files import: ``make_prepared`` writes a tiny prepared
dataset of generated faces, ``tiny_feature_net`` is a small frozen random conv net standing in for the
auxiliary networks (so these tests do not depend on dlib weights).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nfgan.checkpoint import latest_checkpoint, load_checkpoint
from nfgan.dataset import write_pack
from nfgan.feature_nets import FeatureNet
from nfgan.pairs import make_splits, save_splits
from nfgan.trainer import (ConfigError, NFGANTrainer, NonFiniteLossError, load_config, plain_losses, to_unit,
                           train)

POSES = ("frontal", "left_3quarter", "right_3quarter")
EXPRESSIONS = ("neutral", "happy")


class TinyFeatureNet(FeatureNet):
    """Two seeded random conv stages; ``vector=True`` makes the last output a pooled vector (like an
    identity embedding)."""

    name = "tiny"

    def __init__(self, seed: int = 0, vector: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        with torch.no_grad():
            for c in (self.c1, self.c2):
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.3)
                c.bias.zero_()
        self.vector = vector
        self.freeze()

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        return [a, b.mean(dim=(2, 3))] if self.vector else [a, b]


def tiny_feature_net(seed: int = 0, vector: bool = False) -> TinyFeatureNet:
    return TinyFeatureNet(seed, vector)


def make_prepared(root: Path, subjects: int = 6, size: int = 64, seed: int = 0,
                  poses=POSES, expressions=EXPRESSIONS, skip_targets: tuple[str, ...] = ()) -> Path:
    """A prepared-dataset folder of generated 'faces': each subject a smooth random pattern; pose = a
    horizontal shift, expression 'happy' = a bright bar at the mouth. Frontal neutral faces of the subjects in
    ``skip_targets`` are left out. Writes manifest.csv, faces/*.png, faces.npy and splits.json."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "faces").mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows = []
    for s in range(subjects):
        sub = f"S{s:02d}"
        coarse = rng.normal(size=(6, 6))
        base = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((size, size), Image.BICUBIC))
        face = 0.5 + 0.25 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08) + 0.08 * base
        for pose in poses:
            shift = {"frontal": 0, "left_3quarter": -6, "right_3quarter": 6}.get(pose, 0)
            for expr in expressions:
                if sub in skip_targets and pose == "frontal" and expr == "neutral":
                    continue
                img = np.roll(face, shift, axis=1).copy()
                if expr == "happy":
                    img[int(0.72 * size):int(0.78 * size), int(0.35 * size):int(0.65 * size)] += 0.3
                u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
                fid = f"{sub}_{pose}_{expr}"
                Image.fromarray(u8).save(root / "faces" / f"{fid}.png")
                rows.append({"id": fid, "path": f"faces/{fid}.png", "subject": sub, "expression": expr,
                             "pose": pose, "yaw_deg": "", "flipped": "0", "source_path": "", "dataset": "synthetic"})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_pack(root)
    n = subjects
    save_splits(root / "splits.json", make_splits([f"S{s:02d}" for s in range(n)], counts=(n - 2, 1, 1), seed=0))
    return root


def tiny_config(data_root: Path, **train) -> dict:
    return load_config(overrides={
        "data": {"root": str(data_root), "splits": str(data_root / "splits.json")},
        "feature_nets": {"perceptual": {"factory": "test_trainer:tiny_feature_net", "seed": 1},
                         "identity": {"factory": "test_trainer:tiny_feature_net", "seed": 2, "vector": True}},
        "train": {"steps": 4, "batch_size": 4, "bf16": False, "channels_last": False, **train},
        "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "keep_checkpoints": 10, "sample_count": 3},
    })


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def _losses(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_has_everything(prepared, tmp_path):
    cfg = tiny_config(prepared)
    summary = train(cfg, tmp_path / "run", progress=False)
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
    from nfgan.pairs import load_splits

    train_subjects = sorted(load_splits(Path(cfg["data"]["splits"]))["train"])
    assert ck["extra"]["train_subjects"] == train_subjects
    assert recorded_train_subjects(run) == train_subjects


@pytest.mark.slow
def test_training_reduces_pixel_loss(prepared, tmp_path):
    """30 real steps (about 30 s on 2 free cores): the outputs move towards the targets."""
    cfg = tiny_config(prepared, steps=30, batch_size=8)
    cfg["optim"]["enc"]["lr"] = cfg["optim"]["dec"]["lr"] = 1e-3
    cfg["log"].update(sample_every=100, checkpoint_every=100)
    train(cfg, tmp_path / "run", progress=False)
    pix = [r["pixel"] for r in _losses(tmp_path / "run")]
    assert np.mean(pix[-5:]) < 0.7 * np.mean(pix[:5])


def test_resume_continues_exactly(prepared, tmp_path):
    cfg = tiny_config(prepared, steps=4)
    train(cfg, tmp_path / "full", progress=False)
    full = _losses(tmp_path / "full")

    half = dict(cfg, train={**cfg["train"], "steps": 2})
    train(half, tmp_path / "resumed", progress=False)
    # a crash after the checkpoint leaves extra metric lines; resume must drop them
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "pixel": -1.0}) + "\n")
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
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
        train(cfg, tmp_path / "run", progress=False)
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
        tr = NFGANTrainer(cfg)
        xr, yr, gr = tr.sample_batch()
        got = tr.compute_losses(xr, yr, gr)
        x, y, g = (to_unit(tr.images[torch.from_numpy(r)]) for r in (xr, yr, gr))
        ref = plain_losses(tr.nets, tr.perceptual, tr.identity, x, y, g, tr.weights)
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
        train(tiny_config(root, steps=1), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "subjects_without_target.txt").read_text().split() == ["S01"]


def test_cli_train_and_resume(prepared, tmp_path):
    from nfgan.cli import main

    cfg = tiny_config(prepared, steps=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"), "--name", "r",
                 "--quiet"]) == 0
    assert main(["train", "--resume", str(tmp_path / "runs" / "r"), "--steps", "3", "--quiet"]) == 0
    assert [r["step"] for r in _losses(tmp_path / "runs" / "r")] == [1, 2, 3]
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--quiet"]) == 1


def test_shared_dlib_trunk_equals_separate_nets_and_plain_losses(tmp_path):
    """With the default dlib auxiliary nets the trainer runs one trunk pass on x~; the losses equal those of
    the two separate nets run plainly (fp32 exactly up to rounding, bf16 within its tolerance)."""
    from nfgan.trainer import SharedTrunk

    root = make_prepared(tmp_path / "p", subjects=4, poses=("frontal", "right_3quarter"))
    for bf16 in (False, True):
        cfg = load_config(overrides={"data": {"root": str(root), "splits": str(root / "splits.json")},
                                     "train": {"batch_size": 4, "bf16": bf16, "channels_last": bf16}})
        tr = NFGANTrainer(cfg)
        assert isinstance(tr.shared_trunk, SharedTrunk)
        xr, yr, gr = tr.sample_batch()
        with torch.no_grad():
            got = tr.compute_losses(xr, yr, gr)
            x, y, g = (to_unit(tr.images[torch.from_numpy(r)]) for r in (xr, yr, gr))
            for n in tr.nets.values():
                n.to(memory_format=torch.contiguous_format)
            ref = plain_losses(tr.nets, tr.perceptual, tr.identity, x, y, g, tr.weights)
        tol = dict(rel=0.05, abs=2e-3) if bf16 else dict(rel=1e-4, abs=1e-6)
        for k in ref:
            assert float(got[k]) == pytest.approx(float(ref[k]), **tol), (bf16, k)
        assert float(ref["feat"]) > 0 and float(ref["id"]) > 0


def test_pairs_targets_guides_and_splits(prepared):
    from nfgan.dataset import PreparedDataset
    from nfgan.pairs import SplitError, build_pairs, check_splits, load_splits

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
    from nfgan.trainer import ConfigError, NFGANTrainer

    cfg = tiny_config(prepared)
    cfg["data"]["flip_left_poses"] = False          # mirror_pairs makes its own mirror rows
    plain = NFGANTrainer(cfg, tmp_path / "r0")
    cfg["data"]["mirror_pairs"] = True
    tr = NFGANTrainer(cfg, tmp_path / "r1")
    n = len(tr.dataset.records)
    assert len(tr.images) == 2 * n
    assert torch.equal(tr.images[n:], tr.images[:n].flip(-1))
    poses = tr.dataset.column("pose")
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
    tr.train_step()
    cfg["data"]["target_pose"] = "left_3quarter"    # a mirrored 3/4 target would face the other way
    with pytest.raises(ConfigError, match="mirror_pairs .* needs data.target_pose: frontal"):
        NFGANTrainer(cfg, tmp_path / "r2")


def test_committed_london_split():
    from nfgan.pairs import load_splits

    root = Path(__file__).resolve().parents[1]
    sp = load_splits(root / "configs" / "splits" / "london.json")   # raises if a subject is in two splits
    assert [len(sp[k]) for k in ("train", "val", "test")] == [70, 10, 22]
    assert len(set(sp["train"] + sp["val"] + sp["test"])) == 102


def test_london_split_covers_the_london_subjects(shared_data):
    from nfgan.pairs import load_splits

    with open(shared_data / "london" / "manifest.csv", newline="") as f:
        subjects = {r["subject"] for r in csv.DictReader(f)}
    sp = load_splits(Path(__file__).resolve().parents[1] / "configs" / "splits" / "london.json")
    assert set(sp["train"] + sp["val"] + sp["test"]) == subjects
