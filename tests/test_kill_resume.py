"""kill -9 in the middle of `nfgan prepare`, `nfgan train` and `nfgan fer cv`, then the same command again (or
`--resume`): the finished result is bit-identical to an uninterrupted run, and nothing half-written is left."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

from conftest import REPO, kill_when, logged_losses, make_prepared, start_nfgan, tiny_config, tiny_train_cli

NFGAN = [sys.executable, "-m", "nfgan"]


def _ok(argv: list[str], codes: tuple[int, ...] = (0,)) -> None:
    proc = start_nfgan(argv)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode in codes, err.decode(errors="replace")[-2000:]


def _same_tree(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and not p.name.startswith(skip))
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and not p.name.startswith(skip))
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _killed_and_resumed(tmp_path: Path, base: list[str], name: str) -> list[dict]:
    """Start ``nfgan train`` as run NAME, kill -9 it once its step-4 checkpoint exists, resume it to the end;
    its logged losses."""
    proc = start_nfgan(base + ["--name", name])
    ckpts = tmp_path / name / "checkpoints"
    assert kill_when(proc, lambda: (ckpts / "step_00000004.safetensors").exists())
    _ok(["train", "--resume", str(tmp_path / name), "--quiet"])
    return logged_losses(tmp_path / name)


def test_train_killed_then_resumed_gives_the_uninterrupted_run(tmp_path):
    base = tiny_train_cli(tmp_path, steps=8, checkpoint_every=2, sample_every=4)
    _ok(base + ["--name", "full"])
    full = logged_losses(tmp_path / "full")
    cut = _killed_and_resumed(tmp_path, base, "cut")
    if cut[:4] != full[:4]:
        # steps 1-4 ran before the kill: two uninterrupted processes already disagree there, so this machine's
        # arithmetic was not repeatable this time (seen once in CI, never here), which says nothing about
        # resuming. One more pair; a resume bug would show on it too, after step 4 only.
        shutil.rmtree(tmp_path / "full")
        shutil.rmtree(tmp_path / "cut")
        _ok(base + ["--name", "full"])
        full = logged_losses(tmp_path / "full")
        cut = _killed_and_resumed(tmp_path, base, "cut")
        assert cut[:4] == full[:4], f"two uninterrupted runs differ before any kill, twice: {full[0]} vs {cut[0]}"
    assert cut == full and len(full) == 8
    from nfgan.checkpoint import load_checkpoint

    a, b = (load_checkpoint(tmp_path / run) for run in ("full", "cut"))
    assert a["step"] == b["step"] == 8
    for name in a["nets"]:
        for k, v in a["nets"][name].items():
            assert np.array_equal(v.numpy(), b["nets"][name][k].numpy()), (name, k)
    assert not list((tmp_path / "cut").rglob("*.tmp"))


def test_prepare_killed_then_rerun_gives_the_uninterrupted_folder(tmp_path):
    src = tmp_path / "photos"
    shutil.copytree(REPO / "examples" / "london", src)
    args = ["prepare", "csv", str(src / "manifest.csv")]
    done = (0, 1)   # 1: some photos have no usable face (the profiles), reported like in the full run
    _ok(args + [str(tmp_path / "full")], done)
    proc = start_nfgan(args + [str(tmp_path / "cut")])
    journal = tmp_path / "cut" / ".prepare_journal.jsonl"
    killed = kill_when(proc, lambda: journal.exists() and journal.read_text().count("\n") >= 4)
    assert killed
    _ok(args + [str(tmp_path / "cut")], done)
    # every face, the manifest, the packed arrays and the report are byte-identical (the meta file holds times)
    _same_tree(tmp_path / "full", tmp_path / "cut", skip=(".prepare_journal", "prepare_meta"))


def test_fer_cv_killed_then_rerun_gives_the_uninterrupted_folds(tiny, tmp_path):
    data, folds = tiny
    args = ["fer", "cv", "--data", str(data), "--folds", str(folds), "--variant", "2b", "--epochs", "2",
            "--threads", "1"]
    _ok(args + ["--out", str(tmp_path / "full")])
    proc = start_nfgan(args + ["--out", str(tmp_path / "cut")])
    assert kill_when(proc, lambda: (tmp_path / "cut" / "folds" / "fold_00.json").exists())
    assert not (tmp_path / "cut" / "summary.json").exists() or not json.loads(
        (tmp_path / "cut" / "summary.json").read_text())["complete"]
    _ok(args + ["--out", str(tmp_path / "cut")])
    for k in range(3):
        a, b = (json.loads((tmp_path / r / "folds" / f"fold_{k:02d}.json").read_text()) for r in ("full", "cut"))
        for key in a:
            if key not in ("cpu_seconds", "seconds"):
                assert a[key] == b[key], (k, key)
    s = [json.loads((tmp_path / r / "summary.json").read_text()) for r in ("full", "cut")]
    assert s[0]["mean_accuracy"] == s[1]["mean_accuracy"] and s[1]["complete"]


def test_train_killed_before_its_first_checkpoint_resumes(tmp_path):
    root = make_prepared(tmp_path / "data", subjects=4)
    cfg = tiny_config(root, steps=6)
    cfg["log"].update(checkpoint_every=6, sample_every=6)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    base = ["--set", "loss.feat=0", "--set", "loss.id=0", "--quiet"]
    proc = start_nfgan(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path), "--name", "r", *base])
    metrics = tmp_path / "r" / "metrics.jsonl"
    assert kill_when(proc, lambda: metrics.exists() and metrics.read_text().count("\n") >= 2)
    assert not list((tmp_path / "r" / "checkpoints").glob("*.safetensors"))
    _ok(["train", "--resume", str(tmp_path / "r"), *base])
    assert [json.loads(ln)["step"] for ln in metrics.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
