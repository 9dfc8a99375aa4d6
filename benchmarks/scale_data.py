"""Training data that does not fit in memory: open time, peak RSS and training speed at 10k, 100k and 1M faces.

For each size a synthetic prepared folder is written (streaming: ``faces.npy`` and ``landmarks.npy`` through
``np.lib.format.open_memmap``, ``manifest.csv`` row by row, no PNGs): 10 faces per subject (frontal neutral =
the target, other expressions, 3/4 and profile poses, left ones included so mirroring is exercised), made from
a small bank of face-like patterns with per-row noise and brightness, so no two rows need be equal. The split
file puts 80 % of the subjects in train, 10 % in val, 10 % in test.

Each size is then measured in a fresh child process (this script with ``--child``), so that every peak RSS
is that size's alone:

* open: constructing ``nfgan.training.loop.Trainer`` (TrainingData + pairs + model build), and the
  TrainingData part alone;
* peak RSS after opening and after training, and the RSS growth while TrainingData was built (the kernel's
  peak is reset just before it, where ``/proc/self/clear_refs`` allows). The peak is the child's own
  high-water mark (``VmHWM``); ``getrusage(RUSAGE_SELF).ru_maxrss`` is reported beside it but not used: on
  Linux it starts at the RSS the parent had when it spawned the child, so a big parent inflates it;
* training images/s: 1 warm-up step, then ``--steps`` timed steps at ``--batch``, with the pix2pix U-Net
  of ``configs/baseline_pix2pix.yaml`` (no feature nets, so no downloaded weights), flip_left_poses on,
  frontalize_inputs off, fp32, 2 threads, CPU; and the time the steps spent drawing their batches (the
  reads from the memory map);
* after training: the anonymous RSS and the resident part of the ``faces.npy`` map (``/proc/self/smaps``).

Before each child the set's files are written back and dropped from the page cache (``posix_fadvise``
``DONTNEED``, this set's files only), so it reads them from disk like a set that was not just written:
pages the build left in the cache would be mapped in large folios (on Linux 6.x with ext4 one face read
then maps ~1.6 MB of the file into the reader's RSS). ``--warm`` keeps them cached. ``--advice random``
applies ``madvise(MADV_RANDOM)`` to the faces' map before training (no readahead around each face), to
compare with what nfgan does (nothing).

The baseline is what loading the faces would cost: the bytes of ``faces.npy`` (N x 64 x 64). Each table
line gives peak RSS / face bytes and the open time per 1000 faces (flat = linear scaling). The last line is

    scale_data sizes=10000,100000,1000000 peak_rss_mb=A,B,C open_s=X,Y,Z

with the peak RSS after training and the Trainer open time.

    python benchmarks/scale_data.py [--quick] [--sizes 10k,100k,1M] [--work DIR] [--steps 5] [--batch 64]
                                    [--warm] [--advice random]

``--work DIR`` keeps the folders (``DIR/faces_<N>``) and reuses one already built with the same size;
without it they are written to a temporary folder and removed at the end (1M faces: 4.1 GB + 0.5 GB).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
FACES_PER_SUBJECT = 10
#: one subject's rows: (pose, expression, yaw in degrees); row 0 is the frontal neutral target
LAYOUT = (("frontal", "neutral", 0), ("frontal", "happy", 0), ("frontal", "surprise", 0), ("frontal", "sad", 0),
          ("left_3quarter", "neutral", -35), ("left_3quarter", "happy", -35), ("right_3quarter", "neutral", 35),
          ("right_3quarter", "surprise", 35), ("left_profile", "neutral", -80), ("right_profile", "happy", 80))
BANK = 48          # distinct face-like identities; subject s uses identity s % BANK
NOISE_BANK = 509   # noise images; each row adds two of them, picked at random
CHUNK = 8192       # rows generated and written at a time
FORMAT_VERSION = 1
CHILD_TAG = "scale_data_child"


# ----------------------------------------------------------------------------------------------- the data
def _smooth(rng: np.random.Generator, coarse: int) -> np.ndarray:
    """A smooth random field (SIZE x SIZE, roughly unit variance): bilinear upsampling of coarse noise."""
    g = rng.normal(size=(coarse, coarse))
    t = np.linspace(0, coarse - 1, SIZE)
    i0 = np.minimum(t.astype(int), coarse - 2)
    f = t - i0
    rows = g[i0] * (1 - f)[:, None] + g[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _blob(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))


def face_bank(seed: int = 0) -> np.ndarray:
    """int16 ``BANK x len(LAYOUT) x SIZE x SIZE``: face-like gray patterns (head oval, hair, eyes, brows, nose,
    mouth; turned poses shift the inner face, expressions change the mouth and brows)."""
    rng = np.random.default_rng(seed)
    out = np.empty((BANK, len(LAYOUT), SIZE, SIZE), dtype=np.int16)
    for b in range(BANK):
        skin = rng.uniform(110, 190)
        texture = 12 * _smooth(rng, 6)
        eye_gap, eye_y, mouth_y = rng.uniform(0.15, 0.2), rng.uniform(0.36, 0.42), rng.uniform(0.7, 0.76)
        for k, (pose, expr, yaw) in enumerate(LAYOUT):
            dx = 0.25 * np.sin(np.radians(yaw)) * 0.5   # inner face moves with the nose
            img = 40 + (skin - 40) * _blob(0.5 + dx / 3, 0.52, 0.33, 0.42) + texture
            img -= 60 * _blob(0.5, 0.05, 0.45, 0.15)                                  # hair
            for side in (-1, 1):
                if abs(yaw) > 60 and side == np.sign(yaw) * -1:
                    continue                                                          # profile: one eye
                ex = 0.5 + dx + side * eye_gap * np.cos(np.radians(yaw))
                img -= 70 * _blob(ex, eye_y, 0.05, 0.03)                              # eye
                lift = 0.03 if expr == "surprise" else (-0.01 if expr == "sad" else 0.0)
                img -= 40 * _blob(ex, eye_y - 0.08 - lift, 0.08, 0.015)               # brow
            img -= 25 * _blob(0.5 + 1.3 * dx, 0.56, 0.03, 0.08)                       # nose
            mx = 0.5 + dx
            if expr == "happy":
                img += 50 * _blob(mx, mouth_y, 0.14, 0.025) - 45 * _blob(mx, mouth_y + 0.02, 0.12, 0.02)
            elif expr == "surprise":
                img -= 80 * _blob(mx, mouth_y, 0.05, 0.06)
            elif expr == "sad":
                img -= 45 * _blob(mx, mouth_y + 0.01, 0.1, 0.015) - 20 * _blob(mx, mouth_y - 0.02, 0.08, 0.01)
            else:
                img -= 45 * _blob(mx, mouth_y, 0.1, 0.012)
            out[b, k] = np.clip(img, 0, 255).round().astype(np.int16)
    return out


def landmark_template() -> np.ndarray:
    """float32 68 x 2: a plausible frontal 68-point layout in a 64 px crop (jaw, brows, nose, eyes, mouth)."""
    pts = []
    a = np.linspace(np.pi, 0, 17)
    pts += list(zip(32 + 26 * np.cos(a), 30 + 30 * np.sin(a)))                        # jaw 0-16
    for cx in (20, 44):
        pts += [(cx - 8 + 4 * i, 21 - (2 if i == 2 else 1 if i in (1, 3) else 0)) for i in range(5)]  # brows
    pts += [(32, 26 + 3 * i) for i in range(4)] + [(28 + 2 * i, 39 - (1 if i == 2 else 0)) for i in range(5)]
    for cx in (20, 44):
        e = np.linspace(0, 2 * np.pi, 7)[:-1]
        pts += list(zip(cx + 5 * np.cos(e + np.pi), 26 + 2 * np.sin(e + np.pi)))      # eyes
    m = np.linspace(0, 2 * np.pi, 13)[:-1]
    pts += list(zip(32 + 10 * np.cos(m + np.pi), 48 + 4 * np.sin(m + np.pi)))         # outer lip
    m = np.linspace(0, 2 * np.pi, 9)[:-1]
    pts += list(zip(32 + 6 * np.cos(m + np.pi), 48 + 2 * np.sin(m + np.pi)))          # inner lip
    out = np.asarray(pts, dtype=np.float32)
    assert out.shape == (68, 2), out.shape
    return out


def is_built(folder: Path, n: int) -> bool:
    marker = folder / "scale_data.json"
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("faces") == n and info.get("version") == FORMAT_VERSION


def build(folder: Path, n: int, seed: int = 0) -> float | None:
    """Write the synthetic prepared folder of ``n`` faces (streaming; a finished one is reused). Returns the
    seconds it took (``None`` when reused)."""
    if is_built(folder, n):
        return None
    t0 = time.perf_counter()
    part = folder.with_name(folder.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    part.mkdir(parents=True)
    rng = np.random.default_rng(seed + 1)
    bank = face_bank(seed)
    noise = rng.integers(-7, 8, size=(NOISE_BANK, SIZE, SIZE)).astype(np.int16)
    template = landmark_template()
    faces = np.lib.format.open_memmap(part / "faces.npy", mode="w+", dtype=np.uint8, shape=(n, SIZE, SIZE))
    lms = np.lib.format.open_memmap(part / "landmarks.npy", mode="w+", dtype=np.float32, shape=(n, 68, 2))
    layout_shift = np.asarray([0.25 * np.sin(np.radians(y)) * 0.5 * SIZE for _, _, y in LAYOUT], np.float32)
    n_subjects = (n + FACES_PER_SUBJECT - 1) // FACES_PER_SUBJECT
    with open(part / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "path", "subject", "expression", "pose", "yaw_deg", "flipped", "source_path", "dataset"])
        for lo in range(0, n, CHUNK):
            rows = np.arange(lo, min(n, lo + CHUNK))
            subject, k = rows // FACES_PER_SUBJECT, rows % FACES_PER_SUBJECT
            img = bank[subject % BANK, k]                                    # fancy indexing: a copy
            img += noise[rng.integers(0, NOISE_BANK, len(rows))]
            img += noise[rng.integers(0, NOISE_BANK, len(rows))][:, :, ::-1]
            img += (rng.integers(-12, 13, len(rows)) + (subject * 7919) % 21 - 10).astype(np.int16)[:, None, None]
            faces[lo:lo + len(rows)] = np.clip(img, 0, 255)
            lm = template[None] + rng.normal(0, 0.6, size=(len(rows), 68, 2)).astype(np.float32)
            lm[:, 17:, 0] += layout_shift[k][:, None]
            lms[lo:lo + len(rows)] = lm
            yaw_jitter = rng.normal(0, 3, len(rows))
            for r, s, kk, yj in zip(rows.tolist(), subject.tolist(), k.tolist(), yaw_jitter.tolist()):
                pose, expr, yaw = LAYOUT[kk]
                fid = f"P{s:06d}_{kk}"
                w.writerow([fid, f"faces/{fid}.png", f"P{s:06d}", expr, pose, f"{yaw + yj:.1f}", "0", "",
                            "synthetic"])
    faces.flush()
    lms.flush()
    del faces, lms
    subjects = [f"P{s:06d}" for s in range(n_subjects)]
    splits = {"train": [s for i, s in enumerate(subjects) if i % 10 < 8],
              "val": [s for i, s in enumerate(subjects) if i % 10 == 8],
              "test": [s for i, s in enumerate(subjects) if i % 10 == 9]}
    (part / "splits.json").write_text(json.dumps(splits))
    (part / "scale_data.json").write_text(json.dumps({"faces": n, "subjects": n_subjects, "seed": seed,
                                                      "version": FORMAT_VERSION}) + "\n")
    os.replace(part, folder)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------- child mode
def _status_mb() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MB (empty where /proc is missing)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def _mapped_rss_mb(path: Path) -> float:
    """Resident MB of this process's memory maps of ``path`` (``/proc/self/smaps``; NaN where missing)."""
    target, total, inside, found = str(Path(path).resolve()), 0, False, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    inside = len(head) >= 6 and line.rstrip("\n").endswith(target)
                    found |= inside
                elif inside and line.startswith("Rss:"):
                    total += int(head[1])
    except OSError:
        return float("nan")
    return total / 1024 if found else float("nan")


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux


def _peak_mb() -> float:
    """This process's peak RSS in MB: the kernel's high-water mark of its own memory (``VmHWM``). Where
    /proc is missing, ``getrusage(RUSAGE_SELF).ru_maxrss``, which on Linux is also at least the RSS the parent
    had when it started this process (exec keeps the larger of the two), so it overstates a child's peak."""
    return _status_mb().get("VmHWM") or _ru_maxrss_mb()


def _reset_peak() -> bool:
    """Set the kernel's peak RSS of this process to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def evict(folder: Path) -> bool:
    """Drop this set's files from the page cache (written back first), so that a child reads them from disk as
    it would a set not just written; False where the system has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for f in folder.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def child_config(data: Path, batch: int, threads: int) -> dict:
    from nfgan.training.config import load_config

    return load_config(REPO / "configs" / "baseline_pix2pix.yaml", overrides={
        "name": "scale_data",
        "data": {"root": str(data), "splits": str(data / "splits.json"), "flip_left_poses": True,
                 "frontalize_inputs": False},
        "loss": {"feat": 0.0, "id": 0.0},
        "train": {"batch_size": batch, "bf16": False, "threads": threads, "device": "cpu"}})


def child(data: Path, steps: int, batch: int, threads: int, advice: str = "normal") -> dict:
    """Open ``data`` with a Trainer and train a few steps; the measurements as a dict (also printed as one
    ``scale_data_child {json}`` line). ``advice="random"``: ``madvise(MADV_RANDOM)`` on the faces' memory map
    after the open (no readahead around each face read), to compare with the default."""
    import mmap

    import torch

    import nfgan.training.loop as loop

    cfg = child_config(data, batch, threads)
    peak_imports = _peak_mb()
    rss_before = _rss_now_mb()
    reset = _reset_peak()
    timing: dict = {}

    class TimedTrainingData(loop.TrainingData):
        def __init__(self, *a, **kw):
            t = time.perf_counter()
            super().__init__(*a, **kw)
            timing["data_s"] = time.perf_counter() - t
            timing["peak_data_mb"] = _peak_mb()

    loop.TrainingData = TimedTrainingData
    try:
        t = time.perf_counter()
        trainer = loop.Trainer(cfg)
        open_s = time.perf_counter() - t
    finally:
        loop.TrainingData = TimedTrainingData.__bases__[0]
    peak_open = _peak_mb()
    at_open = _status_mb()
    ds = trainer.data.sources[0].dataset
    if advice == "random":
        ds.images._mmap.madvise(mmap.MADV_RANDOM)
    read, wait = [0.0], [0.0]
    load, next_batch = trainer.data.load, trainer.sample_batch

    def timed_load(*a, **kw):            # the batch's reads from the memory maps (faces of x, y, g)
        t0 = time.perf_counter()
        b = load(*a, **kw)
        read[0] += time.perf_counter() - t0
        return b

    def timed_wait(*a, **kw):            # how long the step waited for its batch (train.prefetch reads ahead)
        t0 = time.perf_counter()
        b = next_batch(*a, **kw)
        wait[0] += time.perf_counter() - t0
        return b

    trainer.data.load, trainer.sample_batch = timed_load, timed_wait
    trainer.train_step()                       # warm-up (allocator, optimizer state)
    read[0] = wait[0] = 0.0
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    train_s = time.perf_counter() - t
    peak_train = _peak_mb()
    at_end = _status_mb()
    faces_resident = _mapped_rss_mb(ds.root / "faces.npy")
    n = len(ds)
    # the kernel peak was reset before the open: the whole process's peak is the larger of the two
    total = (lambda p: max(p, peak_imports)) if reset else (lambda p: p)
    out = {
        "faces": n, "subjects": len(ds.subjects()), "face_mb": n * ds.size * ds.size / 2**20,
        "train_pairs": len(trainer.data.train), "val_pairs": len(trainer.data.val),
        "open_s": open_s, "data_s": timing["data_s"],
        "rss_before_mb": rss_before, "rss_open_mb": at_open.get("VmRSS", float("nan")),
        "data_growth_mb": timing["peak_data_mb"] - rss_before if reset else float("nan"),
        "open_growth_mb": peak_open - rss_before if reset else float("nan"),
        "peak_open_mb": total(peak_open), "peak_train_mb": total(peak_train), "peak_reset": reset,
        "anon_open_mb": at_open.get("RssAnon", float("nan")), "file_open_mb": at_open.get("RssFile", float("nan")),
        "anon_end_mb": at_end.get("RssAnon", float("nan")), "file_end_mb": at_end.get("RssFile", float("nan")),
        "faces_resident_mb": faces_resident,
        "ru_maxrss_mb": _ru_maxrss_mb(),
        "images_per_s": steps * batch / train_s, "read_ms_per_step": 1000 * read[0] / steps,
        "wait_ms_per_step": 1000 * wait[0] / steps,
        "steps": steps, "batch": batch, "threads": threads, "advice": advice,
        "images_type": f"{type(ds.images).__module__}.{type(ds.images).__name__}",
        "images_memmap": isinstance(ds.images, np.memmap),
        "landmarks_memmap": isinstance(ds.landmarks, np.memmap),
        "torch": torch.__version__,
    }
    print(f"{CHILD_TAG} {json.dumps(out)}", flush=True)
    return out


def run_child(data: Path, steps: int, batch: int, threads: int, advice: str = "normal") -> dict:
    """Measure ``data`` in a fresh Python process; returns the child's dict."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"),
                                                                       os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(data), "--steps", str(steps),
           "--batch", str(batch), "--threads", str(threads), "--advice", advice]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(CHILD_TAG + " ")]
    if p.returncode or not lines:
        raise RuntimeError(f"child for {data} failed (exit {p.returncode}):\n{p.stdout[-2000:]}")
    return json.loads(lines[-1][len(CHILD_TAG) + 1:])


# ----------------------------------------------------------------------------------------------- main
def parse_sizes(text: str) -> list[int]:
    out = []
    for tok in text.split(","):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", tok)
        if not m:
            raise argparse.ArgumentTypeError(f"--sizes: {tok!r} is not a number (10000, 10k, 1M)")
        v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
        if v < FACES_PER_SUBJECT * 10 or v != int(v):
            raise argparse.ArgumentTypeError(f"--sizes: {tok!r}: at least {FACES_PER_SUBJECT * 10} whole faces")
        out.append(int(v))
    return out


COLUMNS = ("faces", "subjects", "build_s", "face_MB", "open_s", "data_s", "open_s/1k", "data_s/1k", "rss0", "data+",
           "peak_open", "peak_train", "anon_end", "faces_res", "peak/faces", "img/s", "read_ms", "wait_ms")
WIDTHS = (9, 8, 7, 7, 6, 6, 9, 9, 5, 6, 9, 10, 8, 9, 10, 5, 7, 7)
HEADER = " ".join(f"{c:>{w}}" for c, w in zip(COLUMNS, WIDTHS))


def table_line(r: dict, build_s: float | None) -> str:
    values = (r["faces"], r["subjects"], "reused" if build_s is None else f"{build_s:.1f}", f"{r['face_mb']:.1f}",
              f"{r['open_s']:.2f}", f"{r['data_s']:.2f}", f"{1000 * r['open_s'] / r['faces']:.4f}",
              f"{1000 * r['data_s'] / r['faces']:.4f}",
              f"{r['rss_before_mb']:.0f}", f"{r['data_growth_mb']:.1f}", f"{r['peak_open_mb']:.0f}",
              f"{r['peak_train_mb']:.0f}", f"{r['anon_end_mb']:.0f}", f"{r['faces_resident_mb']:.1f}",
              f"{r['peak_train_mb'] / r['face_mb']:.3f}", f"{r['images_per_s']:.1f}", f"{r['read_ms_per_step']:.0f}",
              f"{r.get('wait_ms_per_step', float('nan')):.0f}")
    return " ".join(f"{v:>{w}}" for v, w in zip(values, WIDTHS))


def final_line(results: list[dict]) -> str:
    sizes = ",".join(str(r["faces"]) for r in results)
    peaks = ",".join(f"{r['peak_train_mb']:.0f}" for r in results)
    opens = ",".join(f"{r['open_s']:.2f}" for r in results)
    return f"scale_data sizes={sizes} peak_rss_mb={peaks} open_s={opens}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=parse_sizes, help="faces per set, comma-separated (default 10k,100k,1M)")
    ap.add_argument("--quick", action="store_true", help="10k and 100k only")
    ap.add_argument("--work", type=Path, help="keep the sets here (DIR/faces_<N>), reusing built ones")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps after 1 warm-up (default 5)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warm", action="store_true",
                    help="leave the sets in the page cache (default: drop them before each child, as for a set "
                         "that was not just written)")
    ap.add_argument("--advice", choices=("normal", "random"), default="normal",
                    help="random: madvise(MADV_RANDOM) on the faces' memory map before training (default normal: "
                         "as nfgan opens it)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        child(args.child, args.steps, args.batch, args.threads, args.advice)
        return 0
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    tmp = None if args.work else tempfile.mkdtemp(prefix="nfgan-scale-")
    work = args.work or Path(tmp)
    print(f"scale_data: sets in {work} | batch {args.batch} | {args.steps} timed steps | threads {args.threads} | "
          f"pix2pix U-Net (configs/baseline_pix2pix.yaml), fp32, CPU | page cache "
          f"{'warm' if args.warm else 'dropped before each child'} | faces madvise {args.advice}", flush=True)
    print("open_s = Trainer(cfg) (TrainingData + pairs + model build), data_s = its TrainingData part, both also "
          "per 1000 faces. MB: face_MB = faces.npy bytes (what loading the faces would cost); rss0 = RSS before "
          "the open (imports); data+ = RSS growth while TrainingData was built; peak_* = the child's peak RSS "
          "(VmHWM) after the open / after training; anon_end = anonymous RSS after training; faces_res = resident "
          "part of the faces.npy memory map after training; read_ms = batch reads per step; wait_ms = the part of "
          "them the step waited for (train.prefetch reads the next batch during the step)", flush=True)
    print(HEADER, flush=True)
    results = []
    try:
        for n in sizes:
            folder = work / f"faces_{n}"
            build_s = build(folder, n)
            if not args.warm:
                evict(folder)
            r = run_child(folder, args.steps, args.batch, args.threads, args.advice)
            if not r["images_memmap"]:
                print(f"warning: {folder}: faces were not memory-mapped ({r['images_type']})", flush=True)
            results.append(r)
            print(table_line(r, build_s), flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(final_line(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
