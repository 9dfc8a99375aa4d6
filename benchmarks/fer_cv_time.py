"""How long does a full 10-fold CK+ cross-validation of the FER net take on this machine?

Times one CK+ fold (the real configuration, or fewer epochs and scaled up) and extrapolates to all folds;
or, with ``--from-run``, reads the per-fold times of a finished run directory. Goal: < 60 minutes per
variant on a 2-core CPU. Prints wall and CPU time and the load average: on a shared machine the wall time
depends on what else runs, the CPU time much less.

    python benchmarks/fer_cv_time.py --data out/ckplus_peak64_fer            # one fold, config epochs
    python benchmarks/fer_cv_time.py --data out/ckplus_peak64_fer --epochs 5 # quicker, scaled to the config
    python benchmarks/fer_cv_time.py --from-run runs/fer/ckplus_2b
    python benchmarks/fer_cv_time.py --data out/ckplus_peak64_fer --device cuda   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def from_run(run: Path) -> int:
    folds = [json.loads(p.read_text()) for p in sorted((run / "folds").glob("fold_*.json"))]
    if not folds:
        print(f"{run}: no finished folds", file=sys.stderr)
        return 1
    total = json.loads((run / "summary.json").read_text())["folds_total"]
    secs = [f["seconds"] for f in folds]
    per = sum(secs) / len(secs)
    print(f"{run}: {len(folds)}/{total} folds, {per / 60:.1f} min per fold (wall), "
          f"{sum(secs) / 60:.1f} min so far -> full {total}-fold run ~ {per * total / 60:.1f} min wall")
    cpu = [f["cpu_seconds"] for f in folds if "cpu_seconds" in f]
    if cpu:
        print(f"  CPU time {sum(cpu) / len(cpu) / 60:.1f} min per fold -> ~{sum(cpu) / len(cpu) * total / 60:.1f} min "
              f"for {total} folds (wall time depends on the other jobs sharing the CPU)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="prepared CK+ folder (nfgan fer precropped ... or nfgan prepare)")
    ap.add_argument("--folds", default=str(REPO / "src/nfgan/assets/folds/ckplus_peak_10fold.json"))
    ap.add_argument("--config", default=str(REPO / "configs/fer/ckplus.yaml"))
    ap.add_argument("--variant", default="2b", choices=["softmax", "2b"])
    ap.add_argument("--epochs", type=int, help="train this many epochs and scale to the config's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--from-run", type=Path, help="report the fold times of a finished run instead")
    args = ap.parse_args()
    if args.from_run:
        return from_run(args.from_run)
    if not args.data:
        ap.error("--data is required (or --from-run)")
    from nfgan.fer.cv import load_config, run_cv

    cfg = load_config(args.config)
    epochs = args.epochs or cfg["epochs"]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.time(), _cpu_seconds()
        summary = run_cv(args.data, args.folds, Path(tmp) / "run", variant=args.variant, config=args.config,
                         overrides={"epochs": epochs, "threads": args.threads, "device": args.device},
                         only_fold=0)
        wall, cpu = time.time() - t0, _cpu_seconds() - c0
    scale = cfg["epochs"] / epochs
    n_folds = summary["folds_total"]
    where = f"{args.threads} threads" if args.device == "cpu" else f"{args.device}, {args.threads} CPU threads"
    print(f"one fold ({args.variant}, {epochs} epochs, {where}): wall {wall:.0f} s, CPU {cpu:.0f} s, "
          f"accuracy {summary['mean_accuracy']:.3f}; load average {load0:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (shared machine: wall time includes waiting for other jobs)")
    print(f"full {n_folds}-fold CK+ CV at {cfg['epochs']} epochs: ~{wall * scale * n_folds / 60:.1f} min wall, "
          f"~{cpu * scale * n_folds / 60:.1f} min CPU (goal < 60 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
