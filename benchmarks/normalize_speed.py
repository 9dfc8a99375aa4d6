"""Inference speed of the shipped models on aligned faces (faces/s) and on photos, per backend, in one run.

    python benchmarks/normalize_speed.py [--n 1024] [--threads 2] [--batch 64] [--repeats 3]
                                         [--prepared out/london64|none] [--quick] [--cnn-photos 20]

The 20 example photos (``examples/london/``) are aligned once (profiles the detector misses are dropped) and
repeated to ``--n`` faces, keeping each face's pose, mirroring flag and landmarks. Measured in one run, every
timed pass interleaved with the others (the machine is shared: a load that comes and goes then hits every row
alike) and each figure the best of ``--repeats`` passes after a warm-up pass:

* the landmark frontalisation alone (``nfgan.data.frontalize.frontalize_batch`` on the turned faces), onto the
  mean layout and onto each face's own predicted frontal landmarks (``nfgan.data.frontal_shape``, the option
  ``data.frontalize_shape: own``), with the ratio of the two;
* the default normaliser through each path, full (its input rule: mirroring + frontalisation, then the U-Net)
  and network only (the same inputs already mirrored and frontalised), without its identity pull of turned faces
  (``identity_pull=False``; the ONNX graph has none): torch fp32 = today's path (``Generator.normalize``; every
  ratio is taken against its full rate), torch channels-last +
  inference_mode, torch bf16 autocast (with and without channels-last), onnxruntime (``nfgan export`` graph);
  with each path's largest difference from today's output in gray levels, on the example faces and on the
  prepared faces of ``--prepared`` (default ``out/london64`` when present);
* what the default's expression directions cost (``model.skip_proj_k``; a file without them has no such row): the
  same weights with a U-Net built without them, torch fp32, full and network only, and how far its outputs are
  from today's (not a path to today's outputs);
* the default as it ships, with the identity pull of its turned faces (``nfgan.inference.identity_pull``: five
  gradient steps through the U-Net and dlib's network per turned face), torch fp32, and how far it moves them;
* the NFGAN (Enc + Dec), torch fp32 and onnxruntime;
* the FLOP-bound limit: the U-Net's FLOPs per face (``torch.utils.flop_counter.FlopCounterMode``) against this
  CPU's matmul rate (fp32 and bf16, 2048 x 2048, measured here with the same threads);
* end to end: photos -> aligned (face detector + dlib's 68 landmarks) -> normalised
  (``Normalizer.normalize_photos``) on the 20 example photos, per detector (``nfgan.data.align.DETECTORS``):
  dlib HOG (today's) and the ported BlazeFace through torch fp32 (without the pull) and onnxruntime, and HOG
  with the default's pull, passes interleaved, best of ``--repeats``; dlib's CNN (MMOD) detector, ~0.6 s a photo on this CPU, with torch fp32 only, one timed
  pass on the first ``--cnn-photos`` photos (default all 20, 2 with ``--quick``; 0: left out). Photos/s counts every photo given, aligned or not
  (HOG aligns 16 of the 20, BlazeFace 12 - it refuses the four left profiles HOG takes for 3/4 views -,
  the CNN detector 16).

The last line is ``normalize_speed faces_per_s=X ratio=R``: the default normaliser's fastest full path whose
outputs stay within 1 gray level of today's, and its ratio to today's path. ``--quick`` (tests): no prepared
faces, no bf16 rows beyond one, a small matmul.
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
from nfgan.data.frontal_shape import shipped as shipped_frontal_shape  # noqa: E402
from nfgan.data.frontalize import frontalize_batch, is_turned  # noqa: E402
from nfgan.data.generator_input import InputRule  # noqa: E402
from nfgan.inference.normalizer import Normalizer, default_model_path, nfgan_model_path  # noqa: E402

PARITY = 1   # gray levels a faster path may differ from today's output and still count
PULL = "torch fp32 + identity pull (as shipped)"   # the default with its identity pull of turned faces
NODIRS = "torch fp32 without expression directions"   # the default's weights without its skip projection


def example_photos() -> list[Path]:
    return sorted((REPO / "examples" / "london").glob("*/*.jpg"))


def example_faces(n: int):
    crops, poses, flipped, landmarks = [], [], [], []
    for photo in example_photos():
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


def prepared_faces(folder: Path | None):
    """A prepared folder's faces, poses, mirroring flags and landmarks (``None`` when absent)."""
    if folder is None or not (folder / "manifest.csv").is_file():
        return None
    from nfgan.data.dataset import PreparedDataset

    ds = PreparedDataset(folder)
    lms = np.asarray(ds.landmarks) if ds.landmarks is not None else None
    return np.asarray(ds.images), ds.column("pose"), ds.column("flipped"), lms


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved(fns: dict, repeats: int) -> dict:
    """Best time of each callable, the passes taken round-robin (one warm-up pass each first)."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def flops_per_face(module: torch.nn.Module, size: int = 64) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 1, size, size))
    return float(counter.get_total_flops())


def matmul_gflops(dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    reps = max(1, int(4e9 / (2 * n ** 3)))
    sec = best_time(lambda: [a @ b for _ in range(reps)], repeats) / reps
    return 2 * n ** 3 / sec / 1e9


def without_directions(path) -> object:
    """The model file at ``path`` with its U-Net rebuilt without expression directions (``model.skip_proj_k`` 0),
    the same weights otherwise."""
    g = load_model(path)
    gen = g.model_class.build_generator({**g.info["model"], "skip_proj_k": 0})["gen"]
    gen.load_state_dict({k: v for k, v in g.nets["gen"].state_dict().items() if not k.startswith("skip_proj")})
    g.nets["gen"] = gen.eval()
    return g


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prepared", default=str(REPO / "out" / "london64"),
                   help="prepared folder whose faces the parity is also measured on ('none': skip)")
    p.add_argument("--quick", action="store_true", help="fewer rows and a smaller matmul (tests)")
    p.add_argument("--cnn-photos", type=int, default=None,
                   help="example photos for the end-to-end row of dlib's slow CNN detector (default all 20, with "
                        "--quick 2; 0: skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nfgan.inference.onnx_backend import load_onnx_generator, require_onnxruntime

    try:
        require_onnxruntime()
        have_ort = True
    except ImportError:
        have_ort = False
    faces, poses, flipped, lms = example_faces(args.n)
    n_unique = min(args.n, len({f.tobytes() for f in faces}))
    turned = [i for i, q in enumerate(poses) if is_turned(q)]
    bs = args.batch
    default = load_model(default_model_path())
    plain = load_model(default_model_path())
    plain.rule = InputRule(False, frontalize=False)
    nfgan = load_model(nfgan_model_path())
    inputs = default.generator_inputs(faces, poses, flipped, lms)   # what the U-Net reads: mirrored, frontalised

    # the paths: name -> (full path on raw aligned faces, network only on `inputs`)
    paths = {"torch fp32 (today's path)": ({}, default, plain)}
    paths["torch channels_last + inference_mode"] = ({"channels_last": True}, default, plain)
    paths["torch bf16 autocast"] = ({"bf16": True}, default, plain)
    if not args.quick:
        paths["torch bf16 + channels_last"] = ({"bf16": True, "channels_last": True}, default, plain)
    if have_ort:
        ort_full = load_onnx_generator(default_model_path(), threads=args.threads)
        ort_plain = load_onnx_generator(default_model_path(), threads=args.threads)
        ort_plain.rule = InputRule(False, frontalize=False)
        paths["onnxruntime"] = ({}, ort_full, ort_plain)
    own = shipped_frontal_shape()
    fns = {"frontalisation alone (turned faces)":
           lambda: frontalize_batch(faces[turned], lms[turned], [poses[i] for i in turned]),
           "own-shape frontalisation alone": lambda: frontalize_batch(faces[turned], lms[turned],
                                                                     [poses[i] for i in turned], shape=own)}
    for name, (kw, full, net_only) in paths.items():
        fns[name] = (lambda g=full, kw=kw: g.normalize(faces, poses, flipped, bs, landmarks=lms, identity_pull=False,
                                                       **kw))
        fns[name + " [net]"] = (lambda g=net_only, kw=kw: g.normalize(inputs, batch_size=bs, **kw))
    if default.pull is not None:
        fns[PULL] = lambda: default.normalize(faces, poses, flipped, bs, landmarks=lms)
    undirected = None
    if int(default.info["model"].get("skip_proj_k", 0)):   # what the projection costs: the same weights without it
        undirected, undirected_net = without_directions(default_model_path()), without_directions(default_model_path())
        undirected_net.rule = InputRule(False, frontalize=False)
        fns[NODIRS] = lambda: undirected.normalize(faces, poses, flipped, bs, landmarks=lms, identity_pull=False)
        fns[NODIRS + " [net]"] = lambda: undirected_net.normalize(inputs, batch_size=bs)
    fns["NFGAN torch fp32"] = lambda: nfgan.normalize(faces, poses, flipped, bs)
    if have_ort:
        nfgan_ort = load_onnx_generator(nfgan_model_path(), threads=args.threads)
        fns["NFGAN onnxruntime"] = lambda: nfgan_ort.normalize(faces, poses, flipped, bs)
    secs = interleaved(fns, args.repeats)

    # parity with today's path: the example faces, and the prepared faces
    today = default.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs, landmarks=lms[:n_unique],
                              identity_pull=False)
    prep = None if args.quick or args.prepared == "none" else prepared_faces(Path(args.prepared))
    today_prep = default.normalize(prep[0], prep[1], prep[2], bs, landmarks=prep[3], identity_pull=False) \
        if prep else None
    diffs = {}
    for name, (kw, full, _) in paths.items():
        d = max_diff(full.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs,
                                    landmarks=lms[:n_unique], identity_pull=False, **kw), today)
        dp = max_diff(full.normalize(prep[0], prep[1], prep[2], bs, landmarks=prep[3], identity_pull=False, **kw),
                      today_prep) if prep else None
        diffs[name] = (d, dp)
    if PULL in fns:   # how far the pull moves the turned faces: mean and largest change in gray levels
        pulled = default.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs, landmarks=lms[:n_unique])
        moved = np.abs(pulled.astype(int) - today.astype(int))[[i for i in turned if i < n_unique]]
    nf_today = nfgan.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs)
    nf_diff = max_diff(nfgan_ort.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs), nf_today) \
        if have_ort else None

    # FLOP bound
    gflop = flops_per_face(default.nets["gen"], default.size) / 1e9
    mm_n = 1024 if args.quick else 2048
    rate32 = matmul_gflops(torch.float32, mm_n, args.repeats)
    rate16 = matmul_gflops(torch.bfloat16, mm_n, args.repeats)

    # end to end: photos -> aligned -> normalised, per detector and backend
    photos = example_photos()
    cnn_n = args.cnn_photos if args.cnn_photos is not None else (2 if args.quick else len(photos))
    backends = {"torch fp32 (today's path)": Normalizer.from_checkpoint()}
    pull_on = {"torch fp32 (today's path)": False, PULL: True}
    if have_ort:
        backends["onnxruntime"] = Normalizer.from_checkpoint(backend="onnxruntime", threads=args.threads)
    e2e = {}     # (detector, backend) -> (normaliser, photos)
    for det in ("hog", "blazeface"):
        for bname, norm in backends.items():
            e2e[(det, bname)] = (norm, photos)
    if default.pull is not None:
        e2e[("hog", PULL)] = (backends["torch fp32 (today's path)"], photos)
    e2e_ok = {k: sum(norm.normalize_photos(ph, detector=k[0], identity_pull=pull_on.get(k[1], False)).ok)
              for k, (norm, ph) in e2e.items()}  # + warm-up
    e2e_sec = interleaved({k: (lambda norm=norm, ph=ph, det=k[0], on=pull_on.get(k[1], False):
                               norm.normalize_photos(ph, detector=det, identity_pull=on))
                           for k, (norm, ph) in e2e.items()}, max(1, args.repeats - 1))
    if cnn_n > 0:
        torch_norm = backends["torch fp32 (today's path)"]
        key, cnn_photos = ("cnn", "torch fp32 (today's path)"), photos[:cnn_n]
        e2e[key] = (torch_norm, cnn_photos)
        torch_norm.normalize_photos(cnn_photos[:1], detector="cnn", identity_pull=False)   # warm-up
        t0 = time.perf_counter()
        e2e_ok[key] = sum(torch_norm.normalize_photos(cnn_photos, detector="cnn", identity_pull=False).ok)
        e2e_sec[key] = time.perf_counter() - t0

    print(f"{args.n} aligned faces ({n_unique} distinct, {len(turned)} turned), batch {bs}, {args.threads} threads, "
          f"torch {torch.__version__}" + ("" if have_ort else "; onnxruntime not installed: its rows left out"))
    prep_note = f"{len(prep[0])} prepared faces of {args.prepared}" if prep else "no prepared faces"
    print(f"max |diff| from today's output in gray levels: on the {n_unique} example faces / on {prep_note}")
    base = args.n / secs["torch fp32 (today's path)"]
    print(f"{'path (default normaliser unless named)':<42} {'faces/s':>9} {'x today':>8} {'net only':>9} "
          f"{'x today':>8} {'max diff':>9}")
    print(f"{'frontalisation alone (turned faces)':<42} {len(turned) / secs['frontalisation alone (turned faces)']:>9.1f}")
    own_x = secs["frontalisation alone (turned faces)"] / secs["own-shape frontalisation alone"]
    print(f"{'own-shape frontalisation alone':<42} {len(turned) / secs['own-shape frontalisation alone']:>9.1f} "
          f"{own_x:>8.2f}  (x the mean-layout warp)")
    fastest = None
    for name in paths:
        rate, net_rate = args.n / secs[name], args.n / secs[name + " [net]"]
        d, dp = diffs[name]
        shown = f"{d}" + ("" if dp is None else f" / {dp}")
        print(f"{name:<42} {rate:>9.1f} {rate / base:>8.2f} {net_rate:>9.1f} {net_rate / base:>8.2f} {shown:>9}")
        if d <= PARITY and (dp is None or dp <= PARITY) and (fastest is None or rate > fastest[1]):
            fastest = (name, rate)
    if undirected is not None:   # not a path to today's outputs: the projection moves them
        rate, net_rate = args.n / secs[NODIRS], args.n / secs[NODIRS + " [net]"]
        d = max_diff(undirected.normalize(faces[:n_unique], poses[:n_unique], flipped[:n_unique], bs,
                                          landmarks=lms[:n_unique], identity_pull=False), today)
        print(f"{NODIRS:<42} {rate:>9.1f} {rate / base:>8.2f} {net_rate:>9.1f} {net_rate / base:>8.2f} {d:>9}")
    if PULL in secs:
        rate = args.n / secs[PULL]
        print(f"{PULL:<42} {rate:>9.1f} {rate / base:>8.2f}  (turned faces moved {moved.mean():.1f} gray levels on "
              f"average, {moved.max()} at most)")
    for name in ("NFGAN torch fp32", "NFGAN onnxruntime"):
        if name in secs:
            rate = args.n / secs[name]
            extra = f"{nf_diff:>9}" if name == "NFGAN onnxruntime" else f"{'':>9}"
            print(f"{name:<42} {rate:>9.1f} {rate / base:>8.2f} {'':>9} {'':>8} {extra}")
    print(f"U-Net: {gflop:.4f} GFLOP per face; this CPU's matmul ({mm_n}^2, {args.threads} threads): "
          f"{rate32:.0f} GFLOP/s fp32, {rate16:.0f} GFLOP/s bf16 -> FLOP-bound limit "
          f"{rate32 / gflop:.0f} faces/s fp32, {rate16 / gflop:.0f} faces/s bf16")
    shown_det = {"hog": "HOG", "blazeface": "BlazeFace", "cnn": "CNN"}
    for (det, bname), (_, ph) in e2e.items():
        how = "one pass" if det == "cnn" else f"best of {max(1, args.repeats - 1)}"
        print(f"end to end, photo -> aligned ({shown_det[det]}) -> normalised, {bname}: "
              f"{len(ph) / e2e_sec[(det, bname)]:.1f} "
              f"photos/s ({e2e_ok[(det, bname)]} of {len(ph)} photos normalised; {how})")
    print(f"fastest path within {PARITY} gray level of today's: {fastest[0]}")
    print(f"normalize_speed faces_per_s={fastest[1]:.1f} ratio={fastest[1] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
