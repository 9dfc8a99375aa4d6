"""Dataset adapters: read each face dataset's own folder layout and labels into ``FaceRecord`` lists.

One small function per dataset, registered in ``ADAPTERS``; ``load(name, root, **options)`` is the entry point
(``nfgan prepare <name> <root> OUT`` calls it). Every adapter returns records with

- ``source_path``: absolute path of the image file,
- ``subject``: identity label, unique within the dataset,
- ``expression``: the shared vocabulary (``schema.EXPRESSIONS``) where the dataset's label has an equivalent,
  otherwise the dataset's own label kept as a lower-case string (Yale ``sleepy``, Multi-PIE ``squint``),
- ``pose``: one of ``schema.POSES``,
- ``dataset``: the adapter name,
- ``extra``: dataset-specific fields (sequence id, frame index, session, lighting, nominal ``yaw_deg``...),
  ``extra["precropped"] = True`` for datasets that arrive as small face crops (CK+48).

Conventions shared by all adapters:

- Pose "left" means the nose points to the image's left (as in the London set's README); where a yaw angle is
  given (``extra["yaw_deg"]``) it is negative for "left" and positive for "right". Datasets whose own naming uses
  "left"/"right" (KDEF) are mapped literally; see each adapter's docstring.
- Records come back sorted by ``source_path`` so the order is the same on every machine.
- Files whose names do not follow the dataset's naming are skipped with one ``warnings.warn`` listing a few of
  them; a root with no recognisable image at all raises ``AdapterError`` saying what layout was expected.
"""
from __future__ import annotations

import csv
import inspect
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable

from nfgan.schema import POSES, FaceRecord, canonical_expression

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".gif"}


class AdapterError(ValueError):
    """A dataset root that is missing or not laid out as its adapter expects (the message says what was expected)."""


# ----------------------------------------------------------------------------------------------------------- helpers

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


def _warn_skipped(name: str, root: Path, skipped: list[Path], expected: str) -> None:
    if skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        warnings.warn(f"{name}: skipped {len(skipped)} file(s) under {root} not named like {expected}: {shown}{more}",
                      stacklevel=3)


def _require(records: list[FaceRecord], name: str, root: Path, expected: str) -> list[FaceRecord]:
    if not records:
        raise AdapterError(f"{name}: no images found under {root} laid out as expected: {expected}")
    return records


def _record(path: Path, subject: str, expression: str, pose: str, dataset: str, **extra) -> FaceRecord:
    return FaceRecord(source_path=str(path.resolve()), subject=subject, expression=expression, pose=pose,
                      dataset=dataset, extra=extra)


# ------------------------------------------------------------------------------------------------------------ london

_LONDON_NAME = re.compile(r"^(\d{3})_(\d{2})\.jpe?g$", re.IGNORECASE)
# view code (01-05; 06-10 are the same views smiling) -> pose
_LONDON_VIEWS = {1: "left_profile", 2: "left_3quarter", 3: "frontal", 4: "right_3quarter", 5: "right_profile"}


def load_london(root: Path) -> list[FaceRecord]:
    """Face Research Lab London Set (DeBruine & Jones 2017): ``SSS_VV.jpg`` anywhere under ``root``.

    Works from the file names alone, so both the figshare layout (all files in one folder) and the shared copy
    (``neutral_front/``, ``smiling_left_profile/``... folders) load the same way. ``SSS`` is the subject; ``VV``
    01 left profile, 02 left 3/4, 03 front, 04 right 3/4, 05 right profile, all neutral; 06-10 the same views
    smiling (-> ``happy``). "left" = nose towards the image's left. ``extra["view"]`` keeps the code.
    Other files (``.tem`` templates, CSVs) are ignored.
    """
    records, skipped = [], []
    for path in _images(root):
        m = _LONDON_NAME.match(path.name)
        code = int(m.group(2)) if m else 0
        if not m or not 1 <= code <= 10:
            skipped.append(path)
            continue
        expression = "neutral" if code <= 5 else "happy"
        pose = _LONDON_VIEWS[(code - 1) % 5 + 1]
        records.append(_record(path, m.group(1), expression, pose, "london", view=code))
    _warn_skipped("london", root, skipped, "SSS_VV.jpg with VV in 01..10")
    return _require(records, "london", root, "files SSS_VV.jpg (e.g. 001_03.jpg), in one folder or in sub-folders")


# --------------------------------------------------------------------------------------------------------------- csv

def _csv_file(root: Path) -> Path:
    if root.is_file():
        return root
    candidate = root / "manifest.csv"
    if not candidate.is_file():
        raise AdapterError(f"csv: {root} is a folder without manifest.csv; give the CSV file itself or a folder "
                           f"that holds manifest.csv (columns path,subject,expression[,pose])")
    return candidate


def load_csv(root: Path) -> list[FaceRecord]:
    """A generic manifest: a CSV file with columns ``path,subject,expression`` and optionally ``pose``.

    ``root`` is the CSV file itself or a folder holding ``manifest.csv``. Paths are relative to the CSV's
    folder (absolute paths are kept). Expressions go through ``canonical_expression``; ``pose`` must be one of
    ``schema.POSES`` (default ``frontal``); a ``dataset`` column, if present, names each record's dataset
    (default ``csv``); ``yaw_deg`` is parsed as a number; every other column is kept in ``extra`` as text.
    Any bad row (missing field, unknown pose, missing image) raises ``AdapterError`` naming file and line.
    """
    csv_path = _csv_file(root)
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("path", "subject", "expression") if c not in columns]
        if missing:
            raise AdapterError(f"csv: {csv_path}: missing column(s) {missing}; expected a header "
                               f"path,subject,expression[,pose] (found {columns or 'no header'})")
        records = []
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            where = f"csv: {csv_path}, line {line}"
            for col in ("path", "subject", "expression"):
                if not row.get(col):
                    raise AdapterError(f"{where}: empty '{col}'")
            pose = row.get("pose") or "frontal"
            if pose not in POSES:
                raise AdapterError(f"{where}: pose '{pose}' is not one of {', '.join(POSES)}")
            path = Path(row["path"])
            path = path if path.is_absolute() else base / path
            if not path.is_file():
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


# ----------------------------------------------------------------------------------------------------------- registry

ADAPTERS: dict[str, Callable[..., list[FaceRecord]]] = {
    "london": load_london,
    "csv": load_csv,
}


def load(name: str, root: str | Path, **options) -> list[FaceRecord]:
    """Read dataset ``name`` (a key of ``ADAPTERS``) from ``root``; records sorted by ``source_path``.

    ``options`` go to the adapter (e.g. ``peak_frames=3`` for ``ckplus``). Raises ``AdapterError`` when the
    name is unknown, the root is missing, or the layout is not recognised.
    """
    if name not in ADAPTERS:
        raise AdapterError(f"unknown dataset '{name}'; known: {', '.join(sorted(ADAPTERS))}")
    root = Path(root).expanduser()
    if not root.exists():
        raise AdapterError(f"{name}: dataset root {root} does not exist")
    adapter = ADAPTERS[name]
    try:
        inspect.signature(adapter).bind(root, **options)
    except TypeError as e:
        raise AdapterError(f"{name}: bad option(s) {sorted(options)}: {e}") from None
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
