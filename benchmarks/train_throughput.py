"""Training throughput: full Algorithm-1 steps (Enc, Dec, Dis updated; both auxiliary nets) at 64x64.

Compares, in the same process and on the same data:

* the trainer's step (``nfgan.training.loop.Trainer.train_step``: cached frozen features, channels_last, bf16 autocast
  unless ``--fp32``), and
* a naive step written plainly: fp32, eager, contiguous tensors, the frozen nets run layer by layer (no
  folding) on x, y and x~ every step (``nfgan.models.nfgan.plain_losses``) - same routing, same optimizers.

Measurements alternate (naive, fast, naive, fast, ...) so that the load of a shared machine hits both alike.
The last line is ``train_throughput images_per_s=<x> naive_images_per_s=<y> ratio=<x/y>``.

    python benchmarks/train_throughput.py [--data out/london64] [--batch 64] [--steps 3] [--rounds 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def synthetic_prepared(root: Path, subjects: int = 12, size: int = 64) -> Path:
    """A throwaway prepared folder of smooth random 'faces' (when no prepared set is given)."""
    import csv

    from PIL import Image

    from nfgan.data.dataset import write_pack
    from nfgan.data.pairs import make_splits, save_splits

    rng = np.random.default_rng(0)
    (root / "faces").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        base = np.asarray(Image.fromarray(rng.normal(size=(8, 8)).astype(np.float32)).resize((size, size)))
        for pose, shift in (("frontal", 0), ("right_3quarter", 5)):
            for expr in ("neutral", "happy"):
                img = np.clip(128 + 40 * np.roll(base, shift, 1) + (30 if expr == "happy" else 0), 0, 255)
                fid = f"S{s:02d}_{pose}_{expr}"
                Image.fromarray(img.astype(np.uint8)).save(root / "faces" / f"{fid}.png")
                rows.append({"id": fid, "path": f"faces/{fid}.png", "subject": f"S{s:02d}", "expression": expr,
                             "pose": pose, "flipped": "0"})
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_pack(root)
    save_splits(root / "splits.json", make_splits([f"S{s:02d}" for s in range(subjects)], counts=(subjects - 2, 1)))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "out" / "london64", help="prepared folder (else synthetic)")
    ap.add_argument("--splits", default="london", help="split file or shipped name (default london)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round and path")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="fast path without bf16 autocast")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from nfgan.models.nfgan import plain_losses, routed_backward
    from nfgan.pixels import to_unit
    from nfgan.training.config import load_config
    from nfgan.training.loop import Trainer

    tmp = None
    if (args.data / "faces.npy").is_file():
        data, splits = args.data, args.splits
    else:
        tmp = tempfile.TemporaryDirectory()
        data = synthetic_prepared(Path(tmp.name))
        splits = data / "splits.json"
    print(f"data: {data} | batch {args.batch} | threads {args.threads} | device {args.device} | "
          f"torch {torch.__version__}", flush=True)

    def make(fast: bool) -> Trainer:
        cfg = load_config(overrides={"data": {"root": str(data), "splits": str(splits)},
                                     "train": {"batch_size": args.batch, "bf16": fast and not args.fp32,
                                               "channels_last": fast, "threads": args.threads,
                                               "device": args.device}})
        return Trainer(cfg)

    t0 = time.time()
    fast = make(True)
    print(f"fast trainer ready in {time.time() - t0:.1f}s (feature caches: {len(fast.data.train)} inputs)",
          flush=True)
    naive = make(False)
    model, feats = naive.model, naive.model.features
    for net in (feats.perceptual, feats.identity):
        if net is not None:
            net.fold = False   # the plain step runs the layer-by-layer port, not the folded copy

    def naive_step() -> None:
        b = naive.sample_batch()
        x, y, g = (to_unit(naive.data.read(r)).unsqueeze(1).to(naive.device) for r in (b.x_rows, b.y_rows, b.g_rows))
        for net in model.nets.values():
            net.train()
        losses = plain_losses(model.nets, feats.perceptual, feats.identity, x, y, g, model.weights)
        for opt in model.optimizers.values():
            opt.zero_grad(set_to_none=True)
        routed_backward(model.nets, losses, model.weights)
        for opt in model.optimizers.values():
            opt.step()

    def timed(fn, n: int) -> float:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    timed(naive_step, 1)          # warm-up (allocator, oneDNN primitive cache)
    timed(fast.train_step, 1)
    t_naive = t_fast = 0.0
    for r in range(args.rounds):
        tn = timed(naive_step, args.steps)
        tf = timed(fast.train_step, args.steps)
        t_naive, t_fast = t_naive + tn, t_fast + tf
        print(f"round {r + 1}: naive {args.steps * args.batch / tn:.1f} img/s, "
              f"fast {args.steps * args.batch / tf:.1f} img/s", flush=True)
    n_img = args.rounds * args.steps * args.batch
    x, y = n_img / t_fast, n_img / t_naive
    if tmp is not None:
        tmp.cleanup()
    print(f"train_throughput images_per_s={x:.1f} naive_images_per_s={y:.1f} ratio={x / y:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
