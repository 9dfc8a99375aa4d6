"""How far off its neutral framing each face is, and the ``data.neutralize_threshold`` that leaves every neutral
face of the training people alone.

    python tools/neutral_framing.py --map runs/maps/neutral_shape_no_jaffe_yale.safetensors \
        london=out/london64:london ckplus=out/ckplus_wn64:ckplus_with_neutral canada=out/canada64:canada

For the frontal faces of each source's training people (``--part``), the mean distance the re-framing by the map's
predicted neutral landmarks moves the alignment template's 49 points (``nfgan.data.neutral_shape.framing_shift``,
a share of the crop side), per set and expression. The threshold printed last is the largest shift of any neutral
face, rounded up to 3 decimals: with it no neutral training face is warped or re-framed. Only the named part of
the splits is read (never the test people unless asked for).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict

import numpy as np


def main(argv=None) -> int:
    from nfgan.data.dataset import PreparedDataset
    from nfgan.data.neutral_shape import NEUTRAL_LIKE, NeutralShape, framing_shift, shipped
    from nfgan.data.pairs import SplitError, source_spec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="+", help="NAME=FOLDER:SPLITS (split file or shipped split name)")
    ap.add_argument("--map", help="a map tools/fit_neutral_shape.py wrote (default: the one nfgan ships)")
    ap.add_argument("--part", default="train", choices=("train", "val", "test"))
    args = ap.parse_args(argv)
    shape = NeutralShape.load(args.map) if args.map else shipped()

    shifts = defaultdict(list)
    for spec in args.sources:
        try:
            name, folder, split = source_spec(spec)
        except SplitError as e:
            ap.error(str(e))
        ds = PreparedDataset(folder)
        if ds.landmarks is None:
            ap.error(f"{folder}: no landmarks.npy (written by nfgan prepare)")
        keep = set(split[args.part])
        size = ds.size
        for r, lm in zip(ds.records, np.asarray(ds.landmarks, np.float64)):
            if r["subject"] in keep and r["pose"] == "frontal" and np.isfinite(lm).all():
                shifts[(name, r["expression"])].append(framing_shift(lm, size, shape))

    print(f"Framing shift of the frontal faces of the {args.part} people (share of the crop side)\n")
    print("| set | expression | faces | median | 95th pct | largest |\n|---|---|---|---|---|---|")
    for (name, expr), v in sorted(shifts.items()):
        v = np.asarray(v)
        print(f"| {name} | {expr} | {len(v)} | {np.median(v):.4f} | {np.percentile(v, 95):.4f} | {v.max():.4f} |")
    neutral = [s for (_, expr), v in shifts.items() if expr in NEUTRAL_LIKE for s in v]
    if not neutral:
        print("no neutral faces: no threshold", file=sys.stderr)
        return 1
    print(f"\nthreshold (largest neutral shift, rounded up): {math.ceil(max(neutral) * 1000) / 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
