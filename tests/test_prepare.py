"""`nfgan prepare` (nfgan.data.prepare): output format, report, resume after a killed run, options, workers, CLI."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from nfgan import cli
from nfgan.data.dataset import MANIFEST_COLUMNS, PreparedDataset
from nfgan.data.prepare import JOURNAL, PrepareError, face_id, prepare_dataset
from nfgan.data.schema import FaceRecord

DATA = Path(__file__).parent / "data"
PHOTOS = {"front": ("frontal", DATA / "london_001_front.jpg"),
          "left34": ("left_3quarter", DATA / "london_001_left34.jpg"),
          "right34": ("right_3quarter", DATA / "london_001_right34.jpg")}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _make_source(root: Path, copies: int = 1, scale: int = 1) -> Path:
    """A csv-adapter dataset: each test photo in ``copies`` brightness variants (distinct files)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,subject,expression,pose"]
    for k in range(copies):
        for name, (pose, path) in PHOTOS.items():
            img = Image.open(path).convert("RGB")
            if scale != 1:
                img = img.resize((img.width * scale, img.height * scale), Image.BICUBIC)
            img = ImageEnhance.Brightness(img).enhance(0.8 + 0.4 * k / max(1, copies - 1))
            rel = f"img/{name}_{k:02d}.jpg"
            (root / rel).parent.mkdir(exist_ok=True)
            img.save(root / rel, quality=92)
            lines.append(f"{rel},p{k % 3},neutral,{pose}")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)).save(root / "img/noise.png")
    lines.append("img/noise.png,p0,happy,frontal")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def _records(src: Path) -> list[FaceRecord]:
    from nfgan.data import adapters
    return adapters.load("csv", src)


def test_output_format_and_report(tmp_path):
    src = _make_source(tmp_path / "src")
    out = tmp_path / "out"
    res = prepare_dataset(_records(src), out, workers=1, progress=False, src_root=src)
    assert (res.total, res.aligned, res.failed) == (4, 3, 1)
    rows = _read_csv(out / "manifest.csv")
    assert list(rows[0])[: len(MANIFEST_COLUMNS)] == list(MANIFEST_COLUMNS)
    assert [Path(r["source_path"]).name for r in rows] == ["front_00.jpg", "left34_00.jpg", "right34_00.jpg"]
    by_pose = {r["pose"]: r for r in rows}
    assert by_pose["left_3quarter"]["flipped"] == "1" and by_pose["right_3quarter"]["flipped"] == "0"
    assert float(by_pose["left_3quarter"]["yaw_deg"]) < -20 < 20 < float(by_pose["right_3quarter"]["yaw_deg"])
    ds = PreparedDataset(out)
    assert ds.images.shape == (3, 64, 64) and ds.landmarks.shape == (3, 68, 2)
    for i, r in enumerate(rows):
        assert (np.asarray(Image.open(out / r["path"])) == ds.images[i]).all()
        assert r["id"] == face_id(r["source_path"], src)
    report = _read_csv(out / "prepare_report.csv")
    assert [(Path(r["source_path"]).name, r["reason"]) for r in report] == [("noise.png", "no face")]
    meta = json.loads((out / "prepare_meta.json").read_text())
    assert meta["counts"]["aligned"] == 3 and meta["counts"]["reasons"] == {"no face": 1}
    assert meta["options"]["size"] == 64
    t = ds.tensor([0, 1])
    assert tuple(t.shape) == (2, 1, 64, 64) and -1.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_resume_after_killed_run(tmp_path):
    src = _make_source(tmp_path / "src", copies=12, scale=2)     # 37 photos of 512 px
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "nfgan", "prepare", "csv", str(src), str(out), "--workers", "1",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / JOURNAL
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 6:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = journal.read_text().count("\n") - 1
    assert 5 <= done_before < 37
    assert not (out / "manifest.csv").exists()
    with open(journal, "a") as f:                       # a line torn by the crash
        f.write('{"id": "front_00-')
    assert cli.main(["prepare", "csv", str(src), str(out), "--workers", "1", "--quiet"]) == 0
    lines = [json.loads(x) for x in journal.read_text().splitlines()[1:] if x.startswith('{"id":"')]
    ids = [e["id"] for e in lines]
    assert len(ids) == len(set(ids)) == 37              # finished photos were not redone
    rows = _read_csv(out / "manifest.csv")
    assert len(rows) == len({r["id"] for r in rows}) == 36
    clean = tmp_path / "clean"
    prepare_dataset(_records(src), clean, workers=1, progress=False, src_root=src)
    assert _read_csv(clean / "manifest.csv") == rows
    assert (np.load(clean / "faces.npy") == np.load(out / "faces.npy")).all()
    assert _read_csv(clean / "prepare_report.csv") == _read_csv(out / "prepare_report.csv")
    # a third run has nothing to do and changes nothing
    again = prepare_dataset(_records(src), out, workers=1, progress=False, src_root=src)
    assert again.skipped_existing == 37 and _read_csv(out / "manifest.csv") == rows


def test_limit_then_finish(tmp_path):
    src = _make_source(tmp_path / "src")
    out = tmp_path / "out"
    first = prepare_dataset(_records(src), out, workers=1, progress=False, src_root=src, limit=2)
    assert first.aligned + first.failed == 2
    assert len(_read_csv(out / "manifest.csv")) == first.aligned
    second = prepare_dataset(_records(src), out, workers=1, progress=False, src_root=src)
    assert second.skipped_existing == 2 and (second.aligned, second.failed) == (3, 1)


def test_other_options_refuse_to_resume(tmp_path):
    src = _make_source(tmp_path / "src")
    out = tmp_path / "out"
    prepare_dataset(_records(src), out, workers=1, progress=False, src_root=src, limit=1)
    with pytest.raises(PrepareError, match="size: 64 -> 128"):
        prepare_dataset(_records(src), out, size=128, workers=1, progress=False, src_root=src)
    res = prepare_dataset(_records(src), out, size=128, workers=1, progress=False, src_root=src, overwrite=True)
    assert res.aligned == 3 and PreparedDataset(out).images.shape == (3, 128, 128)


def test_two_workers_match_one(tmp_path):
    src = _make_source(tmp_path / "src", copies=2)
    one = prepare_dataset(_records(src), tmp_path / "one", workers=1, progress=False, src_root=src)
    two = prepare_dataset(_records(src), tmp_path / "two", workers=2, progress=False, src_root=src)
    assert (one.aligned, one.failed) == (two.aligned, two.failed) == (6, 1)
    assert _read_csv(tmp_path / "one" / "manifest.csv") == _read_csv(tmp_path / "two" / "manifest.csv")
    assert (np.load(tmp_path / "one" / "faces.npy") == np.load(tmp_path / "two" / "faces.npy")).all()


def test_retry_failed_and_duplicates(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "later.jpg").write_bytes(b"")
    recs = [FaceRecord(str(src / "later.jpg"), "a", "neutral"),
            FaceRecord(str(DATA / "london_001_front.jpg"), "b", "neutral"),
            FaceRecord(str(DATA / "london_001_front.jpg"), "b", "neutral")]
    out = tmp_path / "out"
    res = prepare_dataset(recs, out, workers=1, progress=False, src_root=tmp_path)
    assert res.reasons == {"duplicate record": 1, "empty file": 1} and res.aligned == 1
    (src / "later.jpg").write_bytes((DATA / "london_001_right34.jpg").read_bytes())
    assert prepare_dataset(recs, out, workers=1, progress=False, src_root=tmp_path).reasons["empty file"] == 1
    res = prepare_dataset(recs, out, workers=1, progress=False, src_root=tmp_path, retry_failed=True)
    assert res.aligned == 2 and res.reasons == {"duplicate record": 1}


def test_precropped_flag_from_adapter(tmp_path):
    from nfgan.data.align import FaceAligner

    img = Image.open(DATA / "london_001_front.jpg").convert("L")
    lm = FaceAligner(size=64).align(img).source_landmarks()
    crop = img.crop((int(lm[:, 0].min()), int(lm[17:27, 1].min()), int(lm[:, 0].max()), int(lm[:, 1].max())))
    crop.resize((48, 48), Image.LANCZOS).save(tmp_path / "ck.png")
    Image.fromarray(np.full((48, 48), 90, np.uint8)).save(tmp_path / "flat.png")
    recs = [FaceRecord(str(tmp_path / n), "s", "happy", extra={"precropped": True, "sequence": "q1"})
            for n in ("ck.png", "flat.png")]
    res = prepare_dataset(recs, tmp_path / "out", workers=1, progress=False)
    assert res.methods == {"landmarks": 1, "resize": 1}
    rows = _read_csv(tmp_path / "out" / "manifest.csv")
    assert [r["method"] for r in rows] == ["landmarks", "resize"] and rows[0]["sequence"] == "q1"
    assert "precropped" not in rows[0]
    lms = np.load(tmp_path / "out" / "landmarks.npy")
    assert np.isfinite(lms[0]).all() and np.isnan(lms[1]).all()
    off = prepare_dataset(recs, tmp_path / "off", workers=1, progress=False, precropped="off")
    assert off.reasons == {"no face": 1} and off.methods == {"landmarks": 1}   # no resize fallback when off


def test_cli_errors_and_summary(tmp_path, capsys):
    src = _make_source(tmp_path / "src")
    assert cli.main(["prepare", "no_such_dataset", str(src), str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert cli.main(["prepare", "csv", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    (tmp_path / "afile").write_text("x")
    assert cli.main(["prepare", "csv", str(src), str(tmp_path / "afile")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert cli.main(["prepare", "csv", str(src), str(tmp_path / "o"), "--quiet", "--size", "48"]) == 0
    out = capsys.readouterr().out
    assert "prepared 3/4 faces (75.0%)" in out and "no face: 1" in out and "prepare_report.csv" in out
    assert PreparedDataset(tmp_path / "o").size == 48
