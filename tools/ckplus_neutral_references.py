"""Real neutral faces of CK+ subjects, framed like the CK+48 peak crops: the ceiling of NFGAN augmentation.

    python tools/ckplus_neutral_references.py ../shared/data/ckplus out/ckplus_peak64_fer out/ckplus_neutral_refs
    nfgan fer cv ... --variant 2b_aug --augment out/ckplus_neutral_refs --augment-subjects out/ckplus_neutral_refs/no_model.txt

NFGAN augmentation (docs/fer.md) gives each training subject a synthesised neutral face of the same person as a
reference for the metric branch. A perfect normaliser would return the subject's real neutral face, and CK+
has those: the first frame of every sequence (``with_neutral/neutral/``). This writes them as a prepared
folder of "already normalised" faces that ``nfgan fer cv --augment`` reads, so the references can be scored
with a perfect normaliser (an upper bound for any NFGAN, not a method to report as augmentation).

``with_neutral/`` is cropped tighter than ``peak/``, so each neutral face is moved into the peak crops'
framing (``nfgan.fer.precropped.reframe_face``): both are aligned to nfgan's landmark template
(``FaceAligner.align_precropped``); the peak set's mean crop -> template transform is inverted and composed with
each neutral face's own (edges are replicated where the tighter crop does not reach). Faces whose landmarks fail are resized only, like ``nfgan fer
precropped``. No model made these faces, so the leak guard gets an empty subject list (``no_model.txt``);
``nfgan fer cv`` still gives each fold only its training subjects' references.
Research-licensed data: never commit the output.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.align import FaceAligner, invert_transform  # noqa: E402
from nfgan.atomic import save_image, write_text  # noqa: E402
from nfgan.data.dataset import PreparedDataset, write_manifest  # noqa: E402
from nfgan.fer.precropped import framing, mean_frame, reframe_face  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckplus", type=Path, help="the CK+ folder with manifest.csv, peak/ and with_neutral/")
    p.add_argument("peak_prepared", type=Path, help="the FER set of the peak crops (nfgan fer precropped)")
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    peak = PreparedDataset(args.peak_prepared)
    size = peak.size
    aligner = FaceAligner(size=size)
    template_to_frame = invert_transform(mean_frame(aligner, np.asarray(peak.images)))
    with open(args.ckplus / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].startswith("with_neutral/neutral/")]
    if not rows:
        print(f"error: {args.ckplus / 'manifest.csv'}: no with_neutral/neutral/ rows", file=sys.stderr)
        return 1
    out_rows, methods = [], {}
    for i, r in enumerate(rows):
        src = args.ckplus / r["path"]
        face = np.asarray(Image.open(src).convert("L").resize((size, size), Image.BICUBIC))
        framed, method = reframe_face(aligner, face, template_to_frame)
        methods[method] = methods.get(method, 0) + 1
        rid = f"{i:06d}"
        save_image(args.out / "faces" / f"{rid}.png", framed)
        out_rows.append({"id": rid, "path": f"faces/{rid}.png", "subject": r["subject"], "expression": "neutral",
                         "pose": "frontal", "yaw_deg": "0", "flipped": "0", "source_path": str(src.resolve()),
                         "dataset": "ckplus_neutral"})
    write_manifest(args.out, out_rows)
    write_text(args.out / "prepare_meta.json", json.dumps(   # usable as extra data beside the peak set
        {"precropped": True, "framed_like": framing(peak), "size": size, "count": len(out_rows)}, indent=1) + "\n")
    write_text(args.out / "no_model.txt", "# real faces: no model was trained, so no subject was seen by one\n")
    write_text(args.out / "normalize_meta.json", json.dumps(
        {"what": "real CK+ neutral frames (with_neutral/neutral), reframed to the peak crops",
         "peak_prepared": str(args.peak_prepared), "count": len(out_rows), "methods": methods,
         "train_subjects": []}, indent=1) + "\n")
    print(f"wrote {len(out_rows)} neutral faces of {len({r['subject'] for r in out_rows})} subjects to {args.out} "
          f"({methods})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
