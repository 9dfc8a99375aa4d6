"""The demo job (``python -m nfgan.demo``, ``make demo``): photos in, frontal neutral faces out, with numbers.

Takes the example photos shipped in ``examples/london/`` (two held-out London subjects, all five views,
neutral and smiling; see its ATTRIBUTION.md), aligns each photo (:func:`nfgan.data.align.align_face`), normalises
the aligned face with the shipped default normaliser
(``src/nfgan/assets/pix2pix_all_data_research64.safetensors``, non-commercial research use only, see
docs/model_card.md; ``--model`` takes a shipped model's name - ``cc_by``, ``london``, ``nfgan`` - or any run or
model file) and writes ``demo/grid.png`` - one row per photo:
photo | aligned input | output | ground truth (the subject's aligned frontal neutral photo) -
``demo/overview.png`` (the same faces, one column per expression x view, three rows per subject) and
``demo/results.csv``. It prints, per photo
and overall, the identity check (embedding distance input vs output against the threshold calibrated at 1 %
false accepts on real faces, stored in the model file by ``tools/export_default_model.py``) and whether the
expression classifiers call the input and the output neutral.

A photo where no face can be aligned (the HOG detector misses most profile views) is reported with the reason
and skipped; the demo goes on. Any folder with a ``manifest.csv`` (``path,subject,expression,pose``) works as
``--photos``; without a manifest every image in the folder is used and poses come from the aligner's yaw.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nfgan.atomic import atomic_open, save_image

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def default_model() -> Path:
    from nfgan.inference.normalizer import default_model_path

    return default_model_path()


def list_photos(folder: Path) -> list[dict]:
    """``[{path, subject, expression, pose}]`` from ``folder/manifest.csv``, or every image in the folder."""
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        missing = [c for c in ("path", "subject", "expression") if rows and c not in rows[0]]
        if missing:
            raise ValueError(f"{manifest}: missing column(s) {missing} (need path,subject,expression[,pose])")
        from nfgan.data.schema import canonical_expression

        return [{"path": folder / r["path"], "subject": r["subject"],
                 "expression": canonical_expression(r["expression"]), "pose": r.get("pose") or ""} for r in rows]
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"{folder}: no manifest.csv and no images")
    return [{"path": p, "subject": p.stem, "expression": "", "pose": ""} for p in photos]


def _thumb(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    from nfgan.data.images import read_gray_image

    im = read_gray_image(path)
    im.thumbnail((size, size), Image.LANCZOS)
    canvas = Image.new("L", (size, size), 255)
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return np.asarray(canvas)


def _up(face: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(face).resize((size, size), Image.BICUBIC))


def overview(aligned: list[dict], outs: np.ndarray, gt: dict[str, np.ndarray], tile: int = 96) -> np.ndarray:
    """A wide picture (the README's): per subject three rows - photo, aligned input, output - with one column
    per expression x view, and the ground-truth frontal neutral face in an extra last column of the output
    row. Columns are the union over subjects (blank where a subject has no aligned photo)."""
    from nfgan.evaluation.report import POSE_ORDER
    from nfgan.evaluation.report import tile as mosaic

    def key(a):   # neutral first, then views left to right (unknown poses last)
        order = POSE_ORDER.index(a["pose"]) if a["pose"] in POSE_ORDER else len(POSE_ORDER)
        return (a["expression"] != "neutral", a["expression"], order, a["pose"])

    columns = sorted({key(a) for a in aligned})
    col_of = {k: i for i, k in enumerate(columns)}
    labels = [f"{k[1][:3]} {k[3].replace('_3quarter', ' 3/4').replace('_profile', ' prof')}" for k in columns] + ["truth"]
    rows, row_labels = [], []
    for subject in dict.fromkeys(a["subject"] for a in aligned):
        block = [[None] * (len(columns) + 1) for _ in range(3)]
        for i, a in enumerate(aligned):
            if a["subject"] == subject:
                c = col_of[key(a)]
                block[0][c], block[1][c], block[2][c] = _thumb(Path(a["path"]), tile), _up(a["crop"], tile), _up(outs[i], tile)
        if subject in gt:
            block[2][-1] = _up(gt[subject], tile)
        rows += block
        row_labels += [f"{subject} photo", f"{subject} aligned", f"{subject} output"]
    return mosaic(rows, labels, row_labels, size=tile, label_w=84)


def run_demo(photos_dir: Path, model_path: Path, out_dir: Path, limit: int | None = None,
             identity: tuple[str, ...] = ("dlib", "faceres"), expression: tuple[str, ...] = ("fer", "faceapi"),
             tile: int = 128, progress: bool = True, detector: str = "hog") -> dict:
    """The whole demo; returns a summary dict (also printed by :func:`main`). ``detector``: the face detector
    of the aligner (``nfgan.data.align.DETECTORS``)."""
    from tqdm import tqdm

    from nfgan.data.align import AlignError, align_face, pose_from_yaw
    from nfgan.evaluation.evaluators import expression_evaluators, identity_evaluators
    from nfgan.inference import load_model
    from nfgan.evaluation.metrics import ssim
    from nfgan.data.images import ImageReadError
    from nfgan.evaluation.report import tile as mosaic

    t0 = time.time()
    g = load_model(model_path)
    size = int(g.info["model"].get("image_size", 64))
    thresholds = dict(g.info.get("identity_thresholds") or {})
    photos = list_photos(Path(photos_dir))
    if limit:
        photos = photos[:limit]
    aligned, failures = [], []
    for ph in tqdm(photos, desc="align", unit="photo", disable=not progress):
        try:
            face = align_face(ph["path"], size=size, detector=detector)
        except (AlignError, ImageReadError) as e:
            failures.append({"path": str(ph["path"]), "reason": getattr(e, "reason", str(e))})
            continue
        pose = ph["pose"] or pose_from_yaw(face.yaw_deg)
        aligned.append({**ph, "pose": pose, "crop": face.crop, "flipped": face.flipped, "landmarks": face.landmarks68})
    # ground truth: each subject's frontal neutral photo (aligned above when present, else from the folder)
    gt: dict[str, np.ndarray] = {}
    for a in aligned:
        if a["pose"] == "frontal" and a["expression"] == "neutral":
            gt.setdefault(a["subject"], a["crop"])
    if not aligned:
        raise ValueError(f"{photos_dir}: no face could be aligned in {len(photos)} photo(s): "
                         + "; ".join(f"{f['path']}: {f['reason']}" for f in failures[:5]))
    crops = np.stack([a["crop"] for a in aligned])
    outs = g.normalize(crops, [a["pose"] for a in aligned], [a["flipped"] for a in aligned],
                       landmarks=np.stack([a["landmarks"] for a in aligned]))
    id_evals = identity_evaluators(list(identity))
    expr_evals = expression_evaluators(list(expression))
    rows: list[dict] = []
    dists = {}
    for ev in id_evals:
        e_in, e_out = ev.embed(crops), ev.embed(outs)
        dists[ev.name] = np.linalg.norm(e_in - e_out, axis=1)
    neutral_in = {ev.name: ev.neutral(crops) for ev in expr_evals}
    neutral_out = {ev.name: ev.neutral(outs) for ev in expr_evals}
    for i, a in enumerate(aligned):
        r = {"photo": str(Path(a["path"]).relative_to(photos_dir)) if Path(a["path"]).is_relative_to(photos_dir)
             else str(a["path"]), "subject": a["subject"], "pose": a["pose"], "expression": a["expression"]}
        for name, d in dists.items():
            r[f"id_dist_{name}"] = round(float(d[i]), 4)
            if name in thresholds:
                r[f"id_pass_{name}"] = bool(d[i] <= thresholds[name])
        for name in neutral_in:
            r[f"input_neutral_{name}"] = bool(neutral_in[name][i])
            r[f"output_neutral_{name}"] = bool(neutral_out[name][i])
        if a["subject"] in gt:
            r["ssim_to_gt"] = round(float(ssim(outs[i], gt[a["subject"]], data_range=255)[0]), 4)
        rows.append(r)
    # grid: photo | aligned input | output | ground truth
    grid_rows = [[_thumb(Path(a["path"]), tile), _up(a["crop"], tile), _up(outs[i], tile),
                  _up(gt[a["subject"]], tile) if a["subject"] in gt else None] for i, a in enumerate(aligned)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = mosaic(grid_rows, ["photo", "aligned input", "output", "ground truth"],
                  [f"{a['subject']} {a['expression'][:3]} {a['pose'].replace('_3quarter', ' 3/4')}" for a in aligned],
                  size=tile, label_w=120)
    save_image(out_dir / "grid.png", grid)
    save_image(out_dir / "overview.png", overview(aligned, outs, gt))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_open(out_dir / "results.csv", "w", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    summary = {"model": str(model_path), "photos": len(photos), "aligned": len(aligned), "failed": failures,
               "identity_pass": {n: float(np.mean([r[f"id_pass_{n}"] for r in rows])) for n in dists if n in thresholds},
               "identity_threshold": {n: thresholds[n] for n in dists if n in thresholds},
               "mean_id_distance": {n: float(d.mean()) for n, d in dists.items()},
               "input_neutral": {n: float(v.mean()) for n, v in neutral_in.items()},
               "output_neutral": {n: float(v.mean()) for n, v in neutral_out.items()},
               "grid": str(out_dir / "grid.png"), "overview": str(out_dir / "overview.png"), "rows": rows, "seconds": round(time.time() - t0, 1)}
    return summary


def format_summary(s: dict) -> str:
    lines = [f"model {s['model']}: {s['aligned']} of {s['photos']} photos aligned"]
    for f in s["failed"]:
        lines.append(f"  skipped {f['path']}: {f['reason']}")
    for r in s["rows"]:
        ids = "  ".join(f"{k[8:]} d={v:.3f}" + ("" if f"id_pass_{k[8:]}" not in r else
                                                (" same" if r[f"id_pass_{k[8:]}"] else " DIFFERENT"))
                        for k, v in r.items() if k.startswith("id_dist_"))
        neu = "  ".join(f"{k[15:]} {'N' if r[k] else '-'}" for k in r if k.startswith("output_neutral_"))
        lines.append(f"  {r['photo']:<34} {r['pose']:<15} {r['expression']:<8} {ids}  output neutral: {neu}")
    for n, v in s["identity_pass"].items():
        lines.append(f"identity kept ({n}, threshold {s['identity_threshold'][n]:.3f} at 1% FAR): {100 * v:.0f}% of outputs")
    for n in s["output_neutral"]:
        lines.append(f"classified neutral ({n}): inputs {100 * s['input_neutral'][n]:.0f}%, "
                     f"outputs {100 * s['output_neutral'][n]:.0f}%")
    lines.append(f"wrote {s['grid']} and {s['overview']} ({s['seconds']} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from nfgan.data.align import DETECTORS

    p = argparse.ArgumentParser(prog="python -m nfgan.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=REPO_ROOT / "examples" / "london", help="photo folder")
    p.add_argument("--model", type=Path, default=None,
                   help="model file, run folder or shipped model name (default: the shipped default normaliser, "
                        "pix2pix_all_data_research64, non-commercial research use only; cc_by: CC BY data only)")
    p.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default demo/)")
    p.add_argument("--limit", type=int, default=None, help="first N photos only")
    p.add_argument("--identity", default="dlib,faceres",
                   help="identity evaluators (dlib, faceres, faceres_deep); a verdict needs the model's threshold "
                        "for it (the shipped models carry dlib's and faceres')")
    p.add_argument("--expression", default="fer,faceapi", help="expression evaluators (fer, faceapi)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="face detector: hog (dlib HOG, default), cnn (dlib MMOD, slow on CPU) or blazeface (faster; "
                        "refuses profiles)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    model = args.model or default_model()
    try:
        s = run_demo(args.photos, model, args.out, args.limit, tuple(x for x in args.identity.split(",") if x),
                     tuple(x for x in args.expression.split(",") if x), progress=not args.quiet,
                     detector=args.detector)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_summary(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
