"""Fit the geometric neutralisation map (``nfgan.data.neutral_shape``) and write it where nfgan ships it.

    python tools/fit_neutral_shape.py [--out src/nfgan/assets/neutral_shape.safetensors] \
        [--report docs/results/neutral_shape] [SOURCE=FOLDER:SPLITS ...]

Default sources: the prepared folders of ``configs/all_data.yaml`` and the synthetic expressions of
``configs/all_data_sfm.yaml`` (out/london64, out/ckplus_wn64, out/jaffe64, out/yale64, out/london64_sfm,
out/canada64_sfm with their shipped splits). Pairs come from the training people only; the ridge weight is the
one of ``--ridges`` with the lowest mean landmark error on the validation people's pairs; the test people are
not read. The report folder gets ``report.md`` (per set and expression, validation people: the landmarks'
mean distance to the real neutral ones, unchanged and after the map) and ``report.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

DEFAULT_SOURCES = ("london=out/london64:london", "ckplus=out/ckplus_wn64:ckplus_with_neutral",
                   "jaffe=out/jaffe64:jaffe", "yale=out/yale64:yale", "london_sfm=out/london64_sfm:london",
                   "canada_sfm=out/canada64_sfm:canada")


def main(argv=None) -> int:
    from nfgan.atomic import write_text
    from nfgan.data.neutral_shape import ASSET, collect_pairs, fit, landmark_error
    from nfgan.data.pairs import SplitError, source_spec
    from nfgan.weights import assets_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="*", default=list(DEFAULT_SOURCES), help="NAME=FOLDER:SPLITS (split file or "
                    "shipped split name)")
    ap.add_argument("--out", type=Path, default=assets_dir() / ASSET)
    ap.add_argument("--report", type=Path, default=Path("docs/results/neutral_shape"))
    ap.add_argument("--ridges", default="1,10,30,100,300,1000,10000", help="ridge weights to choose from")
    args = ap.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])

    train, val, used = [], [], []
    for spec in args.sources:
        try:
            name, folder, split = source_spec(spec)
        except SplitError as e:
            ap.error(str(e))
        for part, bucket in (("train", train), ("val", val)):
            pairs = collect_pairs(folder, split[part])
            for p in pairs:
                p["set"] = name
            bucket.extend(pairs)
        used.append({"name": name, "folder": folder, "splits": spec.rpartition(":")[2]})
        print(f"{name}: {sum(p['set'] == name for p in train)} training pairs, "
              f"{sum(p['set'] == name for p in val)} validation pairs", file=sys.stderr)

    base = float(landmark_error(None, val).mean())
    scores = {}
    for r in [float(v) for v in args.ridges.split(",")]:
        scores[r] = float(landmark_error(fit(train, r), val).mean())
        print(f"ridge {r:g}: validation error {scores[r]:.3f} px (unchanged {base:.3f})", file=sys.stderr)
    ridge = min(scores, key=scores.get)
    shape = fit(train, ridge, {"sources": used, "validation_error_px": scores[ridge],
                               "validation_error_unchanged_px": base})

    groups = defaultdict(list)
    for k, p in enumerate(val):
        groups[(p["set"], p["expression"])].append(k)
    e0, e1 = landmark_error(None, val), landmark_error(shape, val)
    mouth, brows = list(range(48, 68)), list(range(17, 27))
    x = np.stack([p["x"] for p in val])
    y = np.stack([p["y"] for p in val])
    per_point0 = np.linalg.norm(x - y, axis=2)
    per_point1 = np.linalg.norm(shape.predict_framed(x) - y, axis=2)
    lines = ["# Geometric neutralisation map: validation people", "",
             f"Command: `{' '.join(['python tools/fit_neutral_shape.py'] + given)}`"
             + ("" if given else " (default sources)"),
             "", f"Pairs: {len(train)} training, {len(val)} validation. Ridge weight chosen on validation: {ridge:g} "
             f"(tried {', '.join(f'{r:g}: {s:.3f}' for r, s in scores.items())} px).", "",
             "Mean distance (px at 64 px) of the landmarks to the same person's real neutral landmarks, unchanged -> "
             "after the map.", "",
             "| set | expression | pairs | all 68 | mouth | brows |", "|---|---|---|---|---|---|"]
    rows = []
    for (name, expr), ks in sorted(groups.items()):
        ks = np.asarray(ks)
        row = {"set": name, "expression": expr, "pairs": len(ks), "all": [float(e0[ks].mean()), float(e1[ks].mean())],
               "mouth": [float(per_point0[ks][:, mouth].mean()), float(per_point1[ks][:, mouth].mean())],
               "brows": [float(per_point0[ks][:, brows].mean()), float(per_point1[ks][:, brows].mean())]}
        rows.append(row)
        lines.append(f"| {name} | {expr} | {len(ks)} | " + " | ".join(
            f"{row[k][0]:.2f} -> {row[k][1]:.2f}" for k in ("all", "mouth", "brows")) + " |")
    lines.append(f"| all | | {len(val)} | {base:.2f} -> {scores[ridge]:.2f} | | |")
    args.report.mkdir(parents=True, exist_ok=True)
    write_text(args.report / "report.md", "\n".join(lines) + "\n")
    write_text(args.report / "report.json", json.dumps({"ridge": ridge, "scores": scores, "unchanged": base,
                                                        "groups": rows, "sources": used}, indent=1) + "\n")
    shape.save(args.out)
    print("\n".join(lines))
    print(f"wrote {args.out} and {args.report}/report.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
