"""How well `nfgan normalize` does on bare model-sized crops (no manifest), against the prepared folder's own poses
and landmarks.

For the test people of a prepared set, each input crop goes to the model three ways:

* ``manifest``: with the pose, mirroring and 68 landmarks ``nfgan prepare`` found on the full photo (what
  ``nfgan normalize --data`` does);
* ``crop``: with what ``FaceAligner.align_crop`` finds on the 64 px crop alone (what ``nfgan normalize crops/``
  does since the crop path looks for landmarks);
* ``as_is``: pose unknown, no landmarks (``nfgan normalize --align never``: no frontalisation, no re-framing).

It prints (and with ``--out`` writes) per set: how often a face is found on the crop, the landmark error of the
crop path against the prepared landmarks (pixels at 64 px), pose agreement, and for each way the outputs' SSIM
against the real frontal neutral face and faceres' pass rate at the set's 1 % FAR threshold (calibrated on every
person of the split file, as the README's tables are).

    python tools/crop_alignment_check.py out/london64@london out/ckplus_wn64@ckplus_with_neutral out/jaffe64@jaffe \\
        out/yale64@yale --out docs/results/crop_alignment/summary.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nfgan.data.align import AlignError, FaceAligner, pose_from_yaw
from nfgan.evaluation.evaluate import calibrate_identity, calibration_subjects, default_splits, load_eval_set
from nfgan.evaluation.evaluators import identity_evaluators
from nfgan.evaluation.metrics import ssim
from nfgan.inference import load_model


def crop_inputs(images: np.ndarray, size: int):
    """``align_crop`` on every crop: (faces, poses, flipped, landmarks, found, methods)."""
    aligner = FaceAligner(size=size)
    faces, poses, flipped, lms, found, methods = [], [], [], [], [], []
    for img in images:
        try:
            a = aligner.align_crop(img)
            faces.append(a.crop), poses.append(pose_from_yaw(a.yaw_deg)), flipped.append(bool(a.flipped))
            lms.append(a.landmarks68), found.append(True), methods.append(a.method)
        except AlignError:
            faces.append(img), poses.append("unknown"), flipped.append(False)
            lms.append(np.full((68, 2), np.nan, np.float32)), found.append(False), methods.append("as_is")
    return np.stack(faces), poses, flipped, np.stack(lms), np.asarray(found), methods


def check_set(spec: str, model, faceres) -> dict:
    data, _, splits = spec.partition("@")
    data = Path(data)
    splits = splits or default_splits(data)
    es = load_eval_set(data, splits, "test")
    size = es.input_images.shape[-1]
    cal, _ = calibrate_identity(faceres, es.dataset, calibration_subjects(es, splits, "all"))
    threshold = cal["far_threshold"]
    faces, poses, flipped, lms, found, methods = crop_inputs(es.input_images, size)
    # landmark error where the crop path kept the crop's own pixels (same coordinates as the prepared landmarks)
    kept = [i for i, m in enumerate(methods) if m == "crop"]
    err = [float(np.linalg.norm(lms[i] - es.input_landmarks[i], axis=1).mean()) for i in kept
           if np.isfinite(es.input_landmarks[i]).all()]
    side = lambda p: "frontal" if p == "frontal" else ("turned" if p != "unknown" else "unknown")   # noqa: E731
    agree = float(np.mean([side(a) == side(b) for a, b in zip(poses, es.poses)]))
    ways = {
        "manifest": model.normalize(es.input_images, es.poses, es.flipped, landmarks=es.input_landmarks),
        "crop": model.normalize(faces, poses, flipped, landmarks=lms),
        "as_is": model.normalize(es.input_images, None, None),
    }
    target_emb = faceres.embed(es.target_images)
    out = {"set": data.name, "n": len(es), "found": float(found.mean()), "kept": len(kept) / len(es),
           "lm_err_px": float(np.mean(err)) if err else float("nan"), "pose_agree": agree, "threshold": threshold}
    turned = np.asarray([p != "frontal" for p in es.poses])
    for name, outs in ways.items():
        d = np.linalg.norm(faceres.embed(outs) - target_emb, axis=1)
        s = ssim(outs, es.target_images)
        out[name] = {"gt_pass": float((d <= threshold).mean()), "ssim": float(np.mean(s)),
                     "gt_pass_turned": float((d[turned] <= threshold).mean()) if turned.any() else float("nan")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+", metavar="DATA[@SPLITS]",
                    help="prepared folders, each with its split file or shipped split name after @ (default: the "
                         "one nfgan evaluate would use)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    model = load_model(args.model)
    (faceres,) = identity_evaluators(["faceres"])
    lines = ["| set | test inputs | face found on the crop | kept as is | landmark error px | frontal/turned as "
             "prepared | gt pass faceres: manifest / crop / as is | turned inputs: manifest / crop / as is | "
             "SSIM: manifest / crop / as is |", "|---|---|---|---|---|---|---|---|---|"]
    for data in args.data:
        r = check_set(data, model, faceres)
        w = ("manifest", "crop", "as_is")
        turned = " / ".join(f"{100 * r[k]['gt_pass_turned']:.1f}" for k in w)
        lines.append(f"| {r['set']} | {r['n']} | {100 * r['found']:.1f} % | {100 * r['kept']:.1f} % | "
                     f"{r['lm_err_px']:.2f} | {100 * r['pose_agree']:.1f} % | "
                     + " / ".join(f"{100 * r[k]['gt_pass']:.1f}" for k in w) + " % | "
                     + (turned + " %" if not turned.startswith("nan") else "-") + " | "
                     + " / ".join(f"{r[k]['ssim']:.3f}" for k in w) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"Model: `{args.model}`. Written by `python tools/crop_alignment_check.py "
                            f"{' '.join(str(d) for d in args.data)} --model {args.model} --out {args.out}`.\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
