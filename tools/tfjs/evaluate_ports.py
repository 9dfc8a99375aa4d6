"""Measure the TF.js ports on nfgan's prepared London crops: identity calibration of the faceres embedder and
expression rates of the two expression classifiers.

    python tools/tfjs/evaluate_ports.py [--prepared out/london64] [--out docs/results/tfjs_evaluators_london64.json]

Identity: genuine = same subject, different photo; impostor = different subjects; pair sets as
tools/calibrate_identity.py (``expression``: frontal neutral vs frontal smiling; ``pose``: frontal vs 3/4,
same expression; ``expression_and_pose``: frontal neutral vs 3/4 smiling; ``all``), distances between
L2-normalised faceres embeddings. Expressions: share of neutral photos whose top class is neutral and of
smiling photos whose top class is happy, per pose group, for ``faceapi`` and ``minixception``.
Runtime: 2-4 minutes on 2 CPU cores (634 crops).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from nfgan.evaluation.metrics import calibrate_verification, pairwise_distances, pass_rate  # noqa: E402

POSES = ("frontal", "left_3quarter", "right_3quarter")


def pair_masks(meta: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    expr = np.array([m["expression"] for m in meta])
    pose = np.array([m["pose"] for m in meta])
    front, side = pose == "frontal", pose != "frontal"
    every = np.ones(len(meta), bool)
    return {"expression": (front & (expr == "neutral"), front & (expr == "happy"), False),
            "pose": (front, side, True),
            "expression_and_pose": (front & (expr == "neutral"), side & (expr == "happy"), False),
            "all": (every, every, False)}


def calibrate(emb: np.ndarray, meta: list[dict], threshold: float) -> dict:
    subj = np.array([m["subject"] for m in meta])
    expr = np.array([m["expression"] for m in meta])
    out = {}
    for name, (left, right, same_expr) in pair_masks(meta).items():
        li, ri = np.nonzero(left)[0], np.nonzero(right)[0]
        d = pairwise_distances(emb[li], emb[ri])
        valid = li[:, None] != ri[None, :]
        if np.array_equal(li, ri):
            valid &= li[:, None] < ri[None, :]
        if same_expr:
            valid &= expr[li][:, None] == expr[ri][None, :]
        same = subj[li][:, None] == subj[ri][None, :]
        gen, imp = d[valid & same], d[valid & ~same]
        cal = calibrate_verification(gen, imp, far_target=0.01)
        out[name] = {**cal.as_dict(), "genuine_mean": float(gen.mean()), "impostor_mean": float(imp.mean()),
                     "genuine_max": float(gen.max()), "impostor_min": float(imp.min()),
                     f"genuine_pass_at_{threshold}": pass_rate(gen, threshold),
                     f"impostor_pass_at_{threshold}": pass_rate(imp, threshold)}
    return out


def expression_rates(probs: np.ndarray, classes: tuple[str, ...], meta: list[dict]) -> dict:
    top = np.array([classes[i] for i in probs.argmax(1)])
    expr = np.array([m["expression"] for m in meta])
    pose = np.array([m["pose"] for m in meta])
    out = {}
    for group, mask in (("frontal", pose == "frontal"), ("3/4", pose != "frontal")):
        n, s = mask & (expr == "neutral"), mask & (expr == "happy")
        out[group] = {"n_neutral": int(n.sum()), "n_smiling": int(s.sum()),
                      "neutral_as_neutral": float((top[n] == "neutral").mean()),
                      "smiling_as_happy": float((top[s] == "happy").mean()),
                      "smiling_as_neutral": float((top[s] == "neutral").mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=REPO / "out" / "london64")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "tfjs_evaluators_london64.json")
    args = ap.parse_args(argv)

    from nfgan.atomic import write_text
    from nfgan.data.dataset import PreparedDataset
    from nfgan.models.auxiliary.embedders import Embedder
    from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier

    t0 = time.time()
    ds = PreparedDataset(args.prepared)
    # left 3/4 views come mirrored (flipped=1: occluded side on the right, paper Sec. 4.7); they count as 3/4
    idx = [i for i, r in enumerate(ds.records) if r["pose"] in POSES and r["expression"] in ("neutral", "happy")]
    faces, meta = np.asarray(ds.images[idx]), [ds.records[i] for i in idx]
    embedder = Embedder()
    emb = embedder.embed(faces, progress=True)
    report = {"what": "nfgan TF.js ports on prepared London crops", "prepared": str(args.prepared),
              "n_images": len(meta), "made_by": "tools/tfjs/evaluate_ports.py",
              "identity": {"model": "faceres (human-models 3.0.4), 1024-d, L2 distance of unit vectors",
                           "threshold_in_code": Embedder.SAME_PERSON_THRESHOLD,
                           "pairs": calibrate(emb, meta, Embedder.SAME_PERSON_THRESHOLD)},
              "expression": {}}
    for model in ("faceapi", "minixception"):
        clf = ExpressionClassifier(model)
        report["expression"][model] = expression_rates(clf.predict(faces, progress=True), clf.labels, meta)
    report["seconds"] = round(time.time() - t0, 1)
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    for name, c in report["identity"]["pairs"].items():
        print(f"identity {name:20s} gen={c['n_genuine']:5d} imp={c['n_impostor']:6d} EER={c['eer']:.4f} "
              f"thr_EER={c['eer_threshold']:.3f} thr@1%={c['far_threshold']:.3f} TAR@1%={c['tar_at_far']:.3f} "
              f"gen_mean={c['genuine_mean']:.3f} imp_mean={c['impostor_mean']:.3f}")
    for model, groups in report["expression"].items():
        for g, r in groups.items():
            print(f"expression {model:12s} {g:8s} neutral->neutral={r['neutral_as_neutral']:.2f} "
                  f"smiling->happy={r['smiling_as_happy']:.2f} smiling->neutral={r['smiling_as_neutral']:.2f}")
    print(f"wrote {args.out} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
