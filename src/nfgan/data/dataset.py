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


class PreparedDataset:
    """Aligned faces plus their metadata. ``images`` is a read-only memory map (uint8, N x S x S)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.records = read_manifest(self.root / "manifest.csv")
        pack = self.root / "faces.npy"
        if not pack.is_file():
            raise PreparedDatasetError(f"{pack} is missing: run nfgan.data.dataset.write_pack({str(self.root)!r})")
        self.images = np.load(pack, mmap_mode="r")
        if len(self.images) != len(self.records):
            raise PreparedDatasetError(
                f"{pack}: {len(self.images)} faces but manifest.csv has {len(self.records)} rows; rebuild with write_pack")
        lm = self.root / "landmarks.npy"
        self.landmarks = np.load(lm, mmap_mode="r") if lm.is_file() else None
        meta = self.root / "prepare_meta.json"
        self.meta = json.loads(meta.read_text()) if meta.is_file() else {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def column(self, name: str) -> list[str]:
        return [r.get(name, "") for r in self.records]

    def subjects(self) -> list[str]:
        return sorted(set(self.column("subject")))

    def indices(self, subjects: Iterable[str] | None = None, **equals: str | Sequence[str]) -> np.ndarray:
        """Row indices whose subject is in ``subjects`` (if given) and whose columns match ``equals``
        (a value or a collection of accepted values), e.g. ``indices(expression="neutral", pose="frontal")``."""
        keep_subjects = None if subjects is None else set(subjects)
        accepted = {k: ({v} if isinstance(v, str) else set(v)) for k, v in equals.items()}
        out = [i for i, r in enumerate(self.records)
               if (keep_subjects is None or r["subject"] in keep_subjects)
               and all(r.get(k, "") in vals for k, vals in accepted.items())]
        return np.asarray(out, dtype=np.int64)

    def by_subject(self, indices: Iterable[int] | None = None) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i in (range(len(self)) if indices is None else indices):
            groups[self.records[int(i)]["subject"]].append(int(i))
        return dict(groups)

    def tensor(self, indices: Sequence[int] | np.ndarray):
        """Faces as a float32 torch tensor ``B x 1 x S x S`` in [-1, 1] (the generator's range)."""
        from nfgan.pixels import to_unit_batch

        return to_unit_batch(np.asarray(self.images[np.asarray(indices, dtype=np.int64)]))
