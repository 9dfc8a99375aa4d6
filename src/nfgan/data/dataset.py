"""A prepared dataset on disk, and its loader.

Layout of a prepared dataset folder (written by ``nfgan prepare``)::

    manifest.csv         one row per aligned face: id, path, subject, expression, pose, yaw_deg, flipped,
                         source_path, dataset (+ any extra columns)
    faces/<id>.png       the aligned 8-bit gray crops (what a person looks at)
    faces.npy            all crops packed, uint8 N x S x S, row i = manifest row i (what programs load)
    landmarks.npy        float32 N x 68 x 2 landmarks in crop pixel coordinates (when available)
    prepare_report.csv   every input that did not make it, with the reason
    prepare_meta.json    the options used and the counts

Why a packed ``.npy`` beside the PNGs: at the Multi-PIE scale (200k faces) opening 200k PNGs costs minutes
per epoch, while one uint8 array (200k x 64 x 64 = 0.8 GB) is memory-mapped in milliseconds and sliced
without copying; PNGs stay for people and for rebuilding the pack (``write_pack``).
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

MANIFEST_COLUMNS = ("id", "path", "subject", "expression", "pose", "yaw_deg", "flipped", "source_path", "dataset")


class PreparedDatasetError(ValueError):
    pass


def read_manifest(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise PreparedDatasetError(f"{path}: no manifest.csv here - is this a folder written by `nfgan prepare`?")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in ("id", "path", "subject", "expression", "pose") if rows and c not in rows[0]]
    if missing:
        raise PreparedDatasetError(f"{path}: manifest lacks columns {missing}")
    return rows


def write_manifest(root: str | Path, rows: Sequence[dict], columns: Sequence[str] = MANIFEST_COLUMNS) -> Path:
    """Write ``root/manifest.csv`` (``columns`` in that order, newline line ends) atomically and then
    ``faces.npy`` (:func:`write_pack`) from the PNGs the rows name. Returns the manifest's path."""
    import io

    from nfgan.atomic import write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = Path(root) / "manifest.csv"
    write_text(path, buf.getvalue())
    write_pack(root)
    return path


def write_pack(root: str | Path) -> Path:
    """(Re)build ``faces.npy`` from ``manifest.csv`` and the PNGs, atomically. Returns its path."""
    from PIL import Image

    from nfgan.atomic import atomic_open

    root = Path(root)
    rows = read_manifest(root / "manifest.csv")
    if not rows:
        raise PreparedDatasetError(f"{root}: manifest.csv has no rows")
    first = np.asarray(Image.open(root / rows[0]["path"]).convert("L"))
    pack = np.empty((len(rows), *first.shape), dtype=np.uint8)
    for i, row in enumerate(rows):
        img = np.asarray(Image.open(root / row["path"]).convert("L"))
        if img.shape != first.shape:
            raise PreparedDatasetError(f"{root / row['path']}: size {img.shape} differs from {first.shape}")
        pack[i] = img
    out = root / "faces.npy"
    with atomic_open(out, "wb") as f:
        np.save(f, pack)
    return out


class ManifestColumns:
    """The manifest's label columns, read once, stored compactly: each categorical column as ``int32`` codes plus
    its distinct values (``subject``, ``expression``, ``pose``, ``flipped``, ``dataset``), ``yaw_deg`` as
    ``float32``. At a million faces this is ~25 MB, against ~1.5 GB for the same rows as dicts, so opening a
    large prepared folder keeps resident memory flat in the faces (they stay in the memory-mapped pack)."""

    CODED = ("subject", "expression", "pose", "flipped", "dataset")

    def __init__(self, path: Path):
        from array import array

        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None) or []
            index = {name: j for j, name in enumerate(header)}
            coded = [c for c in self.CODED if c in index]
            lookups: dict[str, dict[str, int]] = {c: {} for c in coded}
            codes = {c: array("i") for c in coded}
            yaw = array("f")
            j_yaw = index.get("yaw_deg")
            n = 0
            for row in reader:
                for c in coded:
                    j = index[c]
                    v = row[j] if j < len(row) else ""
                    lk = lookups[c]
                    code = lk.get(v)
                    if code is None:
                        code = lk[v] = len(lk)
                    codes[c].append(code)
                if j_yaw is not None:
                    try:
                        yaw.append(float(row[j_yaw]) if j_yaw < len(row) and row[j_yaw] else float("nan"))
                    except ValueError:
                        yaw.append(float("nan"))
                n += 1
        self.header = header
        self.n = n
        self.codes = {c: np.frombuffer(codes[c], dtype=np.int32) if n else np.zeros(0, np.int32) for c in coded}
        self.values = {c: np.asarray(list(lookups[c]), dtype=object) for c in coded}
        self.yaw = np.frombuffer(yaw, dtype=np.float32) if j_yaw is not None and n else None

    def has(self, name: str) -> bool:
        return name in self.codes

    def values_of(self, name: str, rows=None) -> np.ndarray:
        """The column's values (object array of str) for ``rows`` (all rows when ``None``)."""
        codes = self.codes[name] if rows is None else self.codes[name][np.asarray(rows, dtype=np.int64)]
        return self.values[name][codes]

    def mask(self, name: str, accepted) -> np.ndarray:
        """Boolean mask of the rows whose ``name`` is one of ``accepted``; a column the manifest lacks reads as ""."""
        if name not in self.codes:
            return np.full(self.n, "" in accepted, dtype=bool)
        ok = np.asarray([v in accepted for v in self.values[name]], dtype=bool)
        return ok[self.codes[name]] if len(ok) else np.zeros(self.n, dtype=bool)


class PreparedDataset:
    """Aligned faces plus their metadata. ``images`` is a read-only memory map (uint8, N x S x S); the label
    columns are held compactly (:class:`ManifestColumns`); ``records`` (one dict per row) is read on first use."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = self.root / "manifest.csv"
        if not manifest.is_file():
            raise PreparedDatasetError(f"{manifest}: no manifest.csv here - is this a folder written by `nfgan prepare`?")
        self.columns = ManifestColumns(manifest)
        missing = [c for c in ("id", "path", "subject", "expression", "pose")
                   if self.columns.n and c not in self.columns.header]
        if missing:
            raise PreparedDatasetError(f"{manifest}: manifest lacks columns {missing}")
        self._records: list[dict] | None = None
        pack = self.root / "faces.npy"
        if not pack.is_file():
            raise PreparedDatasetError(f"{pack} is missing: run nfgan.data.dataset.write_pack({str(self.root)!r})")
        self.images = np.load(pack, mmap_mode="r")
        if len(self.images) != self.columns.n:
            raise PreparedDatasetError(
                f"{pack}: {len(self.images)} faces but manifest.csv has {self.columns.n} rows; rebuild with write_pack")
        lm = self.root / "landmarks.npy"
        self.landmarks = np.load(lm, mmap_mode="r") if lm.is_file() else None
        meta = self.root / "prepare_meta.json"
        self.meta = json.loads(meta.read_text()) if meta.is_file() else {}

    @property
    def records(self) -> list[dict]:
        """Every manifest row as a dict (parsed on first use; prefer :meth:`column` / :meth:`indices` at scale)."""
        if self._records is None:
            self._records = read_manifest(self.root / "manifest.csv")
        return self._records

    def __len__(self) -> int:
        return self.columns.n

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def column(self, name: str) -> list[str]:
        if self.columns.has(name):
            return self.columns.values_of(name).tolist()
        return [r.get(name, "") for r in self.records]

    def subjects(self) -> list[str]:
        if not len(self):
            return []
        present = np.unique(self.columns.codes["subject"])
        return sorted(str(v) for v in self.columns.values["subject"][present])

    def indices(self, subjects: Iterable[str] | None = None, **equals: str | Sequence[str]) -> np.ndarray:
        """Row indices whose subject is in ``subjects`` (if given) and whose columns match ``equals``
        (a value or a collection of accepted values), e.g. ``indices(expression="neutral", pose="frontal")``."""
        keep = np.ones(len(self), dtype=bool)
        if subjects is not None:
            keep &= self.columns.mask("subject", set(subjects))
        for k, v in equals.items():
            accepted = {v} if isinstance(v, str) else set(v)
            if self.columns.has(k) or k not in (self.columns.header or ()):
                keep &= self.columns.mask(k, accepted)
            else:
                keep &= np.asarray([r.get(k, "") in accepted for r in self.records], dtype=bool)
        return np.flatnonzero(keep).astype(np.int64)

    def by_subject(self, indices: Iterable[int] | None = None) -> dict[str, list[int]]:
        rows = np.arange(len(self)) if indices is None else np.asarray(list(indices), dtype=np.int64)
        groups: dict[str, list[int]] = defaultdict(list)
        if len(rows):
            names = self.columns.values["subject"]
            for i, code in zip(rows.tolist(), self.columns.codes["subject"][rows].tolist()):
                groups[names[code]].append(i)
        return dict(groups)

    def tensor(self, indices: Sequence[int] | np.ndarray):
        """Faces as a float32 torch tensor ``B x 1 x S x S`` in [-1, 1] (the generator's range)."""
        from nfgan.pixels import to_unit_batch

        return to_unit_batch(np.asarray(self.images[np.asarray(indices, dtype=np.int64)]))
