"""Measure the TF.js ports on nfgan's prepared London crops: identity calibration of the embedders (faceres,
faceres_deep) and expression rates of the two expression classifiers.

    python tools/tfjs/evaluate_ports.py [--prepared out/london64] [--out docs/results/tfjs_evaluators_london64.json]
    python tools/tfjs/evaluate_ports.py --only faceres_deep     # measure one part, keep the rest of --out

Identity: genuine = same subject, different photo; impostor = different subjects; pair sets as
tools/calibrate_identity.py (``expression``: frontal neutral vs frontal smiling; ``pose``: frontal vs 3/4,
same expression; ``expression_and_pose``: frontal neutral vs 3/4 smiling; ``all``), distances between
L2-normalised embeddings; ``identity.<embedder>`` in the JSON, and when both embedders are measured in one
run, ``identity_agreement``: how far faceres_deep is an opinion of its own (face cosine, distance correlation,
verdict agreement per pair set). Expressions (``expression``): share of neutral
photos whose top class is neutral and of smiling photos whose top class is happy, per pose group, for
``faceapi`` and ``minixception``. ``--only`` measures some parts (embedder names and/or ``expression``) and
merges them into an existing ``--out``, leaving its other parts as they are.
Runtime on 2 CPU cores (612 crops): faceres about 1.5 minutes, faceres_deep about 3, the expression part about 1.
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
IDENTITY = ("faceres", "faceres_deep")
PARTS = (*IDENTITY, "expression")


def pair_masks(meta: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    expr = np.array([m["expression"] for m in meta])
    pose = np.array([m["pose"] for m in meta])
    front, side = pose == "frontal", pose != "frontal"
    every = np.ones(len(meta), bool)
    return {"expression": (front & (expr == "neutral"), front & (expr == "happy"), False),
            "pose": (front, side, True),
            "expression_and_pose": (front & (expr == "neutral"), side & (expr == "happy"), False),
            "all": (every, every, False)}


def _pairs(meta: list[dict]):
    """Per pair set: left rows, right rows, and the genuine / impostor masks over the ``left x right`` grid."""
    subj = np.array([m["subject"] for m in meta])
    expr = np.array([m["expression"] for m in meta])
    for name, (left, right, same_expr) in pair_masks(meta).items():
        li, ri = np.nonzero(left)[0], np.nonzero(right)[0]
        valid = li[:, None] != ri[None, :]
        if np.array_equal(li, ri):
            valid &= li[:, None] < ri[None, :]
        if same_expr:
            valid &= expr[li][:, None] == expr[ri][None, :]
        same = subj[li][:, None] == subj[ri][None, :]
        yield name, li, ri, valid & same, valid & ~same


def calibrate(emb: np.ndarray, meta: list[dict], threshold: float | None) -> dict:
    out = {}
    for name, li, ri, genuine, impostor in _pairs(meta):
        d = pairwise_distances(emb[li], emb[ri])
        gen, imp = d[genuine], d[impostor]
        cal = calibrate_verification(gen, imp, far_target=0.01)
        out[name] = {**cal.as_dict(), "genuine_mean": float(gen.mean()), "impostor_mean": float(imp.mean()),
                     "genuine_max": float(gen.max()), "impostor_min": float(imp.min())}
        if threshold is not None:
            out[name].update({f"genuine_pass_at_{threshold}": pass_rate(gen, threshold),
                              f"impostor_pass_at_{threshold}": pass_rate(imp, threshold)})
    return out


def agreement(emb_a: np.ndarray, thr_a: float, emb_b: np.ndarray, thr_b: float, meta: list[dict]) -> dict:
    """How far two embedders are independent opinions: cosine between their embeddings of the same face, and
    per pair set the correlation of their pair distances and how often their same-person verdicts (each at
    its own threshold) agree, for genuine and impostor pairs."""
    out = {"face_cosine_mean": float((emb_a * emb_b).sum(1).mean()),
           "face_cosine_min": float((emb_a * emb_b).sum(1).min()), "pairs": {}}
    for name, li, ri, genuine, impostor in _pairs(meta):
        da, db = pairwise_distances(emb_a[li], emb_a[ri]), pairwise_distances(emb_b[li], emb_b[ri])
        row = {}
        for kind, m in (("genuine", genuine), ("impostor", impostor)):
            pa, pb = da[m] <= thr_a, db[m] <= thr_b
            row[kind] = {"distance_correlation": float(np.corrcoef(da[m], db[m])[0, 1]),
                         "verdicts_agree": float((pa == pb).mean()),
                         "only_first_passes": float((pa & ~pb).mean()), "only_second_passes": float((~pa & pb).mean())}
        out["pairs"][name] = row
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
    ap.add_argument("--only", default=None,
                    help=f"comma list of parts to measure ({', '.join(PARTS)}); the other parts of an existing "
                         f"--out are kept (default: all, written afresh)")
    args = ap.parse_args(argv)
    parts = list(PARTS) if args.only is None else [p for p in args.only.split(",") if p]
    if not parts or set(parts) - set(PARTS):
        ap.error(f"--only: parts are {', '.join(PARTS)}; got {args.only!r}")

    from nfgan.atomic import write_text
    from nfgan.data.dataset import PreparedDataset
    from nfgan.models.auxiliary.embedders import EMBEDDERS
    from nfgan.models.auxiliary.expression_faceapi import ExpressionClassifier

    t0 = time.time()
    ds = PreparedDataset(args.prepared)
    # left 3/4 views come mirrored (flipped=1: occluded side on the right, paper Sec. 4.7); they count as 3/4
    idx = [i for i, r in enumerate(ds.records) if r["pose"] in POSES and r["expression"] in ("neutral", "happy")]
    faces, meta = np.asarray(ds.images[idx]), [ds.records[i] for i in idx]
    report = {"what": "nfgan TF.js ports on prepared London crops", "prepared": str(args.prepared),
              "n_images": len(meta), "made_by": "tools/tfjs/evaluate_ports.py", "identity": {}, "expression": {}}
    if args.only is not None and args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("n_images") != len(meta) or old.get("prepared") != str(args.prepared):
            raise SystemExit(f"{args.out} was measured on {old.get('n_images')} faces of {old.get('prepared')}, "
                             f"not {len(meta)} of {args.prepared}: measure every part (no --only)")
        report = {**report, **old}
    embeddings = {}
    for name in (p for p in parts if p in IDENTITY):
        t1 = time.time()
        cls = EMBEDDERS[name]
        embeddings[name] = emb = cls().embed(faces, progress=True)
        report["identity"][name] = {
            "model": f"{name} (human-models 3.0.4), {emb.shape[1]}-d, L2 distance of unit vectors",
            "threshold_in_code": cls.SAME_PERSON_THRESHOLD,
            "pairs": calibrate(emb, meta, cls.SAME_PERSON_THRESHOLD), "seconds": round(time.time() - t1, 1)}
    if len(embeddings) == len(IDENTITY):
        a, b = IDENTITY
        report["identity_agreement"] = {"embedders": [a, b], **agreement(
            embeddings[a], EMBEDDERS[a].SAME_PERSON_THRESHOLD, embeddings[b], EMBEDDERS[b].SAME_PERSON_THRESHOLD, meta)}
    if "expression" in parts:
        for model in ("faceapi", "minixception"):
            clf = ExpressionClassifier(model)
            report["expression"][model] = expression_rates(clf.predict(faces, progress=True), clf.labels, meta)
    if args.only is None:
        report["seconds"] = round(time.time() - t0, 1)
    write_text(args.out, json.dumps(report, indent=2) + "\n")
    for name in (p for p in parts if p in IDENTITY):
        for pairs, c in report["identity"][name]["pairs"].items():
            print(f"identity {name:12s} {pairs:20s} gen={c['n_genuine']:5d} imp={c['n_impostor']:6d} "
                  f"EER={c['eer']:.4f} thr_EER={c['eer_threshold']:.3f} thr@1%={c['far_threshold']:.3f} "
                  f"TAR@1%={c['tar_at_far']:.3f} gen_mean={c['genuine_mean']:.3f} imp_mean={c['impostor_mean']:.3f}")
    if "expression" in parts:
        for model, groups in report["expression"].items():
            for g, r in groups.items():
                print(f"expression {model:12s} {g:8s} neutral->neutral={r['neutral_as_neutral']:.2f} "
                      f"smiling->happy={r['smiling_as_happy']:.2f} smiling->neutral={r['smiling_as_neutral']:.2f}")
    print(f"wrote {args.out} in {round(time.time() - t0, 1)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
