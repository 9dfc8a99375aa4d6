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

from nfgan.data import adapters
from nfgan.data.adapters import AdapterError, load
from nfgan.data.schema import POSE_FROM_YAW, POSES, FaceRecord

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
        assert r.pose in POSES or r.pose == POSE_FROM_YAW
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
    # per-subject facts from london_faces_info.csv
    with open(root / "london_faces_info.csv", newline="") as f:
        info = {row["face_id"]: row for row in csv.DictReader(f)}
    for r in records:
        row = info[r.subject]
        assert r.extra["gender"] == row["face_gender"] and r.extra["ethnicity"] == row["face_eth"]
        assert r.extra.get("age") == (int(row["face_age"]) if row["face_age"] else None)    # 2 ages are blank


def test_london_flat_figshare_layout(tmp_path):
    """The original figshare download has every photo in one folder, plus .tem templates and a CSV."""
    for i, name in enumerate(["001_01.jpg", "001_03.jpg", "001_08.jpg", "017_10.jpg", "017_04.jpg"]):
        put_image(tmp_path / name, i)
    (tmp_path / "001_03.tem").write_text("189\n")
    (tmp_path / "london_faces_info.csv").write_text("face_id,face_age,face_gender,face_eth\n1,24,female,white\n")
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
    assert by_name(records)["001_08.jpg"].extra == {"view": 8, "age": 24, "gender": "female", "ethnicity": "white"}
    assert by_name(records)["017_10.jpg"].extra == {"view": 10}        # not in the info file
    counts = adapters.summary(records)
    assert counts["subject"] == {"001": 3, "017": 2}
    assert counts["expression"] == {"neutral": 3, "happy": 2}


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
        # no pose given: prepare records the pose of the measured yaw, not "frontal"
        assert (got["a.png"].subject, got["a.png"].expression, got["a.png"].pose) == ("p1", "neutral", POSE_FROM_YAW)
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


@pytest.mark.parametrize("third_line, message", [
    ("a.png,Ren\xe9,happy\n".encode("latin-1"), r"line 3: not UTF-8 text \(byte 0xe9 at column 10\)"),
    (b"a.png,p2," + b"x" * 200_000 + b"\n", r"line 3: not a readable CSV table \(field larger than field limit"),
    (b'a.png,p2,"happy\n' + b"y" * 150_000 + b'"\n', r"line 4: not a readable CSV table \(field larger"),
    (b"a.png,p2,happy," + b"z" * (adapters.MAX_CSV_LINE + 10), r"line 3: longer than 1048576 bytes"),
], ids=["latin-1", "huge field", "huge quoted field", "huge line"])
def test_csv_unreadable_manifest_names_file_and_line(tmp_path, third_line, message):
    put_image(tmp_path / "a.png")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfpath,subject,expression\na.png,p1,neutral\n" + third_line + b"a.png,p3,sad\n")
    with pytest.raises(AdapterError, match=message) as info:
        load("csv", csv_path)
    assert str(csv_path) in str(info.value)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_csv_line_endings(tmp_path, eol):
    put_image(tmp_path / "a.png")
    lines = [b"path,subject,expression,pose", b"a.png,p1,happy,", b'a.png,"p\xc3\xa92",sad,frontal']
    (tmp_path / "manifest.csv").write_bytes(eol.join(lines) + eol)
    assert [r.subject for r in load("csv", tmp_path)] == ["p1", "p\xe92"]
    (tmp_path / "manifest.csv").write_bytes(eol.join(lines + [b"a.png,p3,sad,upside_down"]) + eol)
    with pytest.raises(AdapterError, match="line 4: pose 'upside_down'"):
        load("csv", tmp_path)


def test_csv_rows_that_are_folders_or_fifos_are_kept_for_prepare_to_report(tmp_path):
    import os

    put_image(tmp_path / "a.png")
    (tmp_path / "folder.png").mkdir()
    rows = "path,subject,expression\na.png,p1,happy\nfolder.png,p2,sad\n"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.png")
        rows += "pipe.png,p3,sad\n"
    (tmp_path / "manifest.csv").write_text(rows)
    got = by_name(load("csv", tmp_path))
    assert set(got) == {"a.png", "folder.png"} | ({"pipe.png"} if hasattr(os, "mkfifo") else set())
    assert got["folder.png"].subject == "p2"
    (tmp_path / "manifest.csv").write_text(rows + "gone.png,p4,sad\n")      # a missing file still refuses
    with pytest.raises(AdapterError, match=r"line \d: image .*gone.png does not exist"):
        load("csv", tmp_path)
    if hasattr(os, "mkfifo"):                                              # the manifest itself a FIFO
        os.mkfifo(tmp_path / "pipe.csv")
        with pytest.raises(AdapterError, match="pipe.csv is not a regular file"):
            load("csv", tmp_path / "pipe.csv")


def test_label_tables_that_are_not_utf8_name_the_file(tmp_path):
    london = tmp_path / "london"
    put_image(london / "001_03.jpg")
    (london / "london_faces_info.csv").write_bytes(b"face_id,face_age\n1,2\xff4\n")
    with pytest.raises(AdapterError, match=r"london: .*london_faces_info.csv, line 2: not UTF-8"):
        load("london", london)
    mmi = tmp_path / "mmi"
    _make_mmi_session(mmi, "2001", 3, '<Metatags><Metatag Name="Emotion" Value="6"/></Metatags>')
    (mmi / "labels.csv").write_bytes(b"session,subject,expression\n2001,S\xe940,Angry\n")
    with pytest.raises(AdapterError, match=r"mmi: .*labels.csv, line 2: not UTF-8"):
        load("mmi", mmi)


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
    with pytest.raises(AdapterError, match=r"CK\+ sub-sets in folders \(peak, with_neutral\)"):
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

    skip = load("ckplus", tmp_path, unlabelled="skip", peak_frames="1")     # text options (CLI) are converted
    assert [(r.extra["sequence"], r.extra["frame"], r.expression) for r in skip] == [
        ("S005_001", 1, "neutral"), ("S005_001", 11, "disgust"), ("S011_001", 1, "neutral"), ("S011_001", 3, "happy")]
    # root may be cohn-kanade-images itself, with Emotion/ beside it
    assert [r.source_path for r in load("ckplus", tmp_path / "cohn-kanade-images")] == [r.source_path for r in records]


def test_ckplus_official_layout_errors(tmp_path):
    _make_official_ckplus(tmp_path)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text("9.0\n")
    with pytest.raises(AdapterError, match=r"S005_001_00000011_emotion.txt: emotion code 9"):
        load("ckplus", tmp_path)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_bytes(b"\xff\xfe3\x00")
    with pytest.raises(AdapterError, match=r"S005_001_00000011_emotion.txt: expected one emotion code 0-7"):
        load("ckplus", tmp_path)                       # not text (UTF-16 here): the message, no traceback
    with pytest.raises(AdapterError, match="option peak_frames='three' must be int"):
        load("ckplus", tmp_path, peak_frames="three")
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
    # the neutral variants are not expressive inputs for the evaluation's neutral rate; sleepy and wink are
    from nfgan.data.schema import is_expressive
    assert {n: is_expressive(r.expression) for n, r in by_name(records).items()} == {
        "subject07.happy": True, "subject07.normal": False, "subject07.sad": True, "subject07.surprised": True,
        "subject07.wink": True, "subject07.leftlight": False, "subject07.glasses": False}
    Image.open(by_name(records)["subject07.wink"].source_path).verify()   # a readable image


# ------------------------------------------------------------------------------------------------------ oulu-casia

def test_oulu_sequences_lighting_and_frame_choice(tmp_path):
    for f in range(6):
        put_image(tmp_path / "VL" / "Strong" / "P001" / "Anger" / f"{f:03d}.jpeg", f)
    for f in range(3):
        put_image(tmp_path / "VL" / "Dark" / "P001" / "Happiness" / f"{f:03d}.jpeg", f)
    for f in range(12):        # frame names without zero padding must still sort numerically
        put_image(tmp_path / "VL" / "Weak" / "P002" / "Surprise" / f"{f}.jpeg", f)
    records = load("oulu", tmp_path)
    check_common(records, "oulu")
    got = [(r.extra["lighting"], r.subject, Path(r.source_path).name, r.expression) for r in records]
    assert sorted(got) == sorted([
        ("Dark", "P001", "000.jpeg", "neutral"), ("Dark", "P001", "001.jpeg", "happy"),
        ("Dark", "P001", "002.jpeg", "happy"),
        ("Strong", "P001", "000.jpeg", "neutral"), ("Strong", "P001", "003.jpeg", "anger"),
        ("Strong", "P001", "004.jpeg", "anger"), ("Strong", "P001", "005.jpeg", "anger"),
        ("Weak", "P002", "0.jpeg", "neutral"), ("Weak", "P002", "9.jpeg", "surprise"),
        ("Weak", "P002", "10.jpeg", "surprise"), ("Weak", "P002", "11.jpeg", "surprise"),
    ])
    assert {r.extra["modality"] for r in records} == {"VL"}
    # the root may be a lighting folder; options change the frame choice
    strong = load("oulu", tmp_path / "VL" / "Strong", peak_frames=2, neutral_frames=2)
    assert [(Path(r.source_path).name, r.expression) for r in strong] == [
        ("000.jpeg", "neutral"), ("001.jpeg", "neutral"), ("004.jpeg", "anger"), ("005.jpeg", "anger")]
    assert {r.extra["lighting"] for r in strong} == {""}
    with pytest.raises(AdapterError, match="Pxxx"):
        load("oulu", tmp_path / "VL" / "Strong" / "P001" / "Anger")


# --------------------------------------------------------------------------------------------------------------- mmi

def _make_mmi_session(root: Path, session: str, frames: int, xml: str | None, media: str = "S001-001") -> None:
    for f in range(frames):
        put_image(root / "Sessions" / session / f"{media}_{f + 1}.png", f)
    if xml is not None:
        (root / "Sessions" / session / f"{media}.xml").write_text(xml)


def test_mmi_sessions_labelled_by_xml(tmp_path):
    _make_mmi_session(tmp_path, "1766", 9, '<?xml version="1.0"?><Metatags><Metatag Name="Emotion" Value="6"/>'
                      '<Metatag Name="Subject" Value="5"/></Metatags>', media="S005-002")
    _make_mmi_session(tmp_path, "1767", 1, '<session><subject id="12"/><Metatag Name="Emotion" Value="4"/>'
                      '</session>', media="S012-001")
    _make_mmi_session(tmp_path, "1768", 5, '<Metatags><Metatag Name="Emotion" Value="2"/></Metatags>',
                      media="S031-003")                                  # subject from the file name prefix
    _make_mmi_session(tmp_path, "1769", 4, '<Metatags><Metatag Name="AU" Value="12"/></Metatags>')  # no emotion
    with pytest.warns(UserWarning, match="skipped 1 session folder.*1769"):
        records = load("mmi", tmp_path)
    check_common(records, "mmi")
    got = [(r.extra["session"], r.subject, r.extra["frame"], r.expression) for r in records]
    assert got == [
        # 9 frames neutral -> apex -> neutral: first frame neutral, the 3 middle frames (3, 4, 5) the peak
        ("1766", "5", 0, "neutral"), ("1766", "5", 3, "surprise"), ("1766", "5", 4, "surprise"),
        ("1766", "5", 5, "surprise"),
        ("1767", "12", 0, "happy"),                                       # a still: one image, its label
        ("1768", "S031", 0, "neutral"), ("1768", "S031", 1, "disgust"), ("1768", "S031", 2, "disgust"),
        ("1768", "S031", 3, "disgust"),
    ]


def test_mmi_labels_csv_wins_and_is_checked(tmp_path):
    _make_mmi_session(tmp_path, "2001", 7, '<Metatags><Metatag Name="Emotion" Value="6"/></Metatags>')
    (tmp_path / "labels.csv").write_text("session,subject,expression\n2001,S040,Angry\n")
    records = load("mmi", tmp_path, peak_frames=1)
    assert [(r.subject, r.extra["frame"], r.expression) for r in records] == [
        ("S040", 0, "neutral"), ("S040", 3, "anger")]
    (tmp_path / "labels.csv").write_text("session,expression\n2001,anger\n")
    with pytest.raises(AdapterError, match="labels.csv: expected columns session,subject,expression"):
        load("mmi", tmp_path)


# --------------------------------------------------------------------------------------------------------- multi-pie

def test_multipie_names_expressions_and_cameras(tmp_path):
    names = [("01", "01", "05_1"), ("01", "02", "11_0"), ("02", "03", "19_0"), ("03", "03", "14_0"),
             ("04", "03", "24_0"), ("04", "02", "08_1"), ("02", "02", "04_1")]
    for i, (session, rec, cam) in enumerate(names):
        put_image(tmp_path / f"session{session}" / "multiview" / "042" / rec / cam /
                  f"042_{session}_{rec}_{cam.replace('_', '')}_{i:02d}.png", i)
    records = load("multipie", tmp_path)
    check_common(records, "multipie")
    got = {(r.extra["session"], r.extra["recording"], r.extra["camera"]):
           (r.subject, r.expression, r.pose, r.extra.get("yaw_deg"), r.extra["illumination"]) for r in records}
    assert got == {
        (1, 1, "05_1"): ("042", "neutral", "frontal", 0.0, 0),
        (1, 2, "11_0"): ("042", "happy", "left_profile", -90.0, 1),
        (2, 3, "19_0"): ("042", "squint", "right_3quarter", 45.0, 2),
        (3, 3, "14_0"): ("042", "disgust", "frontal", -15.0, 3),
        (4, 3, "24_0"): ("042", "scream", "right_profile", 90.0, 4),
        (4, 2, "08_1"): ("042", "neutral", "other", None, 5),
        (2, 2, "04_1"): ("042", "surprise", "right_3quarter", 30.0, 6),
    }
    wrong = tmp_path / "session01" / "multiview" / "042" / "01" / "05_0" / "042_01_01_051_00.png"
    put_image(wrong)
    with pytest.raises(AdapterError, match="camera 05_1 but it is in folder 05_0"):
        load("multipie", tmp_path)


# ---------------------------------------------------------------------------------------------------- kdef, rafd, fei

def test_kdef_names(tmp_path):
    for i, name in enumerate(["AF01/AF01ANS.JPG", "AF01/AF01AFHL.JPG", "BM23/BM23HAFR.JPG", "BM23/BM23NEHR.jpg",
                              "AF01/AF01DIFL.JPG", "AF01/AF01SUS.JPG", "BM23/BM23XXS.JPG"]):
        put_image(tmp_path / name, i)
    with pytest.warns(UserWarning, match="skipped 1 file.*BM23XXS"):
        records = load("kdef", tmp_path)
    check_common(records, "kdef")
    got = {n: (r.subject, r.extra["session"], r.expression, r.pose, r.extra["yaw_deg"])
           for n, r in by_name(records).items()}
    assert got == {
        "AF01ANS.JPG": ("F01", "A", "anger", "frontal", 0.0),
        "AF01AFHL.JPG": ("F01", "A", "fear", "left_3quarter", -45.0),
        "BM23HAFR.JPG": ("M23", "B", "happy", "right_profile", 90.0),
        "BM23NEHR.jpg": ("M23", "B", "neutral", "right_3quarter", 45.0),
        "AF01DIFL.JPG": ("F01", "A", "disgust", "left_profile", -90.0),
        "AF01SUS.JPG": ("F01", "A", "surprise", "frontal", 0.0),
    }


def test_rafd_names(tmp_path):
    names = ["Rafd090_01_Caucasian_female_angry_frontal.jpg", "Rafd000_01_Caucasian_female_contemptuous_left.jpg",
             "Rafd045_38_Kid_male_fearful_right.jpg", "Rafd135_57_Moroccan_male_sad_frontal.jpg",
             "Rafd180_57_Moroccan_male_surprised_frontal.jpg"]
    for i, name in enumerate(names):
        put_image(tmp_path / name, i)
    records = load("rafd", tmp_path)
    check_common(records, "rafd")
    got = {n: (r.subject, r.expression, r.pose, r.extra["yaw_deg"], r.extra["gaze"], r.extra["ethnicity"],
               r.extra["gender"]) for n, r in by_name(records).items()}
    assert got == {
        names[0]: ("01", "anger", "frontal", 0.0, "frontal", "caucasian", "female"),
        names[1]: ("01", "contempt", "left_profile", -90.0, "left", "caucasian", "female"),
        names[2]: ("38", "fear", "left_3quarter", -45.0, "right", "kid", "male"),
        names[3]: ("57", "sadness", "right_3quarter", 45.0, "frontal", "moroccan", "male"),
        names[4]: ("57", "surprise", "right_profile", 90.0, "frontal", "moroccan", "male"),
    }


def test_fei_original_and_manually_aligned(tmp_path):
    for image in (1, 3, 5, 6, 10, 11, 12, 13):
        put_image(tmp_path / "originalimages" / f"7-{image:02d}.jpg", image)
    put_image(tmp_path / "frontalimages_manuallyaligned" / "200a.jpg", 0)
    put_image(tmp_path / "frontalimages_manuallyaligned" / "200b.jpg", 1)
    put_image(tmp_path / "originalimages" / "7-15.jpg", 2)            # there is no image 15
    with pytest.warns(UserWarning, match="skipped 1 file.*7-15.jpg"):
        records = load("fei", tmp_path)
    check_common(records, "fei")
    got = {n: (r.subject, r.expression, r.pose, r.extra["yaw_deg"]) for n, r in by_name(records).items()}
    assert got == {
        "7-01.jpg": ("7", "neutral", "left_profile", -90.0),
        "7-03.jpg": ("7", "neutral", "left_3quarter", -54.0),
        "7-05.jpg": ("7", "neutral", "frontal", -18.0),
        "7-06.jpg": ("7", "neutral", "frontal", 18.0),
        "7-10.jpg": ("7", "neutral", "right_profile", 90.0),
        "7-11.jpg": ("7", "neutral", "frontal", 0.0),
        "7-12.jpg": ("7", "happy", "frontal", 0.0),
        "7-13.jpg": ("7", "neutral_lowlight", "frontal", 0.0),
        "200a.jpg": ("200", "neutral", "frontal", 0.0),
        "200b.jpg": ("200", "happy", "frontal", 0.0),
    }
    assert by_name(records)["200a.jpg"].extra["aligned"] is True


def test_pose_from_yaw_bins():
    from nfgan.data.adapters import _pose_from_yaw
    assert [_pose_from_yaw(y) for y in (-90, -67.5, -67.4, -45, -22.5, -22.4, 0, 22.4, 22.5, 60, 67.5, 90)] == [
        "left_profile", "left_profile", "left_3quarter", "left_3quarter", "left_3quarter", "frontal", "frontal",
        "frontal", "right_3quarter", "right_3quarter", "right_profile", "right_profile"]


# ----------------------------------------------------------------------------------------------------------- registry

def test_load_rejects_unknown_names_missing_roots_and_bad_options(tmp_path):
    with pytest.raises(AdapterError, match="unknown dataset 'nope'.*london"):
        load("nope", tmp_path)
    with pytest.raises(AdapterError, match="does not exist"):
        load("london", tmp_path / "missing")
    with pytest.raises(AdapterError, match="bad option"):
        load("london", tmp_path, peak_frames=3)
    put_image(tmp_path / "001_03.jpg")
    with pytest.raises(AdapterError, match="is a file; give the dataset's folder"):
        load("ckplus", tmp_path / "001_03.jpg")
    assert set(adapters.ADAPTERS) == {"london", "csv", "ckplus", "ckplus48", "jaffe", "yale", "oulu", "mmi",
                                      "multipie", "kdef", "rafd", "fei"}
