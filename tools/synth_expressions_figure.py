"""docs/figures/synthetic_expressions.png: real frontal neutral faces and synthetic expressions made from them.

    python tools/synth_expressions_figure.py out/london64_sfm docs/figures/synthetic_expressions.png

One row per face (the first ``--rows`` frontal neutral faces of the folder that have synthetic rows): the real
neutral face, then its synthetic faces labelled with the blendshape and strength. Use London faces only (CC BY).
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="a folder written by nfgan synth-expressions")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--scale", type=int, default=2, help="pixel zoom (default 2)")
    args = ap.parse_args(argv)

    from PIL import Image, ImageDraw

    from nfgan.atomic import write_bytes

    with open(args.folder / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    faces = np.load(args.folder / "faces.npy", mmap_mode="r")
    synth: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("synthetic") == "1":
            synth.setdefault(r["sfm_source_id"], []).append(i)
    index = {r["id"]: i for i, r in enumerate(rows)}
    # spread the rows over the folder, one face per subject
    sources = [s for s in synth if s in index]
    seen, picked = set(), []
    for s in sources[:: max(1, len(sources) // (args.rows * 2))]:
        subj = rows[index[s]]["subject"]
        if subj not in seen:
            seen.add(subj)
            picked.append(s)
    picked = picked[: args.rows]
    cols = 1 + max(len(synth[s]) for s in picked)
    size = faces.shape[-1] * args.scale
    label_h = 12
    sheet = Image.new("L", (cols * size, len(picked) * (size + label_h)), 255)
    draw = ImageDraw.Draw(sheet)
    for r, s in enumerate(picked):
        cells = [(index[s], "real neutral")] + [(i, f"{rows[i]['sfm_expression']} {float(rows[i]['sfm_strength']):.2f}")
                                               for i in synth[s]]
        for c, (i, text) in enumerate(cells):
            img = Image.fromarray(np.asarray(faces[i])).resize((size, size), Image.NEAREST)
            y = r * (size + label_h)
            sheet.paste(img, (c * size, y + label_h))
            draw.text((c * size + 2, y), text, fill=0)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}: {len(picked)} faces x {cols} columns, {len(buf.getvalue()) // 1024} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
