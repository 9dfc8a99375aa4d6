"""Round 42c/d (docs/experiments.md): pool the 3/4 rows of several `nfgan evaluate` folders and compare two models,
per identity network, by the mean of gt pass and rank-1 (paired bootstrap over people, 2000 draws, seed 0).

    python docs/results/round42/pool.py RESULTS_DIR [BASELINE MODEL]   (default: default_template default)
"""
import csv
import sys
from pathlib import Path

import numpy as np

root = Path(sys.argv[1])
base, cand = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("default_template", "default")
rows = {}
for f in sorted(root.glob("*/per_face.csv")):
    for r in csv.DictReader(open(f)):
        if r["view"] == "3/4" and r["model"] in (base, cand):
            rows.setdefault((f.parent.name, r["subject"], r["input_id"]), {})[r["model"]] = r
keys = [k for k, v in rows.items() if len(v) == 2]
people = sorted({k[:2] for k in keys})
print(f"{len(keys)} 3/4 inputs of {len(people)} people in {', '.join(sorted({k[0] for k in keys}))}")
for ev in ("faceres", "faceres_deep", "dlib"):
    def score(r):
        return (float(r[f"id_gt_pass_{ev}"]) + float(r[f"rank1_{ev}"])) / 2
    means = {m: 100 * np.mean([score(rows[k][m]) for k in keys]) for m in (base, cand)}
    gt = {m: 100 * np.mean([float(rows[k][m][f"id_gt_pass_{ev}"]) for k in keys]) for m in (base, cand)}
    r1 = {m: 100 * np.mean([float(rows[k][m][f"rank1_{ev}"]) for k in keys]) for m in (base, cand)}
    diff = {p: [score(rows[k][cand]) - score(rows[k][base]) for k in keys if k[:2] == p] for p in people}
    rng = np.random.default_rng(0)
    draws = [100 * np.mean([x for i in rng.integers(0, len(people), len(people)) for x in diff[people[i]]])
             for _ in range(2000)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    print(f"{ev}: mean of gt pass and rank-1 {cand} {means[cand]:.2f} against {base} {means[base]:.2f} "
          f"(gt pass {gt[cand]:.1f} against {gt[base]:.1f}, rank-1 {r1[cand]:.1f} against {r1[base]:.1f}); "
          f"difference {means[cand] - means[base]:+.2f}, 95 % interval [{lo:+.2f}, {hi:+.2f}]")
