"""Speed (and success rate) of `nfgan prepare` on the London set (512 px JPEGs).

    python benchmarks/prepare_speed.py [--data ../shared/data/london] [--n 300] [--all]

Prepares the same photos twice into temporary folders, with 1 and with 2 worker processes, and prints
photos per second (wall clock, model loading and the final manifest/pack included) and the share of frontal
and 3/4 photos aligned. The photos are an even sample over all ten views (profiles included, which cost more:
most are searched at full resolution and then reported as "no face"); ``--all`` uses all 1020.
Last line: ``prepare_speed photos_per_s=<2 workers> workers1=<..> workers2=<..> n=<..> ...``.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan import adapters  # noqa: E402
from nfgan.data.prepare import prepare_dataset  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "london"))
    ap.add_argument("--n", type=int, default=300, help="photos per run (even sample over the views)")
    ap.add_argument("--all", action="store_true", help="all 1020 photos")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts to time")
    args = ap.parse_args()
    if not Path(args.data, "manifest.csv").is_file():
        print(f"London data not found at {args.data}", file=sys.stderr)
        return 2
    records = adapters.load("london", args.data)
    if not args.all and args.n < len(records):
        step = len(records) / args.n
        records = [records[int(i * step)] for i in range(args.n)]
    print(f"{len(records)} London photos, {os.cpu_count()} CPUs visible")
    main_poses = {"frontal", "left_3quarter", "right_3quarter"}
    n_main = sum(r.pose in main_poses for r in records)
    rates, ok_main = {}, 0.0
    for w in (int(x) for x in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = prepare_dataset(records, Path(tmp) / "out", workers=w, progress=False, src_root=args.data)
            dt = time.perf_counter() - t0
            with open(Path(tmp) / "out" / "manifest.csv", newline="") as f:
                aligned_main = sum(row["pose"] in main_poses for row in csv.DictReader(f))
        rates[w] = len(records) / dt
        ok_main = aligned_main / max(1, n_main)
        print(f"workers={w}: {dt:.1f} s, {rates[w]:.1f} photos/s, aligned {res.aligned}/{res.total} "
              f"(frontal + 3/4: {aligned_main}/{n_main}), failures {res.reasons}")
    best = rates.get(2, max(rates.values()))
    print("prepare_speed photos_per_s={:.1f} {} n={} success_front34={:.3f}".format(
        best, " ".join(f"workers{w}={r:.1f}" for w, r in rates.items()), len(records), ok_main))
    return 0


if __name__ == "__main__":
    sys.exit(main())
