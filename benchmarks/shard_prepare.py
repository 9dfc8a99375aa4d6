"""`nfgan prepare --shard I/N` + `nfgan merge-prepared` against one `nfgan prepare` run, on the London set.

    python benchmarks/shard_prepare.py [--data ../shared/data/london] [--shards 2] [--workers 2] [--keep DIR]

Prepares all London photos once in one run and once as N shards (one after the other here; on N machines
they would run at the same time), merges the shards, and compares the two folders byte for byte:
manifest.csv, prepare_report.csv, faces.npy, landmarks.npy, every faces/*.png, and prepare_meta.json without
its run-specific fields (seconds, written_utc). Prints the time of each step. Last line:
``shard_prepare identical=<True|False> shards=<N> seconds=<the whole check: single run, shards, merge, comparison>``.
Exit status 0 when identical, 1 when not, 2 without the data.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data import adapters  # noqa: E402
from nfgan.data.prepare import prepare_dataset  # noqa: E402
from nfgan.data.shard import Shard  # noqa: E402
from nfgan.data.shard_merge import META_RUN_SPECIFIC, merge_prepared  # noqa: E402

SAME_FILES = ("manifest.csv", "prepare_report.csv", "faces.npy", "landmarks.npy")


def compare(single: Path, merged: Path) -> list[str]:
    """The differences between two prepared folders (empty: identical but for prepare_meta.json's timings)."""
    diffs = [name for name in SAME_FILES if (single / name).read_bytes() != (merged / name).read_bytes()]
    a = sorted(p.name for p in (single / "faces").iterdir())
    b = sorted(p.name for p in (merged / "faces").iterdir())
    if a != b:
        diffs.append(f"faces/: {len(set(a) ^ set(b))} file names differ")
    diffs += [f"faces/{n}" for n in sorted(set(a) & set(b))
              if (single / "faces" / n).read_bytes() != (merged / "faces" / n).read_bytes()]
    ma, mb = (json.loads((d / "prepare_meta.json").read_text()) for d in (single, merged))
    if list(ma) != list(mb):
        diffs.append("prepare_meta.json: other fields")
    for key in ma:
        if key not in META_RUN_SPECIFIC and ma[key] != mb.get(key):
            diffs.append(f"prepare_meta.json: {key}")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "london"))
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="worker processes of each run (default 2)")
    ap.add_argument("--keep", default=None, help="write the folders here (default: a temporary folder)")
    args = ap.parse_args()
    if not Path(args.data, "manifest.csv").is_file():
        print(f"London data not found at {args.data}", file=sys.stderr)
        return 2
    records = adapters.load("london", args.data)
    print(f"{len(records)} London photos, {args.shards} shards, {args.workers} workers per run, "
          f"{os.cpu_count()} CPUs visible")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        res = prepare_dataset(records, root / "single", workers=args.workers, progress=False, src_root=args.data)
        t_single = time.perf_counter() - t0
        print(f"single run: {t_single:.1f} s, aligned {res.aligned}/{res.total}, failures {res.reasons}")
        parts, t_shards = [], []
        for i in range(args.shards):
            t0 = time.perf_counter()
            part = root / f"shard{i}"
            res = prepare_dataset(records, part, workers=args.workers, progress=False, src_root=args.data,
                                  shard=Shard(i, args.shards))
            t_shards.append(time.perf_counter() - t0)
            parts.append(part)
            print(f"shard {i}/{args.shards}: {t_shards[-1]:.1f} s, aligned {res.aligned}/{res.total}")
        t0 = time.perf_counter()
        merge_prepared(root / "merged", parts, progress=False)
        t_merge = time.perf_counter() - t0
        print(f"merge: {t_merge:.1f} s")
        diffs = compare(root / "single", root / "merged")
        seconds = time.perf_counter() - t_all
        n_png = len(list((root / "merged" / "faces").iterdir()))
        print(f"compared manifest.csv, prepare_report.csv, faces.npy, landmarks.npy, {n_png} faces/*.png and "
              f"prepare_meta.json (all but {', '.join(META_RUN_SPECIFIC)}): "
              + ("identical" if not diffs else f"DIFFERENT: {', '.join(diffs[:10])}"))
        print(f"sharded path: {sum(t_shards):.1f} s of shards one after the other (the slowest shard "
              f"{max(t_shards):.1f} s: the wall time on {args.shards} machines) + {t_merge:.1f} s merge, "
              f"against {t_single:.1f} s in one run")
    print(f"shard_prepare identical={not diffs} shards={args.shards} seconds={seconds:.1f}")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
