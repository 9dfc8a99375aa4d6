"""Fit the BlazeFace -> HOG-like box map of nfgan.data.align (``HOG_LIKE_BOX``) on London TRAINING subjects.

    python tools/fit_blazeface_boxes.py [--data ../shared/data] [--check]

dlib's 68-point shape predictor was trained on the boxes of dlib's HOG detector, so the ported BlazeFace's
boxes are mapped onto HOG-like boxes before landmarking: with s the mean of a BlazeFace box's width and
height, ex the x of its two eye key points' midpoint and cy the box's vertical centre, the HOG-like box is the
square of side ``side * s`` centred at (ex + dx * s, cy + dy * s). The three numbers are the least-squares fit
of the relative offsets and sizes (= their means) over the frontal photos, neutral and smiling, of the London
set's 70 training subjects (``src/nfgan/assets/splits/london.json``) - never validation or test people. Both
detectors run on exactly what ``FaceAligner.align`` gives them (the gray photo's work image).

Reported as checks, not fitted on: the residuals on the training subjects' 3/4 views and on the validation
subjects' frontal photos, and the same residuals for the plain box-centred map (x from the box centre) that
the eye anchor replaced; and per view the eye key points' spacing over the eye-to-mouth distance
(``Detection.eye_ratio``) on the training subjects, which ``align.PROFILE_EYE_RATIO`` thresholds to leave out
profile views.

``--check`` exits 1 unless the constants committed in ``nfgan.data.align.HOG_LIKE_BOX`` equal the fit
(rounded to 4 decimals).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data import align  # noqa: E402
from nfgan.data.align import FaceAligner  # noqa: E402
from nfgan.data.detect import BlazeFaceDetector  # noqa: E402


def pairs(rows: list[dict], london: Path, hog: FaceAligner, blaze: BlazeFaceDetector,
          anchor: str = "eyes") -> np.ndarray:
    """Per photo (both detectors finding exactly one face): relative offset x, y and size ratio. ``anchor``:
    x measured from the eye key points' midpoint ("eyes", what align uses) or from the box centre ("box")."""
    out = []
    for r in rows:
        work, _ = hog._work_image(Image.open(london / r["path"]).convert("L"))
        arr = np.asarray(work)
        h = hog._detect(arr)
        b = blaze.detect(arr)
        if len(h) != 1 or len(b) != 1:
            print(f"  skipped {r['path']}: HOG {len(h)} / BlazeFace {len(b)} faces")
            continue
        hl, ht, hr, hb = h[0]
        bl, bt, br, bb = b[0].box
        s = ((br - bl) + (bb - bt)) / 2.0
        x0 = float(b[0].keypoints[:2, 0].mean()) if anchor == "eyes" else (bl + br) / 2.0
        out.append((((hl + hr) / 2.0 - x0) / s, ((ht + hb) - (bt + bb)) / 2.0 / s,
                    ((hr - hl) + (hb - ht)) / 2.0 / s))
    return np.array(out)


def fit_of(rel: np.ndarray) -> dict:
    return {"dx": round(float(rel[:, 0].mean()), 4), "dy": round(float(rel[:, 1].mean()), 4),
            "side": round(float(rel[:, 2].mean()), 4)}


def residuals(rel: np.ndarray, fit: dict) -> str:
    """RMS error of the mapped box's centre and side, as a fraction of the HOG box's side."""
    side = rel[:, 2]
    centre = np.hypot(rel[:, 0] - fit["dx"], rel[:, 1] - fit["dy"]) / side
    size = np.abs(fit["side"] - side) / side
    return (f"centre error RMS {np.sqrt((centre ** 2).mean()):.3f}, max {centre.max():.3f}; side error RMS "
            f"{np.sqrt((size ** 2).mean()):.3f}, max {size.max():.3f} (fractions of the HOG box side)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--check", action="store_true", help="exit 1 unless align.HOG_LIKE_BOX equals the fit")
    args = ap.parse_args(argv)
    london = args.data / "london"
    if not (london / "manifest.csv").is_file():
        raise SystemExit(f"{london / 'manifest.csv'}: not found (the London set; --data)")
    split = json.loads((REPO / "src" / "nfgan" / "assets" / "splits" / "london.json").read_text())
    with open(london / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train_people, val_people = set(split["train"]), set(split["val"])
    train = [r for r in rows if r["pose"] == "frontal" and r["subject"] in train_people]
    val = [r for r in rows if r["pose"] == "frontal" and r["subject"] in val_people]
    turned = [r for r in rows if r["pose"].endswith("3quarter") and r["subject"] in train_people]
    hog, blaze = FaceAligner(size=64, detector="hog"), BlazeFaceDetector()
    rel = pairs(train, london, hog, blaze)
    fit = fit_of(rel)
    print(f"fit on {len(rel)} frontal photos of {len(train_people)} training subjects: HOG_LIKE_BOX = {fit}")
    print(f"  training frontal photos: {residuals(rel, fit)}")
    rel_val = pairs(val, london, hog, blaze)
    print(f"  {len(rel_val)} validation frontal photos (not fitted on): {residuals(rel_val, fit)}")
    rel_turned = pairs(turned, london, hog, blaze)
    print(f"  {len(rel_turned)} training 3/4 photos (not fitted on): {residuals(rel_turned, fit)}")
    box_fit = fit_of(pairs(train, london, hog, blaze, anchor="box"))
    print(f"box-centred map fitted the same way: {box_fit}; on the training 3/4 photos: "
          f"{residuals(pairs(turned, london, hog, blaze, anchor='box'), box_fit)}")
    print("eye key point spacing / eye-to-mouth distance (Detection.eye_ratio), training subjects, per view "
          f"(align.PROFILE_EYE_RATIO = {align.PROFILE_EYE_RATIO}):")
    for pose in ("frontal", "left_3quarter", "right_3quarter", "left_profile", "right_profile"):
        ratios = []
        for r in rows:
            if r["pose"] == pose and r["subject"] in train_people:
                work, _ = hog._work_image(Image.open(london / r["path"]).convert("L"))
                ratios += [d.eye_ratio() for d in blaze.detect(np.asarray(work))]
        q = np.percentile(ratios, [0, 50, 100])
        below = int((np.array(ratios) < align.PROFILE_EYE_RATIO).sum())
        print(f"  {pose:15s} {len(ratios)} detections: min {q[0]:.3f} median {q[1]:.3f} max {q[2]:.3f}; "
              f"{below} below the threshold")
    if args.check:
        if align.HOG_LIKE_BOX != fit:
            print(f"align.HOG_LIKE_BOX = {align.HOG_LIKE_BOX} differs from the fit {fit}")
            return 1
        print("align.HOG_LIKE_BOX matches the fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
