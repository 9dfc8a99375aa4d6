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

from conftest import in_time
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
    assert cli.main(["prepare", "csv", str(src), str(out), "--workers", "1", "--quiet"]) == 1   # noise.png: no face
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
    assert cli.main(["prepare", "csv", str(src), str(tmp_path / "o"), "--quiet", "--size", "48"]) == 1
    out = capsys.readouterr().out
    assert "prepared 3/4 faces (75.0%)" in out and "no face: 1" in out and "prepare_report.csv" in out
    assert PreparedDataset(tmp_path / "o").size == 48


# ---------------------------------------------------------------------------------------------------------
# Exit status (0 all prepared, 1 some inputs failed, 2 nothing could run), bad manifests and options


def _good_source(root: Path, names=("front", "right34")) -> Path:
    """A manifest of photos that all align."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,subject,expression,pose"]
    for name in names:
        pose, path = PHOTOS[name]
        (root / f"{name}.jpg").write_bytes(path.read_bytes())
        lines.append(f"{name}.jpg,p1,neutral,{pose}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_exit_status_all_ok_some_failed_nothing_ran(tmp_path, capsys):
    good = _good_source(tmp_path / "good")
    assert cli.main(["prepare", "csv", str(good), str(tmp_path / "o0"), "--quiet", "--workers", "1"]) == 0
    assert "prepared 2/2 faces" in capsys.readouterr().out
    mixed = _make_source(tmp_path / "mixed")                     # 3 faces + noise.png (no face)
    assert cli.main(["prepare", "csv", str(mixed), str(tmp_path / "o1"), "--quiet", "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "prepared 3/4 faces" in out and "prepare_report.csv" in out
    assert len(_read_csv(tmp_path / "o1" / "manifest.csv")) == 3  # the rest is done
    assert cli.main(["prepare", "csv", str(mixed), str(tmp_path / "o2"), "--size", "0"]) == 2
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("third_line, reason", [
    ("front.jpg,Ren\xe9,neutral,frontal\n".encode("latin-1"), "not UTF-8"),
    (b"front.jpg,p2,neutral," + b"x" * 200_000 + b"\n", "field larger than field limit"),
], ids=["latin-1", "huge field"])
def test_unreadable_manifest_is_a_clear_error(tmp_path, capsys, third_line, reason):
    src = _good_source(tmp_path / "src")
    manifest = src / "manifest.csv"
    manifest.write_bytes(manifest.read_bytes() + third_line)   # header, 2 good rows, then the bad line 4
    third = manifest.read_bytes().splitlines()
    assert len(third) == 4
    out = tmp_path / "out"
    assert cli.main(["prepare", "csv", str(manifest), str(out), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert str(manifest) in err and "line 4" in err and reason in err and "Traceback" not in err
    assert not out.exists()                                   # nothing written
    # an OUT folder prepared before is left as it was
    manifest.write_bytes(b"\n".join(third[:3]) + b"\n")
    assert cli.main(["prepare", "csv", str(manifest), str(out), "--quiet", "--workers", "1"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    manifest.write_bytes(b"\n".join(third[:3]) + b"\n" + third_line)
    assert cli.main(["prepare", "csv", str(manifest), str(out), "--quiet", "--workers", "1"]) == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_manifest_rows_that_are_folders_or_fifos_are_reported_not_fatal(tmp_path, capsys):
    src = _good_source(tmp_path / "src")
    (src / "folder.jpg").mkdir()
    rows = "folder.jpg,p2,neutral,frontal\n"
    if hasattr(os, "mkfifo"):
        os.mkfifo(src / "pipe.jpg")                       # reading it would block forever: nobody writes
        rows += "pipe.jpg,p3,neutral,frontal\n"
    with open(src / "manifest.csv", "a") as f:
        f.write(rows)
    out = tmp_path / "out"
    code = in_time(lambda: cli.main(["prepare", "csv", str(src), str(out), "--quiet", "--workers", "1"]), 120.0)
    assert code == 1
    report = {Path(r["source_path"]).name: r for r in _read_csv(out / "prepare_report.csv")}
    assert {k: v["reason"] for k, v in report.items()} == {
        "folder.jpg": "not a regular file", **({"pipe.jpg": "not a regular file"} if hasattr(os, "mkfifo") else {})}
    assert "folder" in report["folder.jpg"]["detail"]
    assert sorted(Path(r["source_path"]).name for r in _read_csv(out / "manifest.csv")) == ["front.jpg", "right34.jpg"]


@pytest.mark.parametrize("option, value, message", [
    ("--size", "-5", "--size must be a whole number from 16 to 4096, got -5"),
    ("--size", "0", "--size must be"),
    ("--size", "15", "--size must be"),
    ("--size", "100000", "--size must be"),
    ("--workers", "0", "--workers must be a whole number from 1"),
    ("--max-pixels", "-1", "--max-pixels must be a whole number at least 1"),
    ("--min-face", "0", "--min-face must be"),
    ("--limit", "-3", "--limit must be a whole number at least 0"),
], ids=["size-5", "size0", "size15", "size100000", "workers0", "max-pixels-1", "min-face0", "limit-3"])
def test_bad_numbers_are_refused_before_anything_is_written(tmp_path, capsys, option, value, message):
    src = _good_source(tmp_path / "src", names=("front",))
    out = tmp_path / "out"
    assert cli.main(["prepare", "csv", str(src), str(out), "--quiet", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
    assert cli.main(["prepare", "csv", str(src), str(out), "--quiet", "--workers", "1"]) == 0   # corrected re-run
    with pytest.raises(PrepareError, match=message.split(" must")[0]):
        prepare_dataset(_records(src), tmp_path / "api", progress=False,
                        **{option[2:].replace("-", "_"): int(value)})
    assert not (tmp_path / "api").exists()


def test_run_stopped_before_its_first_photo_does_not_block_a_corrected_run(tmp_path, capsys, monkeypatch):
    src = _good_source(tmp_path / "src", names=("front",))
    out = tmp_path / "out"
    # what an earlier version left after `--size -5`: a journal holding only its options
    out.mkdir()
    (out / JOURNAL).write_text(json.dumps({"options": {"size": -5, "detector": "hog"}}) + "\n")
    assert cli.main(["prepare", "csv", str(src), str(out), "--quiet", "--workers", "1"]) == 0
    assert PreparedDataset(out).size == 64
    torn = tmp_path / "torn"                       # killed while writing the options line
    torn.mkdir()
    (torn / JOURNAL).write_text('{"options":{"size":-')
    assert cli.main(["prepare", "csv", str(src), str(torn), "--quiet", "--workers", "1"]) == 0
    foreign = tmp_path / "foreign"                 # a file that is no journal is left alone
    foreign.mkdir()
    (foreign / JOURNAL).write_bytes(b"\xff\xfenot a journal\n")
    assert cli.main(["prepare", "csv", str(src), str(foreign), "--quiet", "--workers", "1"]) == 2
    assert "is not a prepare journal" in capsys.readouterr().err
    assert (foreign / JOURNAL).read_bytes() == b"\xff\xfenot a journal\n"
    # the aligner cannot be set up (e.g. dlib's model files missing): exit 2, and a later run is not blocked
    import nfgan.data.align as align

    class Broken:
        def __init__(self, *args, **kwargs):
            raise FileNotFoundError("shape_predictor_68_face_landmarks.dat is missing")

    other = tmp_path / "other"
    with monkeypatch.context() as m:
        m.setattr(align, "FaceAligner", Broken)
        assert cli.main(["prepare", "csv", str(src), str(other), "--quiet", "--workers", "2"]) == 2
        err = capsys.readouterr().err
        assert "cannot set up the face aligner" in err and "shape_predictor" in err
    assert cli.main(["prepare", "csv", str(src), str(other), "--quiet", "--size", "48", "--workers", "1"]) == 0
    assert PreparedDataset(other).size == 48
    # a journal with finished photos still refuses other options
    assert cli.main(["prepare", "csv", str(src), str(other), "--quiet", "--size", "64"]) == 2
    assert "size: 48 -> 64" in capsys.readouterr().err


def test_csv_without_poses_records_the_measured_pose(tmp_path):
    """A manifest without a pose column: a turned face is recorded with the pose of its measured yaw (the
    pose `nfgan normalize` would give the photo), not as frontal, so training and evaluation treat it as turned."""
    from nfgan.cli import main

    ex = Path(__file__).resolve().parents[1] / "examples" / "london"
    (tmp_path / "m.csv").write_text("path,subject,expression\n"
                                    f"{ex / 'neutral_left_3quarter' / '124_02.jpg'},124,neutral\n"
                                    f"{ex / 'neutral_front' / '124_03.jpg'},124,neutral\n"
                                    f"{ex / 'smiling_right_3quarter' / '124_09.jpg'},124,happy\n")
    assert main(["prepare", "csv", str(tmp_path / "m.csv"), str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "manifest.csv", newline="") as f:
        poses = {Path(r["source_path"]).name: (r["pose"], float(r["yaw_deg"])) for r in csv.DictReader(f)}
    assert poses["124_02.jpg"][0] == "left_3quarter" and poses["124_02.jpg"][1] < -15
    assert poses["124_03.jpg"][0] == "frontal"
    assert poses["124_09.jpg"][0] == "right_3quarter" and poses["124_09.jpg"][1] > 15
