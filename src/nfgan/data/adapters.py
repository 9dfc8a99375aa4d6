"""Dataset adapters: read each face dataset's own folder layout and labels into ``FaceRecord`` lists.

One small function per dataset, registered in ``ADAPTERS``; ``load(name, root, **options)`` is the entry point
(``nfgan prepare <name> <root> OUT`` calls it). Every adapter returns records with

- ``source_path``: absolute path of the image file,
- ``subject``: identity label, unique within the dataset,
- ``expression``: the shared vocabulary (``schema.EXPRESSIONS``) where the dataset's label has an equivalent,
  otherwise the dataset's own label kept as a lower-case string (Yale ``sleepy``, Multi-PIE ``squint``),
- ``pose``: one of ``schema.POSES``,
- ``dataset``: the adapter name (both CK+ adapters say ``ckplus``; the csv adapter takes a ``dataset`` column),
- ``extra``: dataset-specific fields (sequence id, frame index, session, lighting, nominal ``yaw_deg``...),
  ``extra["precropped"] = True`` for datasets that arrive as small face crops (CK+48).

Conventions shared by all adapters:

- Pose "left" means the nose points to the image's left (as in the London set's README); where a yaw angle is
  given (``extra["yaw_deg"]``) it is negative for "left" and positive for "right". Datasets whose own naming uses
  "left"/"right" (KDEF) are mapped literally; see each adapter's docstring.
- Records come back sorted by ``source_path`` so the order is the same on every machine.
- Files whose names do not follow the dataset's naming are skipped with one ``warnings.warn`` listing a few of
  them; a root with no recognisable image at all raises ``AdapterError`` saying what layout was expected.
- Every CSV file (manifests, label tables) is read by ``read_csv_table``: UTF-8 (a BOM is allowed), and a file
  that is not UTF-8, has a field beyond ``csv.field_size_limit()`` or a line over 1 MiB raises
  ``AdapterError`` naming the file and the line, never a bare ``UnicodeDecodeError`` or ``csv.Error``.
"""
from __future__ import annotations

import codecs
import csv
import errno
import inspect
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from nfgan.data.schema import POSE_FROM_YAW, POSES, FaceRecord, canonical_expression

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".gif"}


def read_tem_pupils(path: str | Path) -> np.ndarray:
    """The two hand-placed pupil centres (2 x 2, rows x y; image-left eye first) of a WebMorph template
    (``.tem``: a point count, then one ``x y`` line per point; the pupils are points 0 and 1), as the London
    set ships beside each photo, in that photo's pixels."""
    lines = Path(path).read_text().split("\n")
    return np.array([[float(v) for v in lines[i].split()] for i in (1, 2)])


class AdapterError(ValueError):
    """A dataset root that is missing or not laid out as its adapter expects (the message says what was expected)."""


# ----------------------------------------------------------------------------------------------------------- helpers

#: Longest line read from a CSV file, in bytes (a manifest line is a path and a few labels).
MAX_CSV_LINE = 1 << 20


_EOL = re.compile(rb"\r\n|\r|\n")


def _raw_lines(f, limit: int):
    """The lines of the binary file ``f``, ending in \\n, \\r\\n or \\r (as ``open(newline="")`` splits them);
    a line over ``limit`` bytes is yielded cut at about ``limit`` and reading stops (the caller refuses it)."""
    buf, eof = b"", False
    while not eof:
        chunk = f.read(1 << 16)
        eof = not chunk
        buf += chunk
        pos = 0
        for m in _EOL.finditer(buf):
            if m.end() == len(buf) and buf.endswith(b"\r") and not eof:
                break                      # may be the first half of a \r\n split between two reads
            yield buf[pos:m.end()]
            pos = m.end()
        buf = buf[pos:]
        if len(buf) > limit:
            yield buf
            return
    if buf:
        yield buf


def _csv_lines(path: Path, f, name: str):
    """The lines of the binary file ``f`` decoded as UTF-8, one at a time, each checked on its own."""
    for number, raw in enumerate(_raw_lines(f, MAX_CSV_LINE), start=1):
        if len(raw) > MAX_CSV_LINE:
            raise AdapterError(f"{name}: {path}, line {number}: longer than {MAX_CSV_LINE} bytes; not a CSV table?")
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AdapterError(f"{name}: {path}, line {number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                               f"column {e.start + 1}); save the file as UTF-8") from None


def read_csv_table(path: str | os.PathLike, name: str = "csv") -> tuple[list[str], list[tuple[int, dict]]]:
    """A CSV file with a header: (column names, [(line number, {column: value})]), names and values stripped.

    Rows start at line 2 (the number is the row's first line); blank lines are skipped; missing trailing
    values are ``""``, values beyond the header are dropped. Raises ``AdapterError`` naming ``path`` (and the
    line) when the file cannot be read, is not UTF-8 or is not a CSV table (a field larger than
    ``csv.field_size_limit()``, a line longer than ``MAX_CSV_LINE`` bytes). ``name`` starts the messages.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise AdapterError(f"{name}: {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            reader = csv.reader(_csv_lines(path, f, name))
            try:
                header = next(reader, None)
                columns = [c.strip() for c in header or []]
                rows = []
                start = reader.line_num + 1
                for values in reader:
                    if values:
                        values = [v.strip() for v in values[:len(columns)]]
                        values += [""] * (len(columns) - len(values))
                        rows.append((start, {c: v for c, v in zip(columns, values) if c}))
                    start = reader.line_num + 1
            except csv.Error as e:
                raise AdapterError(f"{name}: {path}, line {reader.line_num}: not a readable CSV table ({e})") \
                    from None
    except OSError as e:
        raise AdapterError(f"{name}: cannot read {path}: {e.strerror or e}") from None
    return columns, rows


def _read_label_text(path: Path, name: str, limit: int = 4096) -> str:
    """A small text file (a label), read as UTF-8 (undecodable bytes replaced; the caller checks the value)."""
    if not path.is_file():
        raise AdapterError(f"{name}: {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError as e:
        raise AdapterError(f"{name}: cannot read {path}: {e.strerror or e}") from None


def _path_exists(path: Path) -> bool:
    """False only when nothing is at ``path`` (also a dangling link); other stat errors count as there."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)
    return True


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _images(root: Path) -> list[Path]:
    """All image files under ``root`` (recursive, hidden files and folders left out), sorted."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if _is_image(p):
            out.append(p)
    return sorted(out)


def _warn_skipped(name: str, root: Path, skipped: list[Path], expected: str, what: str = "file(s)") -> None:
    """One warning for everything an adapter left out, naming the first few."""
    if skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        warnings.warn(f"{name}: skipped {len(skipped)} {what} under {root} not {expected}: {shown}{more}",
                      stacklevel=3)


def _require(records: list[FaceRecord], name: str, root: Path, expected: str) -> list[FaceRecord]:
    if not records:
        raise AdapterError(f"{name}: no images found under {root} laid out as expected: {expected}")
    return records


def _record(path: Path, subject: str, expression: str, pose: str, dataset: str, **extra) -> FaceRecord:
    return FaceRecord(source_path=os.path.abspath(path), subject=subject, expression=expression, pose=pose,
                      dataset=dataset, extra=extra)


def _pose_from_yaw(yaw: float) -> str:
    """Bin a yaw angle (degrees, negative = nose to the image's left) into ``schema.POSES``.

    |yaw| < 22.5 frontal, < 67.5 three-quarter, else profile (the midpoints between 0, 45 and 90 degrees).
    """
    side = "left" if yaw < 0 else "right"
    if abs(yaw) < 22.5:
        return "frontal"
    return f"{side}_3quarter" if abs(yaw) < 67.5 else f"{side}_profile"


def _natural_key(path: Path) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _sequence_frames(n: int, neutral_frames: int, peak_frames: int, peak_at: str = "end") -> tuple[list, list]:
    """Indices of the neutral (first) frames and the peak frames of an n-frame sequence, never overlapping.

    ``peak_at="end"`` takes the last frames (CK+, Oulu-CASIA: neutral -> apex); ``"middle"`` takes the frames
    around the middle (MMI: neutral -> apex -> neutral). Short sequences give fewer peak frames, never a
    neutral frame labelled as a peak.
    """
    if neutral_frames < 0 or peak_frames < 0:
        raise AdapterError(f"frame counts must be >= 0 (neutral_frames={neutral_frames}, peak_frames={peak_frames})")
    neutral = list(range(min(neutral_frames, n)))
    available = n - len(neutral)
    take = min(peak_frames, available)
    if peak_at == "end":
        start = n - take
    else:
        start = max(len(neutral), (n - take) // 2)
    peak = list(range(start, start + take))
    return neutral, peak


# ------------------------------------------------------------------------------------------------------------ london

_LONDON_NAME = re.compile(r"^(\d{3})_(\d{2})\.jpe?g$", re.IGNORECASE)
# view code (01-05; 06-10 are the same views smiling) -> pose
_LONDON_VIEWS = {1: "left_profile", 2: "left_3quarter", 3: "frontal", 4: "right_3quarter", 5: "right_profile"}


def _london_info(path: Path) -> dict[str, dict]:
    """Per-subject age/gender/ethnicity from the London set's ``london_faces_info.csv`` (empty when absent)."""
    if not path.exists():
        return {}
    columns, rows = read_csv_table(path, "london")
    if rows and "face_id" not in columns:
        raise AdapterError(f"london: {path}: expected a face_id column (found {columns})")
    names = {"face_age": "age", "face_gender": "gender", "face_eth": "ethnicity"}
    info = {}
    for _line, row in rows:
        extra = {names[k]: v for k, v in row.items() if k in names and v}  # blanks left out
        if extra.get("age", "").isdigit():
            extra["age"] = int(extra["age"])
        info[row["face_id"].strip().zfill(3)] = extra
    return info


def load_london(root: Path) -> list[FaceRecord]:
    """Face Research Lab London Set (DeBruine & Jones 2017): ``SSS_VV.jpg`` anywhere under ``root``.

    Works from the file names alone, so both the figshare layout (all files in one folder) and the shared copy
    (``neutral_front/``, ``smiling_left_profile/``... folders) load the same way. ``SSS`` is the subject; ``VV``
    01 left profile, 02 left 3/4, 03 front, 04 right 3/4, 05 right profile, all neutral; 06-10 the same views
    smiling (-> ``happy``). "left" = nose towards the image's left. ``extra["view"]`` keeps the code; when
    ``root`` holds the set's ``london_faces_info.csv`` (face_id,face_age,face_gender,face_eth), ``extra`` also
    gets ``age``, ``gender`` and ``ethnicity``. Other files (``.tem`` templates) are ignored.
    """
    info = _london_info(root / "london_faces_info.csv")
    records, skipped = [], []
    for path in _images(root):
        m = _LONDON_NAME.match(path.name)
        code = int(m.group(2)) if m else 0
        if not m or not 1 <= code <= 10:
            skipped.append(path)
            continue
        expression = "neutral" if code <= 5 else "happy"
        pose = _LONDON_VIEWS[(code - 1) % 5 + 1]
        records.append(_record(path, m.group(1), expression, pose, "london", view=code, **info.get(m.group(1), {})))
    _warn_skipped("london", root, skipped, "named like SSS_VV.jpg with VV in 01..10")
    return _require(records, "london", root, "files SSS_VV.jpg (e.g. 001_03.jpg), in one folder or in sub-folders")


# --------------------------------------------------------------------------------------------------------------- csv

def _csv_file(root: Path) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise AdapterError(f"csv: {root} is not a regular file (a FIFO or a device?); give the CSV file or its folder")
    candidate = root / "manifest.csv"
    if not candidate.is_file():
        raise AdapterError(f"csv: {root} is a folder without manifest.csv; give the CSV file itself or a folder "
                           f"that holds manifest.csv (columns path,subject,expression[,pose])")
    return candidate


def load_csv(root: Path) -> list[FaceRecord]:
    """A generic manifest: a CSV file with columns ``path,subject,expression`` and optionally ``pose``.

    ``root`` is the CSV file itself or a folder holding ``manifest.csv``. Paths are relative to the CSV's
    folder (absolute paths are kept). Expressions go through ``canonical_expression``; ``pose`` must be one of
    ``schema.POSES``; without a pose column (or with an empty cell) ``nfgan prepare`` records the pose of the
    face's measured yaw (``align.pose_from_yaw``), as ``nfgan normalize`` does for photos; a ``dataset`` column, if present, names each record's dataset
    (default ``csv``); ``yaw_deg`` is parsed as a number; every other column is kept in ``extra`` as text.
    Any bad row (missing field, unknown pose, missing image) and a file that is not a UTF-8 CSV table raise
    ``AdapterError`` naming file and line. A path that exists but is no regular file (a folder, a FIFO) is
    kept: ``nfgan prepare`` reports that one row ("not a regular file") and prepares the others.
    """
    csv_path = _csv_file(root)
    base = csv_path.parent
    columns, rows = read_csv_table(csv_path, "csv")
    missing = [c for c in ("path", "subject", "expression") if c not in columns]
    if missing:
        raise AdapterError(f"csv: {csv_path}: missing column(s) {missing}; expected a header "
                           f"path,subject,expression[,pose] (found {columns or 'no header'})")
    records = []
    for line, row in rows:
        where = f"csv: {csv_path}, line {line}"
        for col in ("path", "subject", "expression"):
            if not row.get(col):
                raise AdapterError(f"{where}: empty '{col}'")
        pose = row.get("pose") or POSE_FROM_YAW      # no pose given: prepare measures it (the yaw)
        if pose not in POSES and pose != POSE_FROM_YAW:
            raise AdapterError(f"{where}: pose '{pose}' is not one of {', '.join(POSES)}")
        if "\0" in row["path"]:
            raise AdapterError(f"{where}: the path contains a NUL character")
        path = Path(row["path"])
        path = path if path.is_absolute() else base / path
        if not _path_exists(path):
            raise AdapterError(f"{where}: image {path} does not exist")
        extra: dict = {k: v for k, v in row.items()
                       if k not in ("path", "subject", "expression", "pose", "dataset") and k}
        if extra.get("yaw_deg"):
            try:
                extra["yaw_deg"] = float(extra["yaw_deg"])
            except ValueError:
                raise AdapterError(f"{where}: yaw_deg '{extra['yaw_deg']}' is not a number") from None
        records.append(_record(path, row["subject"], canonical_expression(row["expression"]), pose,
                               row.get("dataset") or "csv", **extra))
    return _require(records, "csv", csv_path, "at least one data row")


# ------------------------------------------------------------------------------------------------------------- ck+

CKPLUS_CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness",
                7: "surprise"}
_CK_FRAME = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})\.png$", re.IGNORECASE)
_CK_FOLDER_LABELS = {"anger", "contempt", "disgust", "fear", "happy", "happiness", "neutral", "sadness", "surprise"}


def _find_child(root: Path, *names: str) -> Path | None:
    """The first existing ``root/name`` (names may hold a '/'), matched case-insensitively per component."""
    for name in names:
        here = root
        for part in name.split("/"):
            matches = [c for c in here.iterdir() if c.is_dir() and c.name.lower() == part.lower()] \
                if here.is_dir() else []
            if not matches:
                break
            here = matches[0]
        else:
            return here
    return None


def _ckplus_official(images_dir: Path, emotion_dir: Path, peak_frames: int, neutral_frames: int,
                     unlabelled: str) -> list[FaceRecord]:
    records = []
    for seq_dir in sorted(p for p in images_dir.glob("S*/*") if p.is_dir() and not p.name.startswith(".")):
        frames = sorted(p for p in seq_dir.iterdir() if _CK_FRAME.match(p.name))
        if not frames:
            continue
        subject, seq = seq_dir.parent.name, seq_dir.name
        sequence = f"{subject}_{seq}"
        label_files = sorted((emotion_dir / subject / seq).glob("*_emotion.txt"))
        code = None
        if label_files:
            text = _read_label_text(label_files[0], "ckplus").strip()
            try:
                code = int(float(text.split()[0]))
            except (ValueError, IndexError):
                raise AdapterError(f"ckplus: {label_files[0]}: expected one emotion code 0-7, found {text!r}") \
                    from None
            if code not in CKPLUS_CODES:
                raise AdapterError(f"ckplus: {label_files[0]}: emotion code {code} is not one of 0-7")
        if code is None and unlabelled == "skip":
            continue
        neutral, peak = _sequence_frames(len(frames), neutral_frames, peak_frames if code is not None else 0)
        for i, expression in [(i, "neutral") for i in neutral] + [(i, CKPLUS_CODES[code]) for i in peak]:
            frame = int(_CK_FRAME.match(frames[i].name).group(3))
            records.append(_record(frames[i], subject, expression, "frontal", "ckplus", sequence=sequence,
                                   frame=frame, frames_in_sequence=len(frames), labelled=code is not None))
    return records


def _ckplus_folders(root: Path, dataset: str) -> list[FaceRecord]:
    """``<root>/<emotion>/Sxxx_nnn_ffffffff.png`` (CK+48, and the shared ``peak/`` and ``with_neutral/``)."""
    records, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in _CK_FOLDER_LABELS):
        expression = canonical_expression(folder.name)
        for path in sorted(folder.iterdir()):
            if not _is_image(path):
                continue
            m = _CK_FRAME.match(path.name)
            if not m:
                skipped.append(path)
                continue
            records.append(_record(path, m.group(1), expression, "frontal", dataset,
                                   sequence=f"{m.group(1)}_{m.group(2)}", frame=int(m.group(3)), precropped=True))
    _warn_skipped(dataset, root, skipped, "named like Sxxx_nnn_ffffffff.png")
    return records


_CK_EXPECTED = ("either the official CK+ release (cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_ffffffff.png with "
                "Emotion/Sxxx/nnn/Sxxx_nnn_ffffffff_emotion.txt) or one folder per emotion (anger/, contempt/, "
                "disgust/, fear/, happy/ or happiness/, sadness/, surprise/, optionally neutral/) of "
                "Sxxx_nnn_ffffffff.png files as in CK+48")


def load_ckplus(root: Path, peak_frames: int = 3, neutral_frames: int = 1, unlabelled: str = "neutral") \
        -> list[FaceRecord]:
    """Extended Cohn-Kanade (Lucey et al. 2010), in either of its two common layouts (detected from ``root``).

    Official release: ``cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_ffffffff.png`` and
    ``Emotion/Sxxx/nnn/Sxxx_nnn_ffffffff_emotion.txt`` (also found under ``Emotion_labels/Emotion``; ``root``
    may also be ``cohn-kanade-images`` itself when ``Emotion`` is its sibling). Each sequence goes from neutral
    to the peak: its first ``neutral_frames`` frames are ``neutral`` and its last ``peak_frames`` frames
    (default 3, as in CK+48) carry the labelled emotion (codes 0 neutral, 1 anger, 2 contempt, 3 disgust,
    4 fear, 5 happy, 6 sadness, 7 surprise). The 266 sequences without an emotion file give only their neutral
    frames (``unlabelled="neutral"``, default) or nothing (``unlabelled="skip"``). Full 640x490 frames, so not
    pre-cropped. ``extra``: ``sequence`` (``S005_001``), ``frame`` (number in the file name),
    ``frames_in_sequence``, ``labelled``.

    Folder layout (CK+48 and the shared ``ckplus/peak``, ``ckplus/with_neutral``): see ``load_ckplus48``.
    A folder that holds several such sub-sets (the shared ``ckplus/``) is refused with their names, since the
    crops differ and the peak frames would be counted twice.
    """
    if unlabelled not in ("neutral", "skip"):
        raise AdapterError(f"ckplus: unlabelled must be 'neutral' or 'skip', not {unlabelled!r}")
    images_dir = _find_child(root, "cohn-kanade-images")
    if images_dir is None and any(p.is_dir() and re.fullmatch(r"S\d{3}", p.name) for p in root.iterdir()):
        images_dir = root                                       # root is cohn-kanade-images itself
    if images_dir is not None:
        emotion_dir = (_find_child(images_dir.parent, "Emotion", "Emotion_labels/Emotion")
                       or _find_child(root, "Emotion", "Emotion_labels/Emotion"))
        if emotion_dir is None:
            raise AdapterError(f"ckplus: found {images_dir} but no Emotion/ folder beside it; expected {_CK_EXPECTED}")
        records = _ckplus_official(images_dir, emotion_dir, peak_frames, neutral_frames, unlabelled)
        return _require(records, "ckplus", root, _CK_EXPECTED)
    if any(p.is_dir() and p.name.lower() in _CK_FOLDER_LABELS for p in root.iterdir()):
        return _require(_ckplus_folders(root, "ckplus"), "ckplus", root, _CK_EXPECTED)
    subsets = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and any(c.is_dir() and c.name.lower() in _CK_FOLDER_LABELS for c in p.iterdir()))
    if subsets:
        raise AdapterError(f"ckplus: {root} holds CK+ sub-sets in folders ({', '.join(subsets)}) rather than the "
                           f"images; give one of them, e.g. {root / subsets[0]}")
    raise AdapterError(f"ckplus: layout of {root} not recognised; expected {_CK_EXPECTED}")


def load_ckplus48(root: Path) -> list[FaceRecord]:
    """CK+48 (and the shared ``ckplus/peak``, ``ckplus/with_neutral``): ``<root>/<emotion>/Sxxx_nnn_ffffffff.png``.

    The folder name is the label (``happiness`` -> ``happy``; a ``neutral/`` folder is read too); subject and
    sequence come from the file name. These are 48x48 face crops already, so ``extra["precropped"] = True``;
    ``extra`` also has ``sequence`` and ``frame``. Records are named dataset ``ckplus`` like the official
    layout's, so both group together downstream.
    """
    records = _ckplus_folders(root, "ckplus")
    return _require(records, "ckplus48", root, "one folder per emotion (anger/, contempt/, disgust/, fear/, "
                    "happy/, sadness/, surprise/) of Sxxx_nnn_ffffffff.png files")


# ------------------------------------------------------------------------------------------------------------- jaffe

_JAFFE_NAME = re.compile(r"^([A-Z]{2})\.(AN|DI|FE|HA|NE|SA|SU)(\d+)\.(\d+)\.(tiff?|png|jpe?g|bmp)$", re.IGNORECASE)


def load_jaffe(root: Path) -> list[FaceRecord]:
    """JAFFE (Lyons et al. 1998): ``KA.AN1.39.tiff`` (or ``.png``) = subject ``KA``, expression code + take
    number, running image index. Codes AN anger, DI disgust, FE fear, HA happy, NE neutral, SA sadness,
    SU surprise. All frontal. ``extra``: ``take``, ``index``. ``README`` and other files are ignored.
    """
    records, skipped = [], []
    for path in _images(root):
        m = _JAFFE_NAME.match(path.name)
        if not m:
            skipped.append(path)
            continue
        records.append(_record(path, m.group(1).upper(), canonical_expression(m.group(2)), "frontal", "jaffe",
                               take=int(m.group(3)), index=int(m.group(4))))
    _warn_skipped("jaffe", root, skipped, "named like SS.XXn.i.tiff (e.g. KA.AN1.39.tiff)")
    return _require(records, "jaffe", root, "files SS.XXn.i.tiff/.png, e.g. KA.AN1.39.tiff")


# -------------------------------------------------------------------------------------------------------------- yale

# Yale file label -> expression; the non-expression variants of a neutral face keep their own label.
YALE_LABELS = {
    "normal": "neutral", "happy": "happy", "sad": "sadness", "surprised": "surprise", "sleepy": "sleepy",
    "wink": "wink", "glasses": "neutral_glasses", "noglasses": "neutral_noglasses",
    "leftlight": "neutral_leftlight", "centerlight": "neutral_centerlight", "rightlight": "neutral_rightlight",
}
_YALE_NAME = re.compile(r"^(subject\d{2})\.([a-z]+)(\.(gif|png|jpe?g|bmp|pgm|tiff?))?$", re.IGNORECASE)


def load_yale(root: Path) -> list[FaceRecord]:
    """Yale face database (Belhumeur et al. 1997): ``subject01.happy`` (original, GIF data without a file
    extension) or ``subject01.happy.png`` (converted).

    Labels: normal -> neutral, happy, sad -> sadness, surprised -> surprise; ``sleepy`` and ``wink`` are kept
    as their own expressions; the variants of a neutral face are kept as ``neutral_<variant>`` (glasses,
    noglasses, leftlight, centerlight, rightlight), so they stay apart from the plain neutral face and out of
    the FER classes, as in the shared copy's manifest. ``extra["variant"]`` holds the file's own label.
    A file whose name carries no known label (some copies have a ``subject01.gif``) is skipped with a warning.
    """
    records, skipped = [], []
    for path in sorted(p for p in root.rglob("subject*") if p.is_file() and not p.name.startswith(".")):
        m = _YALE_NAME.match(path.name)
        if not m or m.group(2).lower() not in YALE_LABELS:
            skipped.append(path)
            continue
        label = m.group(2).lower()
        records.append(_record(path, m.group(1).lower(), YALE_LABELS[label], "frontal", "yale", variant=label))
    _warn_skipped("yale", root, skipped, f"named like subjectNN.<label> with label in {sorted(YALE_LABELS)}")
    return _require(records, "yale", root, "files subjectNN.<label>[.png], e.g. subject01.happy")


# ------------------------------------------------------------------------------------------------------ oulu-casia

_OULU_EXPRESSIONS = {"anger", "disgust", "fear", "happiness", "happy", "sadness", "surprise"}


def load_oulu(root: Path, peak_frames: int = 3, neutral_frames: int = 1) -> list[FaceRecord]:
    """Oulu-CASIA NIR&VIS (Zhao et al. 2011): ``[<modality>/]<lighting>/<Pxxx>/<Expression>/<frame>.jpeg``,
    e.g. ``VL/Strong/P001/Anger/000.jpeg``; ``root`` may be any folder above the subject folders.

    Each sequence goes from neutral to the apex: the first ``neutral_frames`` frames are ``neutral``, the last
    ``peak_frames`` (default 3) carry the folder's expression (Anger, Disgust, Fear, Happiness, Sadness,
    Surprise). All frontal. ``extra``: ``lighting`` (Strong/Weak/Dark, the folder above the subject, "" when
    absent), ``modality`` (VL/NI when that folder is present), ``sequence``, ``frame`` (index in the sorted
    sequence), ``frames_in_sequence``. The same person under several lightings keeps one subject id.
    """
    sequences: dict[Path, list[Path]] = {}
    for path in _images(root):
        rel = path.relative_to(root).parts
        if len(rel) >= 3 and re.fullmatch(r"P\d+", rel[-3], re.IGNORECASE) \
                and rel[-2].lower() in _OULU_EXPRESSIONS:
            sequences.setdefault(path.parent, []).append(path)
    records = []
    for seq_dir, frames in sorted(sequences.items()):
        frames.sort(key=_natural_key)
        rel = seq_dir.relative_to(root).parts
        lighting = rel[-3] if len(rel) >= 3 else ""
        modality = rel[-4] if len(rel) >= 4 and rel[-4].upper() in ("VL", "NI") else ""
        subject = rel[-2].upper()
        neutral, peak = _sequence_frames(len(frames), neutral_frames, peak_frames)
        expression = canonical_expression(rel[-1])
        for i, label in [(i, "neutral") for i in neutral] + [(i, expression) for i in peak]:
            records.append(_record(frames[i], subject, label, "frontal", "oulu", lighting=lighting,
                                   modality=modality, sequence="/".join(rel), frame=i,
                                   frames_in_sequence=len(frames)))
    return _require(records, "oulu", root, "[VL|NI/]<Strong|Weak|Dark>/Pxxx/<Anger|Disgust|Fear|Happiness|"
                    "Sadness|Surprise>/<frame>.jpeg")


# --------------------------------------------------------------------------------------------------------------- mmi

# Emotion codes of MMI's session metadata (<Metatag Name="Emotion" Value="n"/>).
MMI_CODES = {1: "anger", 2: "disgust", 3: "fear", 4: "happy", 5: "sadness", 6: "surprise"}
_MMI_LABEL_FILES = ("labels.csv", "mmi_labels.csv")


def _mmi_labels_from_csv(csv_path: Path) -> dict[str, tuple[str, str]]:
    columns, rows = read_csv_table(csv_path, "mmi")
    if not {"session", "subject", "expression"} <= set(columns):
        raise AdapterError(f"mmi: {csv_path}: expected columns session,subject,expression (found {columns})")
    out = {}
    for line, row in rows:
        if not all(row.get(c) for c in ("session", "subject", "expression")):
            raise AdapterError(f"mmi: {csv_path}, line {line}: session, subject and expression must be set")
        out[row["session"]] = (row["subject"], canonical_expression(row["expression"]))
    return out


def _mmi_labels_from_xml(session_dir: Path) -> tuple[str | None, str | None]:
    """(subject, expression) from the session folder's XML files; either may be None."""
    import xml.etree.ElementTree as ET

    subject = expression = None
    for xml_path in sorted(p for p in session_dir.glob("*.xml") if p.is_file()):
        try:
            tree = ET.parse(xml_path)
        except ET.ParseError as e:
            raise AdapterError(f"mmi: {xml_path}: not valid XML ({e})") from None
        for el in tree.iter():
            attrs = {k.lower(): v for k, v in el.attrib.items()}
            name = attrs.get("name", "").lower()
            if name == "emotion" and "value" in attrs:
                try:
                    code = int(float(attrs["value"]))
                except ValueError:
                    raise AdapterError(f"mmi: {xml_path}: Emotion value {attrs['value']!r} is not a code 1-6") \
                        from None
                if code in MMI_CODES:
                    expression = MMI_CODES[code]
            if subject is None:
                if el.tag.lower() == "subject" and "id" in attrs:
                    subject = attrs["id"]
                elif "subjectid" in attrs:
                    subject = attrs["subjectid"]
                elif name in ("subject", "subjectid") and "value" in attrs:
                    subject = attrs["value"]
    return subject, expression


def load_mmi(root: Path, peak_frames: int = 3, neutral_frames: int = 1) -> list[FaceRecord]:
    """MMI Facial Expression Database (Pantic et al. 2005), as session folders of images.

    MMI ships videos; this adapter reads sessions whose frames were extracted to images (or the stills), one
    folder per session: ``<root>/[Sessions/]<session id>/*.png|jpg`` (frames in natural name order).
    Assumptions, since the release's metadata format varies between downloads:

    - Labels come from ``labels.csv`` (or ``mmi_labels.csv``) in ``root`` with columns
      ``session,subject,expression`` (``session`` = folder name) when present - the reliable route.
    - Otherwise from the XML files in each session folder: the expression from an element with
      ``Name="Emotion" Value="n"`` (1 anger, 2 disgust, 3 fear, 4 happy, 5 sadness, 6 surprise); the subject
      from a ``<subject id=...>`` element, a ``subjectId`` attribute or a ``Name="Subject"`` metatag, else from
      an ``Sxxx`` prefix of a file name in the folder (MMI media are named ``S001-001.avi``).
    - Sessions without an emotion label (AU-only sessions) are skipped with a warning.
    - MMI sequences go neutral -> apex -> neutral: the first ``neutral_frames`` frames are ``neutral`` and the
      ``peak_frames`` frames around the middle carry the emotion; a one-image session is its emotion's image.

    All frontal (MMI's profile-view sessions are not told apart). ``extra``: ``session``, ``frame`` (index in
    the sorted session), ``frames_in_session``.
    """
    base = root / "Sessions" if (root / "Sessions").is_dir() else root
    label_file = next((root / n for n in _MMI_LABEL_FILES if (root / n).is_file()), None)
    csv_labels = _mmi_labels_from_csv(label_file) if label_file else None
    records, unlabelled = [], []
    for session_dir in sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")),
                              key=_natural_key):
        frames = sorted((p for p in session_dir.iterdir() if _is_image(p)), key=_natural_key)
        if not frames:
            continue
        if csv_labels is not None:
            subject, expression = csv_labels.get(session_dir.name, (None, None))
        else:
            subject, expression = _mmi_labels_from_xml(session_dir)
            if subject is None:
                m = next((re.match(r"^(S\d+)[-_]", p.name) for p in sorted(session_dir.iterdir())
                          if re.match(r"^(S\d+)[-_]", p.name)), None)
                subject = m.group(1) if m else None
        if subject is None or expression is None:
            unlabelled.append(session_dir)
            continue
        if len(frames) == 1:
            picks = [(0, expression)]
        else:
            neutral, peak = _sequence_frames(len(frames), neutral_frames, peak_frames, peak_at="middle")
            picks = [(i, "neutral") for i in neutral] + [(i, expression) for i in peak]
        for i, label in picks:
            records.append(_record(frames[i], subject, label, "frontal", "mmi", session=session_dir.name,
                                   frame=i, frames_in_session=len(frames)))
    _warn_skipped("mmi", base, unlabelled, "labelled (no labels.csv row, or no Emotion metatag / subject in its XML)",
                  what="session folder(s)")
    return _require(records, "mmi", root, "session folders of frames (<root>/[Sessions/]<id>/*.png) labelled by "
                    "labels.csv (session,subject,expression) or by the sessions' XML (Emotion metatag)")


# --------------------------------------------------------------------------------------------------------- multi-pie

# camera -> yaw in degrees (Gross et al. 2010, Fig. 2): 13 cameras at head height 15 degrees apart.
MULTIPIE_YAW = {"11_0": -90, "12_0": -75, "09_0": -60, "08_0": -45, "13_0": -30, "14_0": -15, "05_1": 0,
                "05_0": 15, "04_1": 30, "19_0": 45, "20_0": 60, "01_0": 75, "24_0": 90}
MULTIPIE_ELEVATED = {"08_1", "19_1"}       # above the head, looking down: pose "other"
# (session, recording) -> expression, per the Multi-PIE documentation
MULTIPIE_EXPRESSIONS = {
    (1, 1): "neutral", (1, 2): "happy",                          # smile
    (2, 1): "neutral", (2, 2): "surprise", (2, 3): "squint",
    (3, 1): "neutral", (3, 2): "happy", (3, 3): "disgust",
    (4, 1): "neutral", (4, 2): "neutral", (4, 3): "scream",
}
_MULTIPIE_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.png$", re.IGNORECASE)


def load_multipie(root: Path) -> list[FaceRecord]:
    """CMU Multi-PIE (Gross et al. 2010): ``[data/]sessionNN/multiview/<subject>/<recording>/<camera>/
    <subject>_<session>_<recording>_<camera without '_'>_<illumination>.png``, e.g.
    ``session01/multiview/001/01/05_1/001_01_01_051_07.png``.

    Labels come from the file name (checked against the camera folder): expression per session/recording
    (session 1: neutral, smile; 2: neutral, surprise, squint; 3: neutral, smile, disgust; 4: neutral,
    neutral, scream), smile -> ``happy``, ``squint`` and ``scream`` kept. Camera -> yaw: 11_0 -90, 12_0 -75,
    09_0 -60, 08_0 -45, 13_0 -30, 14_0 -15, 05_1 0, 05_0 +15, 04_1 +30, 19_0 +45, 20_0 +60, 01_0 +75,
    24_0 +90 (sign as listed in the project brief; taken as negative = "left"), binned into POSES by
    ``_pose_from_yaw``; the elevated cameras 08_1 and 19_1 give pose ``other`` with no yaw. ``extra``:
    ``session``, ``recording``, ``camera``, ``illumination`` (0-19), ``yaw_deg``.
    """
    records, skipped = [], []
    for path in _images(root):
        m = _MULTIPIE_NAME.match(path.name)
        if not m:
            skipped.append(path)
            continue
        subject, session, recording, cam, illum = m.groups()
        camera = f"{cam[:2]}_{cam[2]}"
        key = (int(session), int(recording))
        if key not in MULTIPIE_EXPRESSIONS or (camera not in MULTIPIE_YAW and camera not in MULTIPIE_ELEVATED):
            skipped.append(path)
            continue
        if path.parent.name != camera:
            raise AdapterError(f"multipie: {path}: file name says camera {camera} but it is in folder "
                               f"{path.parent.name}/")
        extra = dict(session=int(session), recording=int(recording), camera=camera, illumination=int(illum))
        if camera in MULTIPIE_YAW:
            extra["yaw_deg"] = float(MULTIPIE_YAW[camera])
            pose = _pose_from_yaw(MULTIPIE_YAW[camera])
        else:
            pose = "other"
        records.append(_record(path, subject, MULTIPIE_EXPRESSIONS[key], pose, "multipie", **extra))
    _warn_skipped("multipie", root, skipped,
                  "named like SSS_NN_RR_CCC_II.png with a known session/recording and camera")
    return _require(records, "multipie", root, "sessionNN/multiview/SSS/RR/CC_C/SSS_NN_RR_CCC_II.png")


# -------------------------------------------------------------------------------------------------------------- kdef

_KDEF_NAME = re.compile(r"^([AB])([FM])(\d{2})(AF|AN|DI|HA|NE|SA|SU)(FL|HL|S|HR|FR)\.jpe?g$", re.IGNORECASE)
KDEF_EXPRESSIONS = {"AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happy", "NE": "neutral",
                    "SA": "sadness", "SU": "surprise"}
KDEF_VIEWS = {"FL": -90, "HL": -45, "S": 0, "HR": 45, "FR": 90}


def load_kdef(root: Path) -> list[FaceRecord]:
    """Karolinska Directed Emotional Faces (Lundqvist et al. 1998): ``AF01/AF01ANS.JPG`` = session A/B,
    sex F/M, person 01-35, expression (AF afraid, AN angry, DI disgusted, HA happy, NE neutral, SA sad,
    SU surprised), view (FL full left profile, HL half left, S straight, HR half right, FR full right).

    Subject = sex + number (``F01``; sessions A and B are the same person, kept in ``extra["session"]``).
    Views are mapped literally: FL/HL -> left_profile/left_3quarter, HR/FR -> right_*, with nominal
    ``extra["yaw_deg"]`` -90/-45/0/45/90 (KDEF's "left" is taken to match this project's convention; flip
    with the pose if your copy proves otherwise). The few misnamed files of the release are skipped with a
    warning.
    """
    records, skipped = [], []
    for path in _images(root):
        m = _KDEF_NAME.match(path.name)
        if not m:
            skipped.append(path)
            continue
        session, sex, number, expr, view = (g.upper() for g in m.groups())
        yaw = KDEF_VIEWS[view]
        records.append(_record(path, f"{sex}{number}", KDEF_EXPRESSIONS[expr], _pose_from_yaw(yaw), "kdef",
                               session=session, sex=sex, view=view, yaw_deg=float(yaw)))
    _warn_skipped("kdef", root, skipped, "named like [AB][FM]NNXX<view>.JPG (e.g. AF01ANS.JPG)")
    return _require(records, "kdef", root, "files like AF01/AF01ANS.JPG")


# -------------------------------------------------------------------------------------------------------------- rafd

_RAFD_NAME = re.compile(r"^Rafd(\d{3})_(\d+)_([A-Za-z]+)_(male|female)_([a-z]+)_(frontal|left|right)\.(jpe?g|png)$",
                        re.IGNORECASE)


def load_rafd(root: Path) -> list[FaceRecord]:
    """Radboud Faces Database (Langner et al. 2010): ``Rafd090_01_Caucasian_female_angry_frontal.jpg`` =
    camera angle, person, ethnicity, gender, expression, gaze direction.

    Expressions: angry, contemptuous, disgusted, fearful, happy, neutral, sad, surprised (-> shared
    vocabulary). Camera 090 is frontal; yaw = angle - 90 (000 -> -90 left profile, 045 -> -45 left 3/4,
    135 -> right 3/4, 180 -> right profile; the side is an assumption, the release does not say which side
    camera 000 stands). ``extra``: ``camera``, ``yaw_deg``, ``ethnicity``, ``gender``, ``gaze``.
    """
    records, skipped = [], []
    for path in _images(root):
        m = _RAFD_NAME.match(path.name)
        if not m:
            skipped.append(path)
            continue
        angle, person, ethnicity, gender, expression, gaze = m.groups()[:6]
        yaw = int(angle) - 90
        if abs(yaw) > 90:
            skipped.append(path)
            continue
        records.append(_record(path, person, canonical_expression(expression), _pose_from_yaw(yaw), "rafd",
                               camera=int(angle), yaw_deg=float(yaw), ethnicity=ethnicity.lower(),
                               gender=gender.lower(), gaze=gaze.lower()))
    _warn_skipped("rafd", root, skipped, "named like RafdAAA_NN_<ethnicity>_<gender>_<expression>_<gaze>.jpg")
    return _require(records, "rafd", root, "files like Rafd090_01_Caucasian_female_angry_frontal.jpg")


# --------------------------------------------------------------------------------------------------------------- fei

# FEI image number -> (expression, nominal yaw): 01-10 a head rotation from one profile to the other,
# 11 frontal neutral, 12 frontal smiling, 13-14 frontal neutral under reduced lighting.
FEI_ROTATION_YAW = {1: -90, 2: -72, 3: -54, 4: -36, 5: -18, 6: 18, 7: 36, 8: 54, 9: 72, 10: 90}
_FEI_NAME = re.compile(r"^(\d{1,3})-(\d{2})\.jpe?g$", re.IGNORECASE)
_FEI_ALIGNED = re.compile(r"^(\d{1,3})([ab])\.jpe?g$", re.IGNORECASE)


def load_fei(root: Path) -> list[FaceRecord]:
    """FEI Face Database (Thomaz & Giraldi 2010), 200 people, both distributed forms:

    - originals ``1-01.jpg`` .. ``200-14.jpg``: 01-10 a rotation from profile to profile, taken as nominal
      yaw -90, -72, -54, -36, -18, +18, +36, +54, +72, +90 (evenly spread over the documented ~180 degrees;
      01 taken as "left"), neutral; 11 frontal neutral; 12 frontal smiling (``happy``); 13 and 14 frontal
      neutral with reduced lighting, kept apart as ``neutral_lowlight`` like Yale's lighting variants.
    - ``frontalimages_manuallyaligned``: ``1a.jpg`` neutral, ``1b.jpg`` smiling, both frontal and aligned.

    Subject = the person number without leading zeros. ``extra``: ``image`` (01-14) and ``yaw_deg``, or
    ``aligned=True`` for the manually aligned set.
    """
    records, skipped = [], []
    for path in _images(root):
        m, a = _FEI_NAME.match(path.name), _FEI_ALIGNED.match(path.name)
        if m and 1 <= int(m.group(2)) <= 14:
            subject, image = str(int(m.group(1))), int(m.group(2))
            yaw = FEI_ROTATION_YAW.get(image, 0)
            expression = {12: "happy", 13: "neutral_lowlight", 14: "neutral_lowlight"}.get(image, "neutral")
            records.append(_record(path, subject, expression, _pose_from_yaw(yaw), "fei", image=image,
                                   yaw_deg=float(yaw)))
        elif a:
            expression = "neutral" if a.group(2).lower() == "a" else "happy"
            records.append(_record(path, str(int(a.group(1))), expression, "frontal", "fei", aligned=True,
                                   yaw_deg=0.0))
        else:
            skipped.append(path)
    _warn_skipped("fei", root, skipped, "named like N-II.jpg (II 01-14) or Na.jpg / Nb.jpg")
    return _require(records, "fei", root, "files N-II.jpg (e.g. 1-01.jpg .. 200-14.jpg) or Na.jpg/Nb.jpg")


# ----------------------------------------------------------------------------------------------------------- registry

ADAPTERS: dict[str, Callable[..., list[FaceRecord]]] = {
    "london": load_london,
    "csv": load_csv,
    "ckplus": load_ckplus,
    "ckplus48": load_ckplus48,
    "jaffe": load_jaffe,
    "yale": load_yale,
    "oulu": load_oulu,
    "mmi": load_mmi,
    "multipie": load_multipie,
    "kdef": load_kdef,
    "rafd": load_rafd,
    "fei": load_fei,
}


def _coerce(name: str, key: str, value, default):
    """Options given as text (from a command line or YAML) take the type of the option's default."""
    if not isinstance(value, str) or isinstance(default, str) or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        if value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.strip().lower() in ("1", "true", "yes", "on")
    else:
        try:
            return type(default)(value)
        except ValueError:
            pass
    raise AdapterError(f"{name}: option {key}={value!r} must be {type(default).__name__}")


def load(name: str, root: str | Path, **options) -> list[FaceRecord]:
    """Read dataset ``name`` (a key of ``ADAPTERS``) from ``root``; records sorted by ``source_path``.

    ``options`` go to the adapter (e.g. ``peak_frames=3`` for ``ckplus``; text values such as ``"3"`` are
    converted to the option's type). Raises ``AdapterError`` when the
    name is unknown, the root is missing, or the layout is not recognised.
    """
    if name not in ADAPTERS:
        raise AdapterError(f"unknown dataset '{name}'; known: {', '.join(sorted(ADAPTERS))}")
    root = Path(root).expanduser()
    if not root.exists():
        raise AdapterError(f"{name}: dataset root {root} does not exist")
    if not root.is_dir() and name != "csv":
        raise AdapterError(f"{name}: dataset root {root} is a file; give the dataset's folder")
    adapter = ADAPTERS[name]
    signature = inspect.signature(adapter)
    try:
        signature.bind(root, **options)
    except TypeError as e:
        raise AdapterError(f"{name}: bad option(s) {sorted(options)}: {e}") from None
    options = {k: _coerce(name, k, v, signature.parameters[k].default) for k, v in options.items()}
    records = adapter(root.resolve(), **options)
    return sorted(records, key=lambda r: r.source_path)


def summary(records: Iterable[FaceRecord]) -> dict[str, dict[str, int]]:
    """Counts per subject/expression/pose (handy for logs and tests)."""
    out: dict[str, dict[str, int]] = {"subject": {}, "expression": {}, "pose": {}}
    for r in records:
        for key in out:
            value = getattr(r, key)
            out[key][value] = out[key].get(value, 0) + 1
    return out
