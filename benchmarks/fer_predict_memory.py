"""Peak memory of `nfgan fer predict --data` on all 981 CK+ peak faces with the CK+ configuration (ten-crop
averaging, crops resized to 96 px before the mini-XCEPTION trunk), against the same run with 2560 crops per
forward pass (256 faces at once, the batching before prediction was bounded by crops).

Needs ../shared/data/ckplus (research data, not shipped). Trains a one-epoch model first (memory does not
depend on how well it was trained). Ends with one line::

    fer_predict_memory faces=981 peak_rss_mb=X crops_per_pass=256 baseline_peak_rss_mb=Y baseline_crops=2560 ratio=R
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def nfgan(*argv: str) -> tuple[float, float]:
    """Run an nfgan command; (seconds, peak RSS of that process in MB)."""
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "nfgan", *argv], env=ENV, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nfgan {' '.join(argv)} failed")
    return time.time() - t0, usage.ru_maxrss / 1024.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckplus", type=Path, default=REPO.parent / "shared" / "data" / "ckplus")
    p.add_argument("--data", type=Path, default=REPO / "out" / "ckplus_peak64_fer")
    args = p.parse_args()
    if not args.data.is_dir():
        if not (args.ckplus / "manifest.csv").is_file():
            print(f"CK+ not found at {args.ckplus}: skipped")
            return 0
        nfgan("fer", "precropped", "--manifest", str(args.ckplus / "manifest.csv"), "--prefix", "peak/",
              "--out", str(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        secs, _ = nfgan("fer", "train", "--data", str(args.data), "--config", str(REPO / "configs/fer/ckplus.yaml"),
                        "--set", "epochs=1", "--out", str(model))
        print(f"trained a one-epoch CK+ model in {secs:.0f} s")
        rows = {}
        for crops in (256, 2560):
            secs, rss = nfgan("fer", "predict", "--model", str(model), "--data", str(args.data),
                              "--out", str(Path(tmp) / f"p{crops}.csv"), "--max-crops", str(crops))
            n = sum(1 for _ in open(Path(tmp) / f"p{crops}.csv")) - 1
            rows[crops] = (secs, rss, n)
            print(f"fer predict, {crops:>5} crops per pass: {n} faces in {secs:.1f} s, peak RSS {rss:.0f} MB")
    (_, rss, n), (_, base, _) = rows[256], rows[2560]
    print(f"fer_predict_memory faces={n} peak_rss_mb={rss:.0f} crops_per_pass=256 baseline_peak_rss_mb={base:.0f} "
          f"baseline_crops=2560 ratio={rss / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
