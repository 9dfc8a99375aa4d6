"""Probe `push`'s part 1 condition (docs/experiments.md, "Pushing frontal outputs towards neutral at inference
(probe)") from `nfgan evaluate` folders: for each SET_val/per_face.csv under RESULTS_DIR, BASELINE against
CANDIDATE on faceres gt pass, faceres and faceres_deep rank-1 among every person (all inputs), and fer's and
face-api's neutral rates on expressive inputs, each allowed to fall by one face or 2 % of the set's inputs,
whichever is more. Prints one line per set and measure, then ``push part1 CANDIDATE pass|fail``.

    python docs/results/push/checks.py RESULTS_DIR BASELINE CANDIDATE
"""
import argparse
import csv
import sys
from pathlib import Path

from nfgan.data.schema import is_expressive

MEASURES = (("id_gt_pass_faceres", False), ("rank1_every_faceres", False), ("rank1_every_faceres_deep", False),
            ("neutral_fer", True), ("neutral_faceapi", True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("base")
    ap.add_argument("cand")
    args = ap.parse_args(argv)
    ok = True
    folders = sorted(args.root.glob("*_val/per_face.csv"))
    if not folders:
        print(f"error: no */per_face.csv under {args.root}")
        return 2
    for f in folders:
        rows = {args.base: [], args.cand: []}
        for r in csv.DictReader(open(f)):
            if r["model"] in rows:
                rows[r["model"]].append(r)
        n = len(rows[args.base])
        if n == 0 or n != len(rows[args.cand]):
            print(f"error: {f}: {n} baseline and {len(rows[args.cand])} candidate rows")
            return 2
        allowed = max(1.0, 0.02 * n)
        changed = sum(a["ssim"] != b["ssim"] for a, b in zip(rows[args.base], rows[args.cand]))
        print(f"{f.parent.name}: {n} inputs, {changed} outputs changed; allowed fall {allowed:g} faces")
        for col, expressive in MEASURES:
            sel = {m: [float(r[col]) for r in rs if not expressive or is_expressive(r["expression"])]
                   for m, rs in rows.items()}
            lost = sum(sel[args.base]) - sum(sel[args.cand])
            good = lost <= allowed
            ok &= good
            print(f"  {col}{' (expressive)' if expressive else ''}: {args.cand} {sum(sel[args.cand]):g} against "
                  f"{sum(sel[args.base]):g} of {len(sel[args.base])} {'ok' if good else 'FAIL'}")
    print(f"push part1 {args.cand} {'pass' if ok else 'fail'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
