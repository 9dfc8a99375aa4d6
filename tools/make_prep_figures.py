"""Figures and numbers for docs/preparation.md (face alignment quality).

    python tools/make_prep_figures.py [--data ../shared/data] [--private-out out/prep_figures] [--template]

Writes, from the London set only (CC BY 4.0, may be committed):
  docs/figures/prep_landmark_error.png   histogram of the eye-centre error / inter-ocular distance on the 102
                                         London frontal faces (vs the hand-placed pupils of the .tem files)
  docs/figures/prep_london_grid.png      one London subject, all five views x both expressions: photo and
                                         aligned 64x64 crop ("no face" where the detector gave up)
and, to ``--private-out`` (NOT committed: CK+ and JAFFE must never enter the repository):
  ckplus_grid.png, jaffe_grid.png        one subject each, source crop vs aligned crop
  stats.json                             the numbers quoted in the docs (also printed)

Alignment quality of the pre-cropped mode is measured on ckplus/peak (CK+48): share of crops that get
landmarks, and the spread (standard deviation over images) of the inter-ocular distance, of the eye-line
angle and of the eye midpoint in the 64x64 output, for our alignment and for the "resize only" baseline
(the same landmarks mapped through a plain 48 -> 64 resize).

``--template`` re-derives the canonical template (nfgan.data.align.derive_template) from the 102 London frontal
neutral faces and prints its largest difference from the shipped ``TEMPLATE49``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.adapters import read_tem_pupils  # noqa: E402
from nfgan.data.align import (INNER49, MIRROR68, TEMPLATE49, AlignError, FaceAligner, derive_template,  # noqa: E402
                              eye_centres)
from nfgan.atomic import atomic_open, save_image, write_text  # noqa: E402

FIG = REPO / "docs" / "figures"


def _rows(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _save_fig(fig, path: Path) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def landmark_accuracy(london: Path, aligner: FaceAligner) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errs = []
    for r in _rows(london):
        if r["pose"] != "frontal" or r["expression"] != "neutral":
            continue
        path = london / r["path"]
        pupils = read_tem_pupils(path.with_suffix(".tem"))
        try:
            face = aligner.align(Image.open(path))
        except AlignError:
            errs.append(np.inf)
            continue
        e = np.linalg.norm(eye_centres(face.source_landmarks()) - pupils, axis=1).mean()
        errs.append(e / np.linalg.norm(pupils[1] - pupils[0]))
    errs = np.array(errs)
    finite = errs[np.isfinite(errs)]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(100 * finite, bins=30, color="#4a7ab5")
    ax.axvline(5, color="k", ls="--", lw=1)
    ax.set_xlabel("eye-centre error, % of inter-ocular distance")
    ax.set_ylabel("faces")
    ax.set_title(f"dlib 68-point landmarks vs hand-placed pupils, London frontal (n={len(errs)})")
    _save_fig(fig, FIG / "prep_landmark_error.png")
    plt.close(fig)
    return {"n": int(len(errs)), "mean_pct": round(100 * float(finite.mean()), 2),
            "median_pct": round(100 * float(np.median(finite)), 2),
            "max_pct": round(100 * float(finite.max()), 2), "share_under_5pct": round(float((errs < 0.05).mean()), 3)}


def _label(img: Image.Image, text: str) -> Image.Image:
    img = img.convert("L")
    ImageDraw.Draw(img).text((3, 2), text, fill=255)
    return img


def _pair_grid(pairs: list[tuple[Image.Image, np.ndarray | None, str]], cell: int = 128) -> Image.Image:
    """Columns of (source thumbnail over aligned crop)."""
    grid = Image.new("L", (cell * len(pairs), 2 * cell), 0)
    for k, (src, crop, text) in enumerate(pairs):
        src = src.convert("L")
        f = cell / max(src.size)
        thumb = src.resize((max(1, round(src.width * f)), max(1, round(src.height * f))), Image.LANCZOS)
        grid.paste(thumb, (k * cell + (cell - thumb.width) // 2, (cell - thumb.height) // 2))
        if crop is None:
            grid.paste(_label(Image.new("L", (cell, cell), 40), "no face"), (k * cell, cell))
        else:
            grid.paste(_label(Image.fromarray(crop).resize((cell, cell), Image.NEAREST), text), (k * cell, cell))
    return grid


def london_grid(london: Path, aligner: FaceAligner, subject: str = "001") -> None:
    pairs = []
    for r in sorted(_rows(london), key=lambda r: r["path"].split("/")[-1]):
        if r["subject"] != subject:
            continue
        img = Image.open(london / r["path"])
        try:
            face = aligner.align(img)
            pairs.append((img, face.crop, f"{face.yaw_deg:+.0f}" + (" F" if face.flipped else "")))
        except AlignError:
            pairs.append((img, None, ""))
    save_image(FIG / "prep_london_grid.png", _pair_grid(pairs))


def _spread(eyes: np.ndarray) -> dict:
    """eyes: N x 2 x 2 (left, right eye centre). Standard deviations over images."""
    d = eyes[:, 1] - eyes[:, 0]
    iod = np.linalg.norm(d, axis=1)
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    mid = eyes.mean(1)
    return {"iod_mean_px": round(float(iod.mean()), 2), "iod_sd_px": round(float(iod.std()), 2),
            "angle_sd_deg": round(float(ang.std()), 2),
            "mid_sd_px": round(float(np.sqrt(mid.var(0).sum())), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--private-out", default=str(REPO / "out" / "prep_figures"))
    ap.add_argument("--template", action="store_true", help="re-derive the template and compare")
    args = ap.parse_args()
    data, private = Path(args.data), Path(args.private_out)
    aligner = FaceAligner(size=64)
    stats: dict = {}

    london = data / "london"
    if args.template:
        lms = []
        for r in _rows(london):
            if r["pose"] == "frontal" and r["expression"] == "neutral":
                try:
                    lms.append(aligner.align(Image.open(london / r["path"])).source_landmarks())
                except AlignError:
                    pass
        t = derive_template(lms)
        pos = {v: i for i, v in enumerate(INNER49)}
        mirrored = t[[pos[MIRROR68[v]] for v in INNER49]].copy()
        mirrored[:, 0] = 1 - mirrored[:, 0]
        t = (t + mirrored) / 2
        stats["template_rederived_max_diff"] = round(float(np.abs(t - TEMPLATE49).max()), 5)

    stats["london_landmark_error"] = landmark_accuracy(london, aligner)
    london_grid(london, aligner)

    private.mkdir(parents=True, exist_ok=True)
    ck = data / "ckplus"
    if (ck / "manifest.csv").is_file():
        rows = [r for r in _rows(ck) if r["path"].startswith("peak/")]
        q, sample = precropped_quality(ck, rows, aligner)
        stats["ckplus_peak_precropped"] = q
        subj = sample[0][0]["subject"]
        pairs = [(img, f.crop, f.method) for r, img, f in sample if r["subject"] == subj][:12]
        save_image(private / "ckplus_grid.png", _pair_grid(pairs))

    jaffe = data / "jaffe"
    if (jaffe / "manifest.csv").is_file():
        rows = _rows(jaffe)
        pairs, eyes = [], []
        for r in rows:
            img = Image.open(jaffe / r["path"])
            try:
                face = aligner.align(img)
                eyes.append(eye_centres(face.landmarks68))
            except AlignError:
                face = None
            if r["subject"] == rows[0]["subject"] and len(pairs) < 12:
                pairs.append((img, None if face is None else face.crop, ""))
        stats["jaffe"] = {"images": len(rows), "aligned_share": round(len(eyes) / max(1, len(rows)), 4),
                          "aligned": _spread(np.array(eyes)) if eyes else {}}
        save_image(private / "jaffe_grid.png", _pair_grid(pairs))

    write_text(private / "stats.json", json.dumps(stats, indent=2) + "\n")
    print(json.dumps(stats, indent=2))
    return 0


def precropped_quality(root: Path, rows: list[dict], aligner: FaceAligner):
    from nfgan.data.align import warp_gray

    ours, resized, methods, sample, cover = [], [], {}, [], []
    for r in rows:
        img = Image.open(root / r["path"]).convert("L")
        face = aligner.align_precropped(img)
        methods[face.method] = methods.get(face.method, 0) + 1
        if face.method == "landmarks":
            white = np.full((img.height, img.width), 255, np.uint8)
            m = face.transform
            if face.flipped:    # coverage does not depend on the mirror; undo it for warp_gray's input
                from nfgan.data.align import compose, mirror_matrix

                m = compose(mirror_matrix(aligner.size), m)
            cover.append(float((warp_gray(white, m, aligner.size) > 127).mean()))
            ours.append(eye_centres(face.landmarks68))
            src = face.source_landmarks()
            s = np.array([aligner.size / img.width, aligner.size / img.height])
            resized.append(eye_centres((src + 0.5) * s - 0.5))
        sample.append((r, img, face))
    n = len(rows)
    return ({"images": n, "landmark_share": round(methods.get("landmarks", 0) / max(1, n), 4), "methods": methods,
             "aligned": _spread(np.array(ours)) if ours else {},
             "resize_only": _spread(np.array(resized)) if resized else {},
             "covered_share_mean": round(float(np.mean(cover)), 3) if cover else None}, sample)


if __name__ == "__main__":
    sys.exit(main())
