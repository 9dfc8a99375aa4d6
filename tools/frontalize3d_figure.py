"""docs/figures/frontalize3d.png: London test people's photos, the two network-free frontalisations and a
normaliser, beside the person's real frontal neutral face.

    python tools/frontalize3d_figure.py out/london64 docs/figures/frontalize3d.png [--model default]

Columns: input, "2D warp" (frontalize2d: nfgan's landmark frontalisation), "3D SFM" (frontalize3d: 3D-model
frontalisation with the Surrey Face Model: needs eos-py and the SFM folder, $NFGAN_SFM), the model, "real" (the
person's real frontal neutral face).
Rows: ``--rows`` inputs of the test split spread over its frontal smiling and 3/4 inputs. London faces only (CC BY).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="prepared London folder (nfgan prepare london)")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--model", default="default", help="normaliser to show (default: the shipped default)")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--scale", type=int, default=2, help="pixel zoom (default 2)")
    args = ap.parse_args(argv)

    from nfgan.atomic import save_image
    from nfgan.evaluation.baselines import Baseline
    from nfgan.evaluation.evaluate import load_eval_set
    from nfgan.evaluation.report import tile
    from nfgan.inference import load_model

    es = load_eval_set(args.data, "london", "test")
    want = [j for j in range(len(es)) if es.views[j] == "3/4" or es.expressions[j] != "neutral"]
    picks = np.asarray(want[:: max(1, len(want) // args.rows)][:args.rows])
    faces, lms = es.input_images[picks], es.input_landmarks[picks]
    poses = [es.poses[j] for j in picks]
    flipped = [es.flipped[j] for j in picks]
    columns = [("input", faces),
               ("2D warp", Baseline("frontalize2d").normalize(faces, poses, flipped, landmarks=lms)),
               ("3D SFM", Baseline("frontalize3d").normalize(faces, poses, flipped, landmarks=lms)),
               (args.model, load_model(args.model).normalize(faces, poses, flipped, landmarks=lms)),
               ("real", es.target_images[picks])]
    grid = tile([[np.asarray(imgs[r]) for _, imgs in columns] for r in range(len(picks))], [c for c, _ in columns])
    save_image(args.out, np.kron(grid, np.ones((args.scale, args.scale), np.uint8)))
    print(f"wrote {args.out} ({len(picks)} inputs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
