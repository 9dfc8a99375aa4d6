#!/bin/bash
# Session 37 (docs/experiments.md, "Rank-1 among every person of the set"): does the pull towards training
# identities grow with training? The five-set chain of round 44b at steps 500-2500 (first stage, then the
# default's recipe's first second stage, its moving average), without the inference step, on London's validation
# people. A measurement; nothing is chosen.
set -x
cd /work/main
N=.venv/bin/nfgan; R=docs/results/rank1_every; F=runs/all_data_feat10/checkpoints; S=runs/all_data_feat10_ema_sfm/checkpoints
date
$N evaluate s0500=$F/step_00000500.safetensors s1000=$F/step_00001000.safetensors s1500=$F/step_00001500.safetensors \
    s2000=$F/step_00002000.safetensors s2250=$S/step_00002250.safetensors s2500=$S/step_00002500.safetensors \
    --data out/london64 --splits london --split val --calibration-split all --out $R/london_val_steps \
    --no-figures --quiet --kid-subsets 50
.venv/bin/python - <<'PY' | tee $R/steps.md
import csv
rows = list(csv.DictReader(open("docs/results/rank1_every/london_val_steps/per_face.csv")))
print("| model | rank-1 faceres % (3/4) | rank-1 among every person faceres % (3/4) | gt pass faceres % (3/4) | SSIM |")
print("|---|---|---|---|---|")
for m in dict.fromkeys(r["model"] for r in rows):
    rr = [r for r in rows if r["model"] == m]; q = [r for r in rr if r["view"] == "3/4"]
    pct = lambda xs, k: 100 * sum(float(r[k]) for r in xs) / len(xs)
    print(f"| {m} | {pct(rr, 'rank1_faceres'):.1f} ({pct(q, 'rank1_faceres'):.1f}) | {pct(rr, 'rank1_every_faceres'):.1f} "
          f"({pct(q, 'rank1_every_faceres'):.1f}) | {pct(rr, 'id_gt_pass_faceres'):.1f} ({pct(q, 'id_gt_pass_faceres'):.1f}) | "
          f"{sum(float(r['ssim']) for r in rr) / len(rr):.3f} |")
PY
date
echo STEPS_DONE
