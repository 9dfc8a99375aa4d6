"""Inference speed of the shipped models on aligned faces (images/s), with the frontalisation step on its own.

    python benchmarks/normalize_speed.py [--n 1024] [--threads 2] [--batch 64]

The 20 example photos (``examples/london/``) are aligned once (profiles the detector misses are dropped) and
repeated to ``--n`` faces, keeping each face's pose, mirroring flag and landmarks. Measured in one run:
the landmark frontalisation alone (``nfgan.data.frontalize.frontalize_batch`` on the turned faces), the default
normaliser with frontalisation (what ``nfgan normalize`` runs), the same U-Net without it (the baseline the
ratio is taken against), and the NFGAN. Each figure is the best of ``--repeats`` timed passes after one
warm-up pass.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.align import AlignError, align_face, pose_from_yaw  # noqa: E402
from nfgan.inference import load_model  # noqa: E402
from nfgan.data.frontalize import frontalize_batch, is_turned  # noqa: E402
from nfgan.data.generator_input import InputRule  # noqa: E402
from nfgan.inference.normalizer import default_model_path, nfgan_model_path  # noqa: E402


def example_faces(n: int):
    crops, poses, flipped, landmarks = [], [], [], []
    for photo in sorted((REPO / "examples" / "london").glob("*/*.jpg")):
        try:
            f = align_face(photo)
        except AlignError:
            continue
        crops.append(f.crop)
        poses.append(pose_from_yaw(f.yaw_deg))
        flipped.append(f.flipped)
        landmarks.append(f.landmarks68)
    reps = -(-n // len(crops))
    take = lambda xs: (xs * reps)[:n]   # noqa: E731
    return np.stack(take(crops)), take(poses), take(flipped), np.stack(take(landmarks))


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    faces, poses, flipped, lms = example_faces(args.n)
    turned = [i for i, q in enumerate(poses) if is_turned(q)]
    default = load_model(default_model_path())
    plain = load_model(default_model_path())
    plain.rule = InputRule(plain.rule.flip_left_poses, frontalize=False)
    nfgan = load_model(nfgan_model_path())
    rows = [
        ("frontalisation alone (turned faces)", len(turned),
         best_time(lambda: frontalize_batch(faces[turned], lms[turned], [poses[i] for i in turned]), args.repeats)),
        ("default normaliser, frontalisation + U-Net", args.n,
         best_time(lambda: default.normalize(faces, poses, flipped, args.batch, landmarks=lms), args.repeats)),
        ("same U-Net without frontalisation (baseline)", args.n,
         best_time(lambda: plain.normalize(faces, poses, flipped, args.batch), args.repeats)),
        ("NFGAN (Enc + Dec)", args.n,
         best_time(lambda: nfgan.normalize(faces, poses, flipped, args.batch), args.repeats)),
    ]
    base = rows[2][1] / rows[2][2]
    print(f"{args.n} aligned faces ({len(turned)} turned), batch {args.batch}, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'step':<48} {'images/s':>10} {'x baseline':>11}")
    for name, count, sec in rows:
        rate = count / sec
        print(f"{name:<48} {rate:>10.1f} {rate / base:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
