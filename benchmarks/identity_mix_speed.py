"""Identity mixing's cost (``data.identity_mix``, ``nfgan.data.identity_mix.morph``).

Measures, in one process on the same faces:

* a batch of morphs made by ``morph`` (one batched thin-plate spline, evaluated every other pixel), against the
  same morphs made face by face with the repo's triangulated warp (``nfgan.data.frontalize.piecewise_affine_warp``,
  one Delaunay mesh per face, the warp synthetic expressions use) - the baseline;
* how far the two morphs are apart (mean absolute difference, gray levels), so the speed is not bought with a
  different picture;
* with ``--data`` (a prepared folder with landmarks), the time to read a training batch without mixing and with
  ``identity_mix.p`` 0.5 (and ``turned``), through ``nfgan.training.data.TrainingData``.

Timings alternate (baseline, morph, baseline, morph, ...) so a shared machine's load hits both alike. The last line
is ``identity_mix_speed morphs_per_s=<x> baseline_morphs_per_s=<y> ratio=<x/y> mean_abs_diff=<d>``.

    python benchmarks/identity_mix_speed.py [--data out/london64 --splits london] [--batch 32] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def faces_and_landmarks(data: str | None, n: int, size: int = 64):
    """``n`` faces with their landmarks: a prepared folder's first faces that have landmarks, or smooth random
    faces on the template jittered per face."""
    if data:
        from nfgan.data.dataset import PreparedDataset

        ds = PreparedDataset(data)
        if ds.landmarks is None:
            raise SystemExit(f"{data}: no landmarks.npy (write it with nfgan prepare)")
        lm = np.asarray(ds.landmarks[: 4 * n], dtype=np.float64)
        keep = np.flatnonzero(np.isfinite(lm).all(axis=(1, 2)))[:n]
        return np.asarray(ds.images[keep]), lm[keep]
    from PIL import Image

    from nfgan.data.frontalize import FRONTAL68

    rng = np.random.default_rng(0)
    faces = np.stack([np.asarray(Image.fromarray(rng.normal(128, 40, (8, 8)).clip(0, 255).astype(np.uint8))
                                 .resize((size, size), Image.BICUBIC)) for _ in range(n)])
    lm = FRONTAL68[None] * (size - 1) + rng.normal(0, 1.0, (n, 68, 2))
    return faces, lm


def baseline_morph(a, b, lm_a, lm_b, alpha):
    """The same morphs face by face with the triangulated warp (68 landmarks + the crop border)."""
    from nfgan.data.frontalize import piecewise_affine_warp

    out = np.empty(a.shape, dtype=np.uint8)
    for i in range(len(a)):
        mid = (1 - alpha[i]) * lm_a[i] + alpha[i] * lm_b[i]
        wa = piecewise_affine_warp(a[i], lm_a[i], mid)
        wb = piecewise_affine_warp(b[i], lm_b[i], mid)
        out[i] = np.clip(np.round((1 - alpha[i]) * wa + alpha[i] * wb), 0, 255).astype(np.uint8)
    return out


def batch_times(data: str, splits: str, batch: int, rounds: int) -> list[str]:
    from nfgan.training.config import load_config
    from nfgan.training.data import TrainingData

    lines = []
    base = {"data": {"root": data, "splits": splits, "frontalize_inputs": True}, "train": {"batch_size": batch}}
    settings = [("off", {"p": 0.0}), ("p 0.5", {"p": 0.5}), ("p 0.5 turned", {"p": 0.5, "turned": True})]
    loaders = []
    for name, mix in settings:
        cfg = load_config(overrides={**base, "data": {**base["data"], "identity_mix": mix}})
        loaders.append((name, TrainingData(cfg, torch.device("cpu"))))
    times = {name: [] for name, _ in loaders}
    for _ in range(rounds):
        for name, d in loaders:
            g = torch.Generator().manual_seed(0)
            t = time.perf_counter()
            for _ in range(5):
                d.sample(batch, g)
            times[name].append((time.perf_counter() - t) / 5)
    off = min(times["off"])
    for name, _ in loaders:
        best = min(times[name])
        lines.append(f"  batch of {batch} ({name:13s}): {best * 1000:7.1f} ms   x{best / off:.2f} of no mixing")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="a prepared folder with landmarks.npy (default: generated faces)")
    ap.add_argument("--splits", default=None, help="its split file or shipped split name (for the batch timing)")
    ap.add_argument("--batch", type=int, default=32, help="morphs per batch (default 32)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a loader thread's share)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nfgan.data.identity_mix import morph

    faces, lm = faces_and_landmarks(args.data, 2 * args.batch)
    a, b = faces[: args.batch], faces[args.batch: 2 * args.batch]
    lm_a, lm_b = lm[: args.batch], lm[args.batch: 2 * args.batch]
    alpha = np.random.default_rng(1).uniform(0.25, 0.75, args.batch)
    morph(a, b, lm_a, lm_b, alpha)     # warm-up
    ours, base = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        ref = baseline_morph(a, b, lm_a, lm_b, alpha)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = morph(a, b, lm_a, lm_b, alpha)
        ours.append(time.perf_counter() - t)
    diff = float(np.abs(out.astype(np.float64) - ref).mean())
    rate, base_rate = args.batch / min(ours), args.batch / min(base)
    print(f"faces: {args.data or 'generated'}; {args.batch} morphs per batch, best of {args.rounds}, "
          f"{args.threads} torch thread(s)")
    print(f"  thin-plate spline, batched : {min(ours) * 1000:7.1f} ms per batch ({rate:7.0f} morphs/s)")
    print(f"  triangulated, face by face : {min(base) * 1000:7.1f} ms per batch ({base_rate:7.0f} morphs/s)")
    print(f"  mean |difference|          : {diff:.2f} gray levels")
    if args.data and args.splits:
        for line in batch_times(args.data, args.splits, 64, args.rounds):
            print(line)
    print(f"identity_mix_speed morphs_per_s={rate:.1f} baseline_morphs_per_s={base_rate:.1f} "
          f"ratio={rate / base_rate:.2f} mean_abs_diff={diff:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
