"""Calibrate dlib's 128-d face descriptor as the identity evaluator, on real London Set faces.

The identity check (paper Fig. 4) accepts an (input, normalised output) pair when the L2 distance of their
face embeddings is at most a threshold. The paper uses FaceNet's 1.242; we use dlib's ResNet descriptor
(``dlib_face_recognition_resnet_model_v1``), whose authors suggest 0.6 on LFW-style colour 150 px chips. The
right threshold for *our* setting - gray, 64 px faces upsampled to 150, across expression and pose - is
measured here from genuine pairs (same subject, different photos) and impostor pairs (different subjects).

Variants (each gets its own calibration):

* ``dlib_chip150_rgb`` - dlib's own pipeline: HOG detector, 5-point landmarks, ``get_face_chip`` 150 px
  (padding 0.25), colour. The reference point.
* ``dlib_chip64_gray_up150`` - the same alignment, but the chip is made at 64 px, converted to gray and
  upsampled (bicubic) to 150: isolates what gray + low resolution cost.
* ``nfgan_london64_up150`` - our prepared 64x64 crops (``out/london64``, written by ``nfgan prepare``),
  upsampled to 150 - what the evaluator sees for NFGAN outputs. Skipped when that folder is absent.

Pair sets: ``expression`` (frontal neutral vs frontal smiling: same subject = genuine, different = impostor),
``pose`` (frontal vs 3/4 view, same expression), ``expression_and_pose`` (frontal neutral vs 3/4 smiling -
the NFGAN input/output situation), and ``all`` (every pair of usable photos). Profiles are left out (the
paper targets moderate pose; dlib's HOG detector does not find them).

Writes ``docs/results/identity_calibration_dlib.json`` (atomically) and prints a summary table.
Usage: ``python tools/calibrate_identity.py [--data ../shared/data/london] [--prepared out/london64]``.
Runtime: about 2-4 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nfgan.evaluation.metrics import calibrate_verification, pairwise_distances, pass_rate  # noqa: E402

DLIB_SUGGESTED_THRESHOLD = 0.6
POSES = ("frontal", "left_3quarter", "right_3quarter")


def _load_london(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["pose"] in POSES]
    if not rows:
        raise SystemExit(f"{root / 'manifest.csv'}: no frontal or 3/4 rows")
    return rows


def dlib_chips(root: Path, rows: list[dict]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Detect + 5-point landmarks; returns (kept row indices, 150 px RGB chips, 64 px gray chips)."""
    import dlib
    from PIL import Image
    from tqdm import tqdm

    from nfgan.weights import dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks5")))
    kept, big, small = [], [], []
    for i, row in enumerate(tqdm(rows, desc="detect+align", unit="img")):
        rgb = np.asarray(Image.open(root / row["path"]).convert("RGB"))
        boxes = detector(rgb, 0) or detector(rgb, 1)
        if not boxes:
            continue
        shape = predictor(rgb, max(boxes, key=lambda b: b.area()))
        kept.append(i)
        big.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
        small.append(np.asarray(Image.fromarray(dlib.get_face_chip(rgb, shape, size=64, padding=0.25)).convert("L")))
    return kept, np.stack(big), np.stack(small)


def gray_up150(gray: np.ndarray) -> np.ndarray:
    """N x S x S uint8 gray -> N x 150 x 150 x 3 uint8 (bicubic upsampling, gray replicated to RGB)."""
    from PIL import Image

    up = [np.asarray(Image.fromarray(g).resize((150, 150), Image.BICUBIC)) for g in gray]
    return np.repeat(np.stack(up)[..., None], 3, axis=3)


def descriptors(chips: np.ndarray, desc: str, batch: int = 32) -> np.ndarray:
    import dlib
    from tqdm import tqdm

    from nfgan.weights import dlib_model_path

    net = dlib.face_recognition_model_v1(str(dlib_model_path("resnet")))
    out = []
    for i in tqdm(range(0, len(chips), batch), desc=desc, unit="batch"):
        vecs = net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips[i:i + batch]])
        out.extend(np.asarray(v, dtype=np.float64) for v in vecs)
    return np.stack(out)


def pair_sets(meta: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Boolean masks (left, right) over images for each pair set; pairs are left x right."""
    expr = np.array([m["expression"] for m in meta])
    pose = np.array([m["pose"] for m in meta])
    front, side = pose == "frontal", pose != "frontal"
    return {
        "expression": (front & (expr == "neutral"), front & (expr == "happy")),
        "pose": (front, side),   # same expression enforced in calibrate_set
        "expression_and_pose": (front & (expr == "neutral"), side & (expr == "happy")),
        "all": (np.ones(len(meta), bool), np.ones(len(meta), bool)),
    }


def calibrate_set(emb: np.ndarray, meta: list[dict], left: np.ndarray, right: np.ndarray,
                  same_expression: bool = False) -> dict:
    subj = np.array([m["subject"] for m in meta])
    expr = np.array([m["expression"] for m in meta])
    li, ri = np.nonzero(left)[0], np.nonzero(right)[0]
    d = pairwise_distances(emb[li], emb[ri])
    valid = li[:, None] != ri[None, :]
    if np.array_equal(li, ri):                      # symmetric set: count each unordered pair once
        valid &= li[:, None] < ri[None, :]
    if same_expression:
        valid &= expr[li][:, None] == expr[ri][None, :]
    same = subj[li][:, None] == subj[ri][None, :]
    genuine, impostor = d[valid & same], d[valid & ~same]
    cal = calibrate_verification(genuine, impostor, far_target=0.01)
    return {**cal.as_dict(),
            "genuine_mean": float(genuine.mean()), "impostor_mean": float(impostor.mean()),
            "genuine_pass_at_0.6": pass_rate(genuine, DLIB_SUGGESTED_THRESHOLD),
            "impostor_pass_at_0.6": pass_rate(impostor, DLIB_SUGGESTED_THRESHOLD)}


def calibrate_variant(emb: np.ndarray, meta: list[dict]) -> dict:
    return {name: calibrate_set(emb, meta, left, right, same_expression=(name == "pose"))
            for name, (left, right) in pair_sets(meta).items()}


def prepared_crops(prepared: Path) -> tuple[np.ndarray, list[dict]] | None:
    from nfgan.data.dataset import PreparedDataset

    if not (prepared / "manifest.csv").is_file() or not (prepared / "faces.npy").is_file():
        return None
    ds = PreparedDataset(prepared)
    idx = [i for i, r in enumerate(ds.records) if r["pose"] in POSES and r["expression"] in ("neutral", "happy")]
    return np.asarray(ds.images[idx]), [ds.records[i] for i in idx]


def main(argv: list[str] | None = None) -> int:
    import dlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "london")
    parser.add_argument("--prepared", type=Path, default=REPO / "out" / "london64")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "identity_calibration_dlib.json")
    args = parser.parse_args(argv)

    from nfgan.atomic import write_text

    t0 = time.time()
    rows = _load_london(args.data)
    kept, chips150, chips64 = dlib_chips(args.data, rows)
    meta = [rows[i] for i in kept]
    variants = {}
    emb = descriptors(chips150, "dlib chip 150 rgb")
    variants["dlib_chip150_rgb"] = {"n_images": len(meta), "n_undetected": len(rows) - len(kept),
                                    "pairs": calibrate_variant(emb, meta)}
    emb = descriptors(gray_up150(chips64), "dlib chip 64 gray")
    variants["dlib_chip64_gray_up150"] = {"n_images": len(meta), "n_undetected": len(rows) - len(kept),
                                          "pairs": calibrate_variant(emb, meta)}
    prepared = prepared_crops(args.prepared)
    if prepared is not None:
        crops, pmeta = prepared
        emb = descriptors(gray_up150(crops), "nfgan london64")
        variants["nfgan_london64_up150"] = {"n_images": len(pmeta), "source": str(args.prepared.relative_to(REPO))
                                            if args.prepared.is_relative_to(REPO) else str(args.prepared),
                                            "pairs": calibrate_variant(emb, pmeta)}
    else:
        print(f"note: {args.prepared} has no prepared dataset (manifest.csv + faces.npy); variant skipped")
    report = {
        "what": "dlib ResNet face descriptor (128-d), L2 distance; accept a pair when distance <= threshold",
        "model": "dlib_face_recognition_resnet_model_v1 (face_recognition_models), dlib " + dlib.__version__,
        "data": "London Set (DeBruine & Jones 2017, CC BY 4.0), frontal and 3/4 views, neutral and smiling",
        "far_target": 0.01, "dlib_suggested_threshold": DLIB_SUGGESTED_THRESHOLD,
        "made_by": "tools/calibrate_identity.py", "seconds": round(time.time() - t0, 1),
        "variants": variants,
    }
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"{'variant':26s} {'pairs':20s} {'n_gen':>6s} {'n_imp':>7s} {'EER':>6s} {'thr_EER':>7s} "
          f"{'thr@1%':>6s} {'TAR@1%':>6s} {'gen<0.6':>7s} {'imp<0.6':>7s}")
    for vname, v in variants.items():
        for pname, c in v["pairs"].items():
            print(f"{vname:26s} {pname:20s} {c['n_genuine']:6d} {c['n_impostor']:7d} {c['eer']:6.3f} "
                  f"{c['eer_threshold']:7.3f} {c['far_threshold']:6.3f} {c['tar_at_far']:6.3f} "
                  f"{c['genuine_pass_at_0.6']:7.3f} {c['impostor_pass_at_0.6']:7.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
