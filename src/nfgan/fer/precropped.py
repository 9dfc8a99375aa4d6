"""Turn an already cropped face set (CK+48, JAFFE crops, ...) into a prepared dataset folder.

``nfgan prepare`` detects, aligns and crops faces from photos. Some benchmark sets ship pre-cropped and
pre-aligned instead (CK+ ``peak/`` is the "CK+48" set: 48x48 gray crops of the last three frames of each
sequence); running a detector on a 48 px crop fails, so these are handled explicitly here: each image is
converted to gray and resized to ``size`` (64) with PIL bicubic interpolation - no detection, no landmark
alignment (``landmarks.npy`` is not written), and ``prepare_meta.json`` records ``"precropped": true``.
The result has the same layout as ``nfgan prepare`` output (see ``nfgan.dataset``), so the FER code cannot
tell the difference. Do not commit the output of research-licensed sets (CK+, JAFFE) to the repository.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from nfgan.atomic import save_image, write_text
from nfgan.dataset import PreparedDatasetError, write_manifest
from nfgan.schema import canonical_expression


def prepare_precropped(manifest: str | Path, out: str | Path, size: int = 64, prefix: str = "",
                       dataset: str = "") -> Path:
    """Resize every image listed in ``manifest`` (columns path, subject, expression[, pose]) whose path starts
    with ``prefix`` into ``out`` as a prepared dataset. Returns ``out``."""
    manifest = Path(manifest)
    out = Path(out)
    if not manifest.is_file():
        raise PreparedDatasetError(f"{manifest}: manifest not found")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].startswith(prefix)]
    if not rows:
        raise PreparedDatasetError(f"{manifest}: no rows with a path starting with {prefix!r}")
    src_root = manifest.parent
    out_rows = []
    for i, r in enumerate(rows):
        src = src_root / r["path"]
        try:
            img = Image.open(src).convert("L")
        except (OSError, ValueError) as e:
            raise PreparedDatasetError(f"{src}: cannot read image ({e})") from None
        if img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        rid = f"{i:06d}"
        save_image(out / "faces" / f"{rid}.png", np.asarray(img))
        out_rows.append({"id": rid, "path": f"faces/{rid}.png", "subject": r["subject"],
                         "expression": canonical_expression(r["expression"]), "pose": r.get("pose") or "frontal",
                         "yaw_deg": "0", "flipped": "0", "source_path": str(src.resolve()),
                         "dataset": dataset or src_root.name})
    write_manifest(out, out_rows)
    write_text(out / "prepare_meta.json", json.dumps(
        {"precropped": True, "source_manifest": str(manifest.resolve()), "prefix": prefix, "size": size,
         "resize": "PIL bicubic", "aligned_by": "source dataset (no detection/alignment here)",
         "count": len(out_rows)}, indent=1) + "\n")
    return out
