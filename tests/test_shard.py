"""Sharding: `nfgan prepare --shard I/N` + `nfgan merge-prepared` equal one `nfgan prepare` run byte for byte;
the merge refuses shard sets it cannot join; `nfgan normalize --shard I/N` shards together write one run's files."""
from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfgan import cli
from nfgan.data import adapters
from nfgan.data.prepare import JOURNAL, SHARD_FILE, PrepareError, prepare_dataset
from nfgan.data.schema import FaceRecord
from nfgan.data.shard import Shard, ShardError, parse_shard, shard_from_env
from nfgan.data.shard_merge import META_RUN_SPECIFIC, MergeError, merge_prepared

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "london"
#: the files a merge must reproduce exactly (plus every faces/*.png)
SAME_FILES = ("manifest.csv", "prepare_report.csv", "faces.npy", "landmarks.npy")

# examples/london photos: frontal and 3/4 views align, the right profile does not (no face)
PHOTOS = [("neutral_front/006_03.jpg", "006", "neutral", "frontal", "a"),
          ("neutral_left_3quarter/006_02.jpg", "006", "neutral", "left_3quarter", ""),
          ("smiling_right_3quarter/124_09.jpg", "124", "happy", "right_3quarter", "b"),
          ("neutral_right_profile/124_05.jpg", "124", "neutral", "right_profile", ""),
          ("smiling_front/124_08.jpg", "124", "happy", "", "c")]           # no pose: measured (from_yaw)


def make_source(root: Path) -> Path:
    """A csv-adapter dataset: 5 example photos, a noise image (no face), an empty file, and one photo listed
    twice (a duplicate record); an extra column ``note``. Returns the manifest's path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,subject,expression,pose,note"]
    for rel, subject, expression, pose, note in PHOTOS:   # copied in: the record order (by path) and so the
        (root / rel).parent.mkdir(parents=True, exist_ok=True)   # shards do not depend on where the repo is
        shutil.copyfile(EXAMPLES / rel, root / rel)
        lines.append(f"{rel},{subject},{expression},{pose},{note}")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 120), dtype=np.uint8)).save(root / "noise.png")
    (root / "empty.jpg").write_bytes(b"")
    lines += ["noise.png,900,happy,frontal,n", "empty.jpg,901,neutral,frontal,",
              f"{PHOTOS[0][0]},006,neutral,frontal,again"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def prepare_cli(manifest: Path, out, *extra: str) -> int:
    return cli.main(["prepare", "csv", str(manifest), str(out), "--workers", "1", "--quiet", *extra])


def assert_same_prepared(single: Path, merged: Path) -> None:
    """Byte-identical prepared folders; prepare_meta.json differs only in its run-specific fields."""
    for name in SAME_FILES:
        assert (single / name).read_bytes() == (merged / name).read_bytes(), name
    pngs = sorted(p.name for p in (single / "faces").iterdir())
    assert pngs and pngs == sorted(p.name for p in (merged / "faces").iterdir())
    for name in pngs:
        assert (single / "faces" / name).read_bytes() == (merged / "faces" / name).read_bytes(), name
    a, b = (json.loads((d / "prepare_meta.json").read_text()) for d in (single, merged))
    assert list(a) == list(b)
    for key in META_RUN_SPECIFIC:
        a.pop(key), b.pop(key)
    assert json.dumps(a, indent=2) == json.dumps(b, indent=2)
    assert not (merged / SHARD_FILE).exists()
    assert not [p for p in merged.parent.iterdir() if p.name.startswith(f".{merged.name}.merge-")]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("shard_src") / "src")


@pytest.fixture(scope="module")
def single(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shard_single") / "single"
    assert prepare_cli(source, out) == 1            # the profile, the noise, the empty file, the duplicate
    return out


@pytest.fixture(scope="module")
def shards(source, tmp_path_factory) -> dict[int, list[Path]]:
    """Shard folders of 2 and 3 shards; shard 1 of 2 is picked from RANK / WORLD_SIZE, as under torchrun.
    Every shard has failures: exit status 1, but 0 under torchrun (which stops the others on a non-zero exit)."""
    root = tmp_path_factory.mktemp("shards")
    made: dict[int, list[Path]] = {}
    for n in (2, 3):
        for i in range(n):
            if (i, n) == (1, 2):
                mp = pytest.MonkeyPatch()
                mp.setenv("RANK", "1")
                mp.setenv("WORLD_SIZE", "2")
                try:
                    assert prepare_cli(source, root / f"n{n}_s{{shard}}") == 0
                finally:
                    mp.undo()
            else:
                assert prepare_cli(source, root / f"n{n}_s{i}", "--shard", f"{i}/{n}") == 1
        made[n] = [root / f"n{n}_s{i}" for i in range(n)]
    return made


# ------------------------------------------------------------------------------------------------ prepare + merge


@pytest.mark.parametrize("n", [2, 3])
def test_shards_merge_into_the_single_run_byte_for_byte(single, shards, source, tmp_path, capsys, n):
    for i, folder in enumerate(shards[n]):
        info = json.loads((folder / SHARD_FILE).read_text())
        assert (info["shard"], info["of"], info["records"], info["pending"]) == (i, n, 8, 0)
        assert sorted(info["manifest"] + info["report"]) == list(range(i, 8, n))
    out = tmp_path / "merged"
    capsys.readouterr()
    assert cli.main(["merge-prepared", str(out), *map(str, reversed(shards[n])), "--quiet"]) == 0
    assert f"merged {n} shards" in capsys.readouterr().out
    assert_same_prepared(single, out)
    report = list(csv.DictReader(open(out / "prepare_report.csv", newline="")))
    assert sorted(r["reason"] for r in report) == ["duplicate record", "empty file", "no face", "no face"]
    rows = list(csv.DictReader(open(out / "manifest.csv", newline="")))
    assert [r["note"] for r in rows] == ["a", "", "c", "b"] and rows[2]["pose"] == "frontal"   # sorted by path
    # the merged journal makes a re-run of prepare a resume with nothing left to do
    before = {name: (out / name).read_bytes() for name in SAME_FILES}
    res = prepare_dataset(adapters.load("csv", source), out, workers=1, progress=False, src_root=source.parent)
    assert res.skipped_existing == 7 and {name: (out / name).read_bytes() for name in SAME_FILES} == before


def test_shard_columns_and_duplicates_are_judged_over_all_records(tmp_path):
    """A shard's manifest has the columns of the whole record list, and a duplicate whose first record is in
    another shard is reported, not prepared twice (Python API)."""
    front = str(EXAMPLES / "neutral_front/006_03.jpg")
    recs = [FaceRecord(front, "006", "neutral"),
            FaceRecord(front, "006", "neutral"),
            FaceRecord(str(EXAMPLES / "smiling_front/124_08.jpg"), "124", "happy", extra={"sequence": "q1"})]
    kw = dict(workers=1, progress=False, src_root=EXAMPLES)
    prepare_dataset(recs, tmp_path / "single", **kw)
    parts = [tmp_path / f"s{i}" for i in range(2)]
    for i, part in enumerate(parts):
        prepare_dataset(recs, part, shard=Shard(i, 2), **kw)
    s1 = list(csv.DictReader(open(parts[1] / "manifest.csv", newline="")))
    assert s1 == [] and (parts[1] / "manifest.csv").read_text().rstrip().endswith("sequence")
    assert "duplicate record" in (parts[1] / "prepare_report.csv").read_text()
    merge_prepared(tmp_path / "merged", parts, progress=False)
    assert_same_prepared(tmp_path / "single", tmp_path / "merged")


def _merge_error(capsys, out: Path, *folders: Path) -> str:
    assert cli.main(["merge-prepared", str(out), *map(str, folders), "--quiet"]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_merge_refuses_missing_duplicate_mixed_and_unfinished_shards(single, shards, source, tmp_path, capsys):
    s0, s1 = shards[2]
    out = tmp_path / "out"
    err = _merge_error(capsys, out, s0)
    assert "1/2 missing" in err
    err = _merge_error(capsys, out, s0, s0)
    assert str(s0) in err and "given twice (the same folder)" in err
    twin = tmp_path / "twin"
    shutil.copytree(s0, twin)
    err = _merge_error(capsys, out, s0, twin, s1)
    assert f"{twin}: shard 0/2 given twice (also {s0})" in err
    err = _merge_error(capsys, out, s0, shards[3][1])
    assert "different splits" in err
    err = _merge_error(capsys, out, s0, single)
    assert f"{single}: prepared without --shard" in err

    other = tmp_path / "other_options"
    assert prepare_cli(source, other, "--shard", "1/2", "--no-flip") in (0, 1)
    err = _merge_error(capsys, out, s0, other)
    assert f"{other}: prepared with other options than {s0}" in err and "flip: True vs False" in err

    partial = tmp_path / "partial"
    assert prepare_cli(source, partial, "--shard", "1/2", "--limit", "1") in (0, 1)
    err = _merge_error(capsys, out, s0, partial)
    assert f"{partial} (shard 1/2): incomplete" in err

    unfinished = tmp_path / "unfinished"
    shutil.copytree(s1, unfinished)
    (unfinished / SHARD_FILE).unlink()
    err = _merge_error(capsys, out, s0, unfinished)
    assert f"{unfinished}: its nfgan prepare --shard run has not finished" in err

    other_source = tmp_path / "other_source"
    shutil.copytree(s1, other_source)
    info = json.loads((other_source / SHARD_FILE).read_text())
    info["records_sha256"] = "0" * 64
    (other_source / SHARD_FILE).write_text(json.dumps(info))
    err = _merge_error(capsys, out, s0, other_source)
    assert f"{other_source}: prepared from another record list than {s0}" in err

    damaged = tmp_path / "damaged"
    shutil.copytree(s1, damaged)
    info["records_sha256"], info["manifest"] = json.loads((s1 / SHARD_FILE).read_text())["records_sha256"], "all"
    (damaged / SHARD_FILE).write_text(json.dumps(info))
    with pytest.raises(MergeError, match=f"{damaged}: {SHARD_FILE} is damaged"):
        merge_prepared(out, [s0, damaged], progress=False)
    assert not out.exists()

    torn = tmp_path / "torn"
    shutil.copytree(s1, torn)
    lines = (torn / "manifest.csv").read_text().splitlines(keepends=True)
    (torn / "manifest.csv").write_text("".join(lines[:-1]))
    err = _merge_error(capsys, out, s0, torn)
    assert f"{torn} (shard 1/2): manifest.csv does not match" in err

    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert cli.main(["merge-prepared", str(out), str(s0), str(s1), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(os.listdir(out)) == ["keep.txt"]


def test_a_failed_merge_leaves_no_out_and_no_temporary_folder(shards, tmp_path, monkeypatch):
    from nfgan.data import shard_merge

    def disk_full(path, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shard_merge, "_write_stack", disk_full)
    with pytest.raises(OSError):
        merge_prepared(tmp_path / "out", shards[2], progress=False)
    assert os.listdir(tmp_path) == []


def test_a_shard_folder_is_one_shards_and_one_runs_only(source, shards, tmp_path, capsys):
    s0 = shards[2][0]
    before = (s0 / "manifest.csv").read_bytes()
    assert prepare_cli(source, s0, "--shard", "1/2") == 2
    assert "was prepared as shard 0/2, but this run is shard 1/2" in capsys.readouterr().err
    assert prepare_cli(source, s0) == 2
    assert "this run has no --shard" in capsys.readouterr().err
    assert (s0 / "manifest.csv").read_bytes() == before
    # a second run on a folder that a run holds is refused (two shards given one OUT)
    busy = tmp_path / "busy"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(PrepareError, match="being prepared by another run"):
            prepare_dataset(adapters.load("csv", source), busy, workers=1, progress=False, shard=Shard(0, 2))
    finally:
        os.close(fd)
    assert not (busy / JOURNAL).exists()


def test_shard_specs_and_the_torchrun_environment(source, tmp_path, capsys):
    assert parse_shard("1/3") == Shard(1, 3) and parse_shard(" 0 / 1 ") == Shard(0, 1)
    for bad in ("2/2", "1/0", "-1/2", "a/b", "1", "1/2/3"):
        with pytest.raises(ShardError):
            parse_shard(bad)
    assert Shard(1, 3).select(list("abcdefg")) == ["b", "e"] and Shard(1, 3).tag == "shard1of3"
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == Shard(2, 4)
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None and shard_from_env({}) is None
    for env in ({"RANK": "4", "WORLD_SIZE": "4"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(ShardError):
            shard_from_env(env)
    with pytest.raises(SystemExit) as e:
        cli.main(["prepare", "csv", str(source), str(tmp_path / "o"), "--shard", "2/2"])
    assert e.value.code == 2
    assert prepare_cli(source, tmp_path / "o{shard}") == 2
    assert "contains {shard}" in capsys.readouterr().err
    assert not (tmp_path / "o{shard}").exists() and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------ normalize


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.png")}


def _assert_same_images(got: dict[str, bytes], want: dict[str, bytes]):
    """The same files, whose pixels differ by at most one gray level on a few pixels: a shard runs its faces in
    other batches than one run, and the CPU's kernels round differently for another batch size (about 3e-7 of the
    generator's output), which can move a pixel that lies on a rounding boundary by one level."""
    import io

    from PIL import Image

    assert set(got) == set(want) and got
    for name in want:
        a, b = (np.asarray(Image.open(io.BytesIO(d[name])), dtype=np.int16) for d in (got, want))
        assert a.shape == b.shape and np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01, name


def _report_rows(path: Path) -> list[tuple[str, str]]:
    return [(r["path"], r["status"]) for r in csv.DictReader(open(path, newline=""))]


def test_normalize_shards_write_the_files_of_one_run(single, tmp_path, capsys, monkeypatch):
    inputs = tmp_path / "in"
    for sub, rel in (("a", "neutral_front/006_03.jpg"), ("a", "smiling_right_3quarter/124_09.jpg"),
                     ("b", "neutral_front/006_03.jpg"), ("b", "neutral_left_3quarter/124_02.jpg")):
        (inputs / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / rel, inputs / sub)          # b/006_03.jpg: the same stem -> 006_03-2.png
    (inputs / "a" / "006_03x.jpg").write_bytes(b"")        # fails to read; keeps its place in the list
    crop = next((single / "faces").iterdir())
    shutil.copy(crop, inputs / "b" / "crop.png")           # an aligned crop, used as it is
    base = ["normalize", str(inputs), "--batch", "2"]
    assert cli.main([*base, "-o", str(tmp_path / "one")]) == 1
    one = _pngs(tmp_path / "one")
    assert len(one) == 5 and "006_03-2.png" in one
    parts = []
    for i in range(2):
        out = tmp_path / f"part{i}"
        if i == 1:             # the shard with the bad file: exit status 0 under torchrun, 1 otherwise
            assert cli.main([*base, "-o", str(tmp_path / "explicit"), "--shard", "1/2"]) == 1
            capsys.readouterr()
            monkeypatch.setenv("RANK", "1")
            monkeypatch.setenv("WORLD_SIZE", "2")
            assert cli.main([*base, "-o", str(out)]) == 0
        else:
            assert cli.main([*base, "-o", str(out), "--shard", "0/2"]) == 0
        assert f"shard {i}/2 (from {'--shard' if i == 0 else 'RANK/WORLD_SIZE (torchrun)'})" in capsys.readouterr().out
        assert not (out / "normalize_report.csv").exists()
        parts.append(out)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    a, b = (_pngs(p) for p in parts)
    assert a and b and not set(a) & set(b)                 # no file written by both shards
    _assert_same_images({**a, **b}, one)                   # same names, the same images
    rows = [(p, s) for i, part in enumerate(parts) for p, s in _report_rows(part / f"normalize_report.shard{i}of2.csv")]
    assert sorted(rows) == sorted(_report_rows(tmp_path / "one" / "normalize_report.csv"))
    assert cli.main([*base, "-o", str(tmp_path / "x.png"), "--shard", "0/2"]) == 2
    assert "needs an output folder" in capsys.readouterr().err


def test_normalize_shards_of_a_prepared_folder_share_one_output_folder(single, tmp_path):
    assert cli.main(["normalize", "--data", str(single), "-o", str(tmp_path / "one"), "--batch", "3"]) == 0
    for i in range(3):          # 4 faces in 3 shards: 2 + 1 + 1, all into one folder
        assert cli.main(["normalize", "--data", str(single), "-o", str(tmp_path / "sharded"), "--batch", "3",
                         "--shard", f"{i}/3"]) == 0
    _assert_same_images(_pngs(tmp_path / "sharded"), _pngs(tmp_path / "one"))
    assert len(_pngs(tmp_path / "one")) == 4
    assert sorted(p.name for p in (tmp_path / "sharded").glob("*.csv")) == [
        f"normalize_report.shard{i}of3.csv" for i in range(3)]


# --------------------------------------------------------------------------------------------- the London set


@pytest.mark.slow
def test_london_in_two_shards_equals_one_run(shared_data, tmp_path):
    """The real London set (1020 photos): 2 shards + merge against one run, byte for byte (benchmarks/shard_prepare.py
    runs the same check and times it; ~1 minute on 2 cores)."""
    src = shared_data / "london"
    records = adapters.load("london", src)
    t0 = time.perf_counter()
    prepare_dataset(records, tmp_path / "single", workers=2, progress=False, src_root=src)
    parts = [tmp_path / f"s{i}" for i in range(2)]
    for i, part in enumerate(parts):
        prepare_dataset(records, part, workers=2, progress=False, src_root=src, shard=Shard(i, 2))
    merge_prepared(tmp_path / "merged", parts, progress=False)
    assert_same_prepared(tmp_path / "single", tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "prepare_meta.json").read_text())["counts"]["records"] == len(records)
    assert time.perf_counter() - t0 < 600
