"""Fit the own-shape frontalisation map (``nfgan.data.frontal_shape``) and write it where nfgan ships it.

    python tools/fit_frontal_shape.py [--data out/london64] [--splits london] \
        [--out src/nfgan/assets/frontal_shape.safetensors] [--report docs/results/frontal_shape]

Pairs: each training person's 3/4 faces with their own first frontal neutral face (made symmetric); the ridge
weight is the one of ``--ridges`` with the lowest mean landmark error on the validation people's pairs; the test
people are not read. The shipped map is fit on London (CC BY 4.0), so a model using it keeps its own licence. The
report folder gets ``report.md`` (the validation error of every ridge weight and of the template ``FRONTAL68``)
and ``report.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    from nfgan.atomic import write_text
    from nfgan.data.frontal_shape import ASSET, collect_pairs, fit, landmark_error
    from nfgan.data.pairs import SplitError, load_splits
    from nfgan.weights import assets_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="out/london64", help="prepared folder with turned and frontal faces")
    ap.add_argument("--splits", default="london", help="split file or shipped split name")
    ap.add_argument("--poses", default="3quarter", help="comma list: pose kinds whose faces the map is fit on")
    ap.add_argument("--out", type=Path, default=assets_dir() / ASSET)
    ap.add_argument("--report", type=Path, default=Path("docs/results/frontal_shape"))
    ap.add_argument("--ridges", default="0.1,1,10,100,1000,10000", help="ridge weights to choose from")
    args = ap.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])
    try:
        split = load_splits(args.splits)
    except SplitError as e:
        ap.error(str(e))
    poses = [p for p in args.poses.split(",") if p]
    xt, yt = collect_pairs(args.data, split["train"], poses)
    xv, yv = collect_pairs(args.data, split["val"], poses)
    if not len(xt) or not len(xv):
        ap.error(f"{args.data}: {len(xt)} training and {len(xv)} validation pairs (turned faces of poses {poses} "
                 "with a frontal neutral face of the same person); both are needed")
    base = landmark_error(None, xv, yv)
    scores = {}
    for r in [float(v) for v in args.ridges.split(",")]:
        scores[r] = landmark_error(fit(xt, yt, r), xv, yv)
        print(f"ridge {r:g}: validation error {scores[r]:.3f} px (template {base:.3f})", file=sys.stderr)
    ridge = min(scores, key=scores.get)
    source = {"folder": str(args.data), "splits": str(args.splits)}
    shape = fit(xt, yt, ridge, {"sources": [{"name": Path(args.data).name, **source}], "poses": poses,
                                "validation_pairs": len(xv), "validation_error_px": scores[ridge],
                                "validation_error_template_px": base})
    lines = ["# Own-shape frontalisation map: validation people", "",
             f"Command: `{' '.join(['python tools/fit_frontal_shape.py'] + given)}`", "",
             f"Pairs ({', '.join(poses)} faces with the same person's frontal neutral face): {len(xt)} training, "
             f"{len(xv)} validation. Mean distance (px at 64 px) of the predicted frontal landmarks to the real ones "
             "on the validation pairs:", "", "| destination | error (px) |", "|---|---|",
             f"| template `FRONTAL68` | {base:.3f} |"]
    lines += [f"| map, ridge {r:g}{' (chosen)' if r == ridge else ''} | {s:.3f} |" for r, s in scores.items()]
    args.report.mkdir(parents=True, exist_ok=True)
    write_text(args.report / "report.md", "\n".join(lines) + "\n")
    write_text(args.report / "report.json", json.dumps({"ridge": ridge, "scores": {str(k): v for k, v in
                                                        scores.items()}, "template": base, "poses": poses,
                                                        "pairs": {"train": len(xt), "val": len(xv)},
                                                        **source}, indent=1) + "\n")
    shape.save(args.out)
    print("\n".join(lines))
    print(f"wrote {args.out} and {args.report}/report.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
