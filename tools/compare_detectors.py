"""Compare FaceAligner's face detectors on the London set: recall per view, eye accuracy, agreement, speed.

    python tools/compare_detectors.py [--data ../shared/data] [--detectors hog,blazeface,cnn]
                                      [--people all|test] [--out result.json] [--speed-photos 40]

For each detector (``nfgan.data.align.DETECTORS``), on every London photo (``london/manifest.csv``: 1020
photos, 102 people, frontal / left and right 3/4 / left and right profile, neutral and smiling), or with
``--people test`` on the 220 photos of the 22 test people only (the CNN detector takes ~0.6 s a photo here):

* **detected**: ``FaceAligner.align`` gets past detection (any error but "no face"; for BlazeFace after its
  profile gate, ``align.PROFILE_EYE_RATIO``); **aligned**: ``FaceAligner.align`` succeeds (a face, the
  49-point fit within its limit);
* **eye-centre error** on the 102 frontal neutral photos against the hand-placed pupils of their WebMorph
  templates (``neutral_front/*.tem``; as ``tests/test_align.py::test_london_landmark_accuracy``): mean of
  the two eyes' distance from the landmark eye centres (mean of points 36-41 / 42-47), as a fraction of the
  inter-pupil distance; reported for all 102 people and for the 22 TEST people of
  ``src/nfgan/assets/splits/london.json`` alone (BlazeFace's box map was fitted on the training people's
  frontal photos);
* **agreement with HOG** where both align a photo: mean distance of the 49 inner landmarks in the 64 px crop,
  and whether both mirror the crop alike (flip rule);
* **detection time** per photo (single thread, best of 3 passes), on ``--speed-photos`` London photos as they
  are (512 px) and upscaled to 1350 px (the set's published size); the CNN detector on 8 of them.

All runs single-threaded (``torch.set_num_threads(1)``; dlib is single-threaded anyway).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.data.adapters import read_tem_pupils  # noqa: E402
from nfgan.data.align import DETECTORS, INNER49, AlignError, FaceAligner, eye_centres  # noqa: E402

VIEWS = {"frontal": "frontal", "left_3quarter": "3/4", "right_3quarter": "3/4",
         "left_profile": "profile", "right_profile": "profile"}


def run_detector(name: str, rows: list[dict], london: Path) -> dict:
    aligner = FaceAligner(size=64, detector=name)
    per = {}
    for i, r in enumerate(rows):
        img = Image.open(london / r["path"]).convert("L")
        try:
            face = aligner.align(img)
            aligned = {"landmarks": face.landmarks68, "flipped": face.flipped, "yaw": face.yaw_deg,
                       "source_landmarks": face.source_landmarks()}
        except AlignError as e:
            aligned = {"error": e.reason}
        per[r["path"]] = {"found": aligned.get("error") != "no face", **aligned}
        if (i + 1) % 200 == 0:
            print(f"  {name}: {i + 1}/{len(rows)}", file=sys.stderr)
    return per


def speed(name: str, paths: list[Path]) -> dict:
    aligner = FaceAligner(size=64, detector=name)
    out = {}
    for side in (512, 1350):
        works = []
        for p in paths:
            img = Image.open(p).convert("L")
            if img.width != side:
                img = img.resize((side, round(img.height * side / img.width)), Image.LANCZOS)
            works.append(np.asarray(aligner._work_image(img)[0]))
        for w in works[:3]:       # warm-up
            aligner._detect(w)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for w in works:
                aligner._detect(w)
            best = min(best, time.perf_counter() - t0)
        out[f"{side}px_ms"] = round(best / len(works) * 1000, 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--detectors", default="hog,blazeface,cnn")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    ap.add_argument("--speed-photos", type=int, default=40)
    ap.add_argument("--people", choices=("all", "test"), default="all",
                    help="every London photo, or only the 22 test people's (src/nfgan/assets/splits/london.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = [d for d in args.detectors.split(",") if d]
    bad = [d for d in names if d not in DETECTORS]
    if bad:
        ap.error(f"--detectors: unknown {bad} (known: {', '.join(DETECTORS)})")
    london = args.data / "london"
    if not (london / "manifest.csv").is_file():
        raise SystemExit(f"{london / 'manifest.csv'}: not found (the London set; --data)")
    with open(london / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    test_people = set(json.loads((REPO / "src/nfgan/assets/splits/london.json").read_text())["test"])
    if args.people == "test":
        rows = [r for r in rows if r["subject"] in test_people]
    results = {n: run_detector(n, rows, london) for n in names}
    report: dict = {"photos": len(rows), "people": args.people, "detectors": {}}
    for n in names:
        per = results[n]
        rec = {}
        for view in ("frontal", "3/4", "profile"):
            sel = [r["path"] for r in rows if VIEWS[r["pose"]] == view]
            rec[view] = {"photos": len(sel), "detected": sum(per[p]["found"] for p in sel),
                         "aligned": sum("landmarks" in per[p] for p in sel)}
        errs, errs_test = [], []
        for r in rows:
            if r["pose"] != "frontal" or r["expression"] != "neutral":
                continue
            res = per[r["path"]]
            pupils = read_tem_pupils((london / r["path"]).with_suffix(".tem"))
            iod = np.linalg.norm(pupils[1] - pupils[0])
            e = (np.linalg.norm((eye_centres(res["source_landmarks"]) - pupils) / iod, axis=1).mean()
                 if "landmarks" in res else np.inf)
            errs.append(e)
            if r["subject"] in test_people:
                errs_test.append(e)
        errs, errs_test = np.array(errs), np.array(errs_test if errs_test else [np.nan])
        entry = {"recall": rec,
                 "eye_error": {"people": len(errs), "mean_of_aligned": round(float(errs[np.isfinite(errs)].mean()), 4),
                               "under_5pct": int((errs < 0.05).sum()),
                               "test_people": len(errs_test),
                               "test_mean_of_aligned": round(float(errs_test[np.isfinite(errs_test)].mean()), 4),
                               "test_under_5pct": int((errs_test < 0.05).sum())}}
        if n != "hog" and "hog" in results:
            agree = {}
            for view in ("frontal", "3/4", "profile"):
                both = [r["path"] for r in rows if VIEWS[r["pose"]] == view
                        and "landmarks" in per[r["path"]] and "landmarks" in results["hog"][r["path"]]]
                if not both:
                    agree[view] = {"both_aligned": 0}
                    continue
                d = [np.linalg.norm(per[p]["landmarks"][list(INNER49)] - results["hog"][p]["landmarks"][list(INNER49)],
                                    axis=1).mean() for p in both]
                agree[view] = {"both_aligned": len(both), "mean_px_64": round(float(np.mean(d)), 3),
                               "p95_px_64": round(float(np.percentile(d, 95)), 3),
                               "same_flip": sum(per[p]["flipped"] == results["hog"][p]["flipped"] for p in both)}
            entry["agreement_with_hog"] = agree
        prof = [per[r["path"]] for r in rows if VIEWS[r["pose"]] == "profile" and "landmarks" in per[r["path"]]]
        if prof:
            entry["aligned_profiles_abs_yaw_median"] = round(float(np.median([abs(p["yaw"]) for p in prof])), 1)
        report["detectors"][n] = entry
    step = max(1, len(rows) // max(1, args.speed_photos))    # every view and expression
    speed_paths = [london / r["path"] for r in rows[::step][: args.speed_photos]]
    for n in names:
        report["detectors"][n]["detect_ms"] = speed(n, speed_paths[: 8 if n == "cnn" else None])
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
