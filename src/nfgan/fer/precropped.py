"""Turn an already cropped face set (CK+48, JAFFE crops, ...) into a prepared dataset folder.

``nfgan prepare`` detects, aligns and crops faces from photos. Some benchmark sets ship pre-cropped and
pre-aligned instead (CK+ ``peak/`` is the "CK+48" set: 48x48 gray crops of the last three frames of each
sequence); running a detector on a 48 px crop fails, so these are handled explicitly here: each image is
converted to gray and resized to ``size`` (64) with PIL bicubic interpolation - no detection, no landmark
alignment (``landmarks.npy`` is not written), and ``prepare_meta.json`` records ``"precropped": true``.
The result has the same layout as ``nfgan prepare`` output (see ``nfgan.data.dataset``), so the FER code cannot
tell the difference. Do not commit the output of research-licensed sets (CK+, JAFFE) to the repository.

Faces cut in two different ways must not be mixed in one training set (the net would learn the framing).
``framing`` names how a prepared set was cut, and ``reframe_dataset`` (``nfgan fer reframe``) moves the faces of
one set into another set's framing: both are related to nfgan's landmark template - aligned sets are in it
already, pre-cropped faces are aligned to it (``FaceAligner.align_precropped``) - and the target set's mean
crop -> template transform is inverted and composed with each face's own.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from nfgan.atomic import save_image, write_text
from nfgan.data.dataset import MANIFEST_COLUMNS, PreparedDataset, PreparedDatasetError, write_manifest
from nfgan.data.images import ImageReadError, read_gray_image
from nfgan.data.schema import canonical_expression


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
            img = read_gray_image(src)
        except ImageReadError as e:
            raise PreparedDatasetError(f"cannot read image: {e}") from None
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


TEMPLATE_FRAMING = "nfgan landmark template"
PAD = 16   # px of edge replication around a face before it is warped into another framing


def framing(dataset: PreparedDataset) -> str:
    """How the faces of a prepared set were cut: nfgan's landmark template (``nfgan prepare``, default
    padding), the framing of another set they were moved into (``reframe_dataset``), or the source's own
    pre-cropped framing."""
    meta = dataset.meta
    if meta.get("framed_like"):
        return str(meta["framed_like"])
    if meta.get("precropped"):
        return f"pre-cropped ({meta.get('source_manifest', dataset.root)}, prefix {meta.get('prefix', '')!r})"
    from nfgan.data.align import DEFAULT_PADDING

    padding = (meta.get("options") or {}).get("padding", DEFAULT_PADDING)
    return TEMPLATE_FRAMING if padding == DEFAULT_PADDING else f"{TEMPLATE_FRAMING}, padding {padding}"


def mean_frame(aligner, faces: np.ndarray) -> np.ndarray:
    """Mean crop -> template transform (2 x 3) over the pre-cropped ``faces`` whose landmarks were found."""
    mats = [f.transform for f in (aligner.align_precropped(x) for x in faces) if f.method == "landmarks"]
    if not mats:
        raise PreparedDatasetError("no face of the pre-cropped set could be aligned to the landmark template")
    return np.mean(mats, axis=0)


def reframe_face(aligner, face: np.ndarray, template_to_frame: np.ndarray,
                 in_template: bool = False) -> tuple[np.ndarray, str]:
    """One face moved into the framing ``template_to_frame`` (template -> target crop), and how: ``"template"``
    (``in_template``: the face is an aligned crop, already in the template frame), ``"landmarks"`` (aligned
    here first) or ``"resize"`` (no landmarks found: returned unchanged). Edges are replicated where the
    face does not reach."""
    from nfgan.data.align import compose, warp_gray

    if in_template:
        to_template, method = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "template"
    else:
        f = aligner.align_precropped(face)
        if f.method != "landmarks":
            return face, f.method
        to_template, method = f.transform, "landmarks"
    padded = np.pad(face, PAD, mode="edge")
    unpad = np.array([[1.0, 0.0, -PAD], [0.0, 1.0, -PAD]])          # padded -> original pixel coordinates
    m = compose(template_to_frame, compose(to_template, unpad))
    return warp_gray(padded, m, face.shape[0]), method


def reframe_dataset(data: str | Path, like: str | Path, out: str | Path, progress: bool = True) -> dict:
    """Write ``out``: the prepared set ``data`` with every face moved into the framing of the pre-cropped set
    ``like`` (labels, subjects and ids kept), so that the two can train one net (``extra_data``). Returns the
    counts per method. Research-licensed data: never commit the output."""
    from tqdm import tqdm

    from nfgan.data.align import FaceAligner, invert_transform

    src, target = PreparedDataset(data), PreparedDataset(like)
    if src.size != target.size:
        raise PreparedDatasetError(f"{data}: faces are {src.size} px, {like} has {target.size} px")
    if not target.meta.get("precropped"):
        raise PreparedDatasetError(f"{like}: not a pre-cropped set; its faces are already in the landmark "
                                   "template's framing, which `nfgan prepare` gives every aligned set")
    aligner = FaceAligner(size=src.size)
    template_to_frame = invert_transform(mean_frame(aligner, np.asarray(target.images)))
    in_template = framing(src) == TEMPLATE_FRAMING
    out = Path(out)
    rows, methods = [], {}
    images = np.asarray(src.images)
    for rec, face in tqdm(list(zip(src.records, images)), desc="reframe", unit="face", disable=not progress):
        framed, method = reframe_face(aligner, face, template_to_frame, in_template=in_template)
        methods[method] = methods.get(method, 0) + 1
        save_image(out / rec["path"], framed)
        rows.append({k: rec.get(k, "") for k in MANIFEST_COLUMNS})
    write_manifest(out, rows)
    write_text(out / "prepare_meta.json", json.dumps(
        {"precropped": True, "framed_like": framing(target), "reframed_from": str(Path(data).resolve()),
         "like": str(Path(like).resolve()), "size": src.size, "methods": methods, "count": len(rows)},
        indent=1) + "\n")
    return methods
