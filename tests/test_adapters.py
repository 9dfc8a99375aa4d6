"""Dataset adapters: each dataset's own naming -> FaceRecord labels.

Datasets present in ../shared/data are read as they are and checked against the counts and the labels of
their manifest.csv. Datasets that are not (official CK+, Oulu-CASIA, MMI, Multi-PIE, KDEF, RaFD, FEI, generic
CSV) are rebuilt here as tiny trees in tmp_path following the documented naming, filled with real photos
(London faces) when shared data is present and small generated images otherwise.
"""
from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfgan import adapters
from nfgan.adapters import AdapterError, load
from nfgan.schema import POSES, FaceRecord

from conftest import SHARED_DATA


# ----------------------------------------------------------------------------------------------------------- helpers

def _face_sources() -> list[Path]:
    """A few real London photos when shared data is present, else none (generated images are used)."""
    folder = SHARED_DATA / "london" / "neutral_front"
    return sorted(folder.glob("*.jpg"))[:4] if folder.is_dir() else []


_SOURCES = _face_sources()


def put_image(path: Path, i: int = 0, fmt: str | None = None) -> Path:
    """Write a valid image at ``path`` (a copy of a real face when available), in ``fmt`` or the suffix's format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if _SOURCES:
        src = _SOURCES[i % len(_SOURCES)]
        if fmt is None and path.suffix.lower() in (".jpg", ".jpeg"):
            shutil.copyfile(src, path)
            return path
        img = Image.open(src).convert("L").resize((64, 64))
    else:
        rng = np.random.default_rng(i)
        img = Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8))
    formats = {".png": "PNG", ".tiff": "TIFF", ".tif": "TIFF", ".gif": "GIF", ".bmp": "BMP", ".jpg": "JPEG",
               ".jpeg": "JPEG"}
    img.save(path, format=fmt or formats.get(path.suffix.lower(), "PNG"))
    return path


def by_name(records: list[FaceRecord]) -> dict[str, FaceRecord]:
    return {Path(r.source_path).name: r for r in records}


def read_shared_manifest(folder: Path) -> dict[str, dict]:
    with open(folder / "manifest.csv", newline="") as f:
        return {str((folder / row["path"]).resolve()): row for row in csv.DictReader(f)}


def check_common(records: list[FaceRecord], dataset: str) -> None:
    assert records, "no records"
    assert [r.source_path for r in records] == sorted(r.source_path for r in records)
    for r in records:
        assert Path(r.source_path).is_absolute() and Path(r.source_path).is_file()
        assert r.pose in POSES
        assert r.dataset == dataset
        assert r.subject and r.expression == r.expression.lower()


# ------------------------------------------------------------------------------------------------------------ london

def test_london_shared_counts_and_labels(shared_data):
    root = shared_data / "london"
    records = load("london", root)
    check_common(records, "london")
    assert len(records) == 1020
    assert len({r.subject for r in records}) == 102
    counts = Counter((r.expression, r.pose) for r in records)
    assert set(counts) == {(e, p) for e in ("neutral", "happy") for p in POSES if p != "other"}
    assert all(n == 102 for n in counts.values())
    # every label agrees with the hand-made manifest of the shared copy
    manifest = read_shared_manifest(root)
    for r in records:
        row = manifest[r.source_path]
        assert (r.subject, r.expression, r.pose) == (row["subject"], row["expression"], row["pose"])


def test_london_flat_figshare_layout(tmp_path):
    """The original figshare download has every photo in one folder, plus .tem templates and a CSV."""
    for i, name in enumerate(["001_01.jpg", "001_03.jpg", "001_08.jpg", "017_10.jpg", "017_04.jpg"]):
        put_image(tmp_path / name, i)
    (tmp_path / "001_03.tem").write_text("189\n")
    (tmp_path / "london_faces_info.csv").write_text("face_id,age\n1,24\n")
    records = load("london", tmp_path)
    check_common(records, "london")
    got = {n: (r.subject, r.expression, r.pose, r.extra["view"]) for n, r in by_name(records).items()}
    assert got == {
        "001_01.jpg": ("001", "neutral", "left_profile", 1),
        "001_03.jpg": ("001", "neutral", "frontal", 3),
        "001_08.jpg": ("001", "happy", "frontal", 8),
        "017_04.jpg": ("017", "neutral", "right_3quarter", 4),
        "017_10.jpg": ("017", "happy", "right_profile", 10),
    }


def test_london_warns_on_foreign_files_and_errors_when_nothing_matches(tmp_path):
    put_image(tmp_path / "001_03.jpg")
    put_image(tmp_path / "001_11.jpg")      # view 11 does not exist
    put_image(tmp_path / "holiday.jpg")
    with pytest.warns(UserWarning, match="skipped 2 file"):
        records = load("london", tmp_path)
    assert [Path(r.source_path).name for r in records] == ["001_03.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterError, match="SSS_VV.jpg"):
        load("london", empty)


# --------------------------------------------------------------------------------------------------------------- csv

def test_csv_manifest_relative_paths_extras_and_folder_form(tmp_path):
    put_image(tmp_path / "imgs" / "a.png", 0)
    put_image(tmp_path / "imgs" / "b.jpg", 1)
    (tmp_path / "manifest.csv").write_text(
        "path,subject,expression,pose,yaw_deg,session\n"
        "imgs/b.jpg,p2,Smiling,left_3quarter,-40,s1\n"
        "imgs/a.png,p1,NE,,,s2\n")
    for root in (tmp_path, tmp_path / "manifest.csv"):
        records = load("csv", root)
        check_common(records, "csv")
        got = by_name(records)
        assert (got["a.png"].subject, got["a.png"].expression, got["a.png"].pose) == ("p1", "neutral", "frontal")
        assert (got["b.jpg"].subject, got["b.jpg"].expression, got["b.jpg"].pose) == ("p2", "happy", "left_3quarter")
        assert got["b.jpg"].extra == {"yaw_deg": -40.0, "session": "s1"}
        assert got["a.png"].source_path == str((tmp_path / "imgs" / "a.png").resolve())


def test_csv_keeps_unknown_expressions_and_reads_shared_manifests(shared_data):
    records = load("csv", shared_data / "yale")
    assert len(records) == 164
    assert Counter(r.expression for r in records)["sleepy"] == 15


@pytest.mark.parametrize("content, message", [
    ("path,subject\nx.png,p1\n", r"missing column\(s\) \['expression'\]"),
    ("path,subject,expression,pose\na.png,p1,happy,upside_down\n", r"line 2: pose 'upside_down'"),
    ("path,subject,expression\nnope.png,p1,happy\n", r"line 2: image .*nope.png does not exist"),
    ("path,subject,expression\na.png,,happy\n", r"line 2: empty 'subject'"),
])
def test_csv_bad_rows_name_file_and_line(tmp_path, content, message):
    put_image(tmp_path / "a.png")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(content)
    with pytest.raises(AdapterError, match=message) as info:
        load("csv", csv_path)
    assert str(csv_path) in str(info.value)


def test_csv_folder_without_manifest(tmp_path):
    with pytest.raises(AdapterError, match="without manifest.csv"):
        load("csv", tmp_path)


# ------------------------------------------------------------------------------------------------------------- ck+

@pytest.mark.parametrize("subset, count, subjects", [("peak", 981, 118), ("with_neutral", 890, 123)])
def test_ckplus_shared_subsets_match_manifest(shared_data, subset, count, subjects):
    root = shared_data / "ckplus"
    records = load("ckplus", root / subset)
    check_common(records, "ckplus")
    assert len(records) == count
    assert len({r.subject for r in records}) == subjects
    manifest = read_shared_manifest(root)
    for r in records:
        row = manifest[r.source_path]
        assert (r.subject, r.expression, r.pose) == (row["subject"], row["expression"], row["pose"])
        assert r.extra["precropped"] is True
        assert r.extra["sequence"].startswith(r.subject + "_")
    assert sum(1 for k in manifest if f"/{subset}/" in k) == count
    # the explicit CK+48 adapter reads the same folder identically
    assert [(r.source_path, r.expression) for r in load("ckplus48", root / subset)] == \
        [(r.source_path, r.expression) for r in records]


def test_ckplus_shared_root_with_two_subsets_is_refused(shared_data):
    with pytest.raises(AdapterError, match=r"several CK\+ sub-sets \(peak, with_neutral\)"):
        load("ckplus", shared_data / "ckplus")


def _make_official_ckplus(root: Path) -> None:
    """S005/001: 11 frames, disgust (3); S010/002: 5 frames, no label; S011/001: 3 frames, happy (5)."""
    sequences = {("S005", "001", 11): 3, ("S010", "002", 5): None, ("S011", "001", 3): 5}
    for (subject, seq, n), code in sequences.items():
        for f in range(1, n + 1):
            put_image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{f:08d}.png", f)
        if code is not None:
            label = root / "Emotion" / subject / seq / f"{subject}_{seq}_{n:08d}_emotion.txt"
            label.parent.mkdir(parents=True)
            label.write_text(f"   {code:.7e}\n")
    (root / "cohn-kanade-images" / "S005" / "001" / ".DS_Store").write_text("x")


def test_ckplus_official_layout(tmp_path):
    _make_official_ckplus(tmp_path)
    records = load("ckplus", tmp_path)
    check_common(records, "ckplus")
    got = [(r.extra["sequence"], r.extra["frame"], r.expression) for r in records]
    assert got == [
        ("S005_001", 1, "neutral"), ("S005_001", 9, "disgust"), ("S005_001", 10, "disgust"),
        ("S005_001", 11, "disgust"),
        ("S010_002", 1, "neutral"),                                   # unlabelled: its neutral frame only
        ("S011_001", 1, "neutral"), ("S011_001", 2, "happy"), ("S011_001", 3, "happy"),  # short sequence
    ]
    assert all("precropped" not in r.extra for r in records)
    assert [r.extra["labelled"] for r in records if r.extra["sequence"] == "S010_002"] == [False]

    skip = load("ckplus", tmp_path, unlabelled="skip", peak_frames=1)
    assert [(r.extra["sequence"], r.extra["frame"], r.expression) for r in skip] == [
        ("S005_001", 1, "neutral"), ("S005_001", 11, "disgust"), ("S011_001", 1, "neutral"), ("S011_001", 3, "happy")]
    # root may be cohn-kanade-images itself, with Emotion/ beside it
    assert [r.source_path for r in load("ckplus", tmp_path / "cohn-kanade-images")] == [r.source_path for r in records]


def test_ckplus_official_layout_errors(tmp_path):
    _make_official_ckplus(tmp_path)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text("9.0\n")
    with pytest.raises(AdapterError, match=r"S005_001_00000011_emotion.txt: emotion code 9"):
        load("ckplus", tmp_path)
    with pytest.raises(AdapterError, match="unlabelled must be"):
        load("ckplus", tmp_path, unlabelled="drop")
    shutil.rmtree(tmp_path / "Emotion")
    with pytest.raises(AdapterError, match="no Emotion/ folder"):
        load("ckplus", tmp_path)
    other = tmp_path / "other"
    put_image(other / "photos" / "x.png")
    with pytest.raises(AdapterError, match="cohn-kanade-images/Sxxx/nnn"):
        load("ckplus", other)


def test_ckplus48_folder_layout(tmp_path):
    put_image(tmp_path / "happy" / "S010_006_00000013.png", 0)
    put_image(tmp_path / "contempt" / "S138_008_00000007.png", 1)
    put_image(tmp_path / "contempt" / "thumbs.png", 2)
    with pytest.warns(UserWarning, match="skipped 1 file"):
        records = load("ckplus48", tmp_path)
    got = {n: (r.subject, r.expression, r.extra["sequence"], r.extra["frame"], r.extra["precropped"])
           for n, r in by_name(records).items()}
    assert got == {"S010_006_00000013.png": ("S010", "happy", "S010_006", 13, True),
                   "S138_008_00000007.png": ("S138", "contempt", "S138_008", 7, True)}


# ------------------------------------------------------------------------------------------------------ jaffe, yale

@pytest.mark.parametrize("name, count, subjects", [("jaffe", 213, 10), ("yale", 164, 15)])
def test_jaffe_and_yale_shared_match_manifest(shared_data, name, count, subjects):
    records = load(name, shared_data / name)
    check_common(records, name)
    assert len(records) == count and len({r.subject for r in records}) == subjects
    manifest = read_shared_manifest(shared_data / name)
    assert len(manifest) == count
    for r in records:
        row = manifest[r.source_path]
        assert (r.subject, r.expression, r.pose) == (row["subject"], row["expression"], row["pose"])


def test_jaffe_original_tiff_names(tmp_path):
    for i, name in enumerate(["KA.AN1.39.tiff", "KM.SA5.13.tiff", "UY.NE2.135.tiff", "cover.tiff"]):
        put_image(tmp_path / name, i)
    (tmp_path / "README").write_text("JAFFE")                  # not an image: ignored silently
    with pytest.warns(UserWarning, match="skipped 1 file.*cover.tiff"):
        records = load("jaffe", tmp_path)
    check_common(records, "jaffe")
    got = {n: (r.subject, r.expression, r.extra["take"], r.extra["index"]) for n, r in by_name(records).items()}
    assert got == {"KA.AN1.39.tiff": ("KA", "anger", 1, 39), "KM.SA5.13.tiff": ("KM", "sadness", 5, 13),
                   "UY.NE2.135.tiff": ("UY", "neutral", 2, 135)}


def test_yale_original_names_without_extension(tmp_path):
    """The original Yale release stores GIF data in files named subject01.happy, without an extension."""
    for i, label in enumerate(["happy", "normal", "sad", "surprised", "wink", "leftlight", "glasses"]):
        put_image(tmp_path / f"subject07.{label}", i, fmt="GIF")
    put_image(tmp_path / "subject07.unknownlabel", 0, fmt="GIF")
    (tmp_path / "Readme.txt").write_text("Yale")
    with pytest.warns(UserWarning, match="skipped 1 file.*subject07.unknownlabel"):
        records = load("yale", tmp_path)
    check_common(records, "yale")
    got = {n: r.expression for n, r in by_name(records).items()}
    assert got == {"subject07.happy": "happy", "subject07.normal": "neutral", "subject07.sad": "sadness",
                   "subject07.surprised": "surprise", "subject07.wink": "wink",
                   "subject07.leftlight": "neutral_leftlight", "subject07.glasses": "neutral_glasses"}
    assert {r.subject for r in records} == {"subject07"}
    assert by_name(records)["subject07.glasses"].extra["variant"] == "glasses"
    Image.open(by_name(records)["subject07.wink"].source_path).verify()   # a readable image


# ----------------------------------------------------------------------------------------------------------- registry

def test_load_rejects_unknown_names_missing_roots_and_bad_options(tmp_path):
    with pytest.raises(AdapterError, match="unknown dataset 'nope'.*london"):
        load("nope", tmp_path)
    with pytest.raises(AdapterError, match="does not exist"):
        load("london", tmp_path / "missing")
    with pytest.raises(AdapterError, match="bad option"):
        load("london", tmp_path, peak_frames=3)
    assert {"london", "csv"} <= set(adapters.ADAPTERS)
