"""Round 47's conditions (docs/experiments.md) from `nfgan evaluate` folders: pooled 3/4 rows of every
per_face.csv under RESULTS_DIR, BASELINE against CANDIDATE: the faceres mean of gt pass and rank-1, and fer's and
face-api's neutral rates on expressive inputs, with the allowed fall (``--faces 1``: one face; default: 2 % of the
inputs). Prints one line per measure and ``round47 PART pass|fail``.

    python docs/results/round47/checks.py RESULTS_DIR BASELINE CANDIDATE --part NAME [--min-rise 5] [--faces 1]
"""
import argparse
import csv
import sys
from pathlib import Path

from nfgan.data.schema import is_expressive


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("base")
    ap.add_argument("cand")
    ap.add_argument("--part", required=True)
    ap.add_argument("--min-rise", type=float, default=0.0, help="points the identity mean must rise by")
    ap.add_argument("--faces", type=int, default=None, help="neutral faces allowed to be lost (default: 2 %)")
    args = ap.parse_args(argv)
    rows = {args.base: [], args.cand: []}
    for f in sorted(args.root.glob("*/per_face.csv")):
        for r in csv.DictReader(open(f)):
            if r["view"] == "3/4" and r["model"] in rows:
                rows[r["model"]].append(r)
    n = len(rows[args.base])
    if n == 0 or n != len(rows[args.cand]):
        print(f"error: {n} baseline and {len(rows[args.cand])} candidate 3/4 rows under {args.root}")
        return 2
    ok = True

    def mean(model, cols):
        return 100 * sum(float(r[c]) for r in rows[model] for c in cols) / (len(cols) * n)

    ident = {m: mean(m, ("id_gt_pass_faceres", "rank1_faceres")) for m in rows}
    rise = ident[args.cand] - ident[args.base]
    good = rise >= args.min_rise if args.min_rise > 0 else rise >= 0
    ok &= good
    print(f"{n} 3/4 inputs; faceres mean of gt pass and rank-1: {args.cand} {ident[args.cand]:.2f} against "
          f"{ident[args.base]:.2f} ({rise:+.2f}; needed {'+%g' % args.min_rise if args.min_rise else '>= 0'}) "
          f"{'ok' if good else 'FAIL'}")
    for ev in ("fer", "faceapi"):
        count = {m: [int(float(r[f"neutral_{ev}"])) for r in rows[m] if is_expressive(r["expression"])]
                 for m in rows}
        k = len(count[args.base])
        lost = sum(count[args.base]) - sum(count[args.cand])
        allowed = args.faces if args.faces is not None else 0.02 * k
        good = lost <= allowed
        ok &= good
        print(f"neutral {ev} on {k} expressive inputs: {args.cand} {sum(count[args.cand])} against "
              f"{sum(count[args.base])} (lost {lost}, allowed {allowed:g}) {'ok' if good else 'FAIL'}")
    print(f"round47 {args.part} {'pass' if ok else 'fail'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
