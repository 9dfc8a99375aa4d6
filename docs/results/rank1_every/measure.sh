#!/bin/bash
# Session 37 (docs/experiments.md, "Rank-1 among every person of the set"): London's validation and test people
# scored with the distractor gallery (rank1_every_*, nfgan.evaluation.evaluate.rank1). A measurement; nothing is chosen.
set -x
cd /work/main
N=.venv/bin/nfgan; R=docs/results/rank1_every
date
# validation people, the five-set chain of round 44b (the default's three stages averaged, and its first alone), cc_by
$N evaluate soup3_gated=runs/feat10_soup3_gated_all_data.safetensors feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    cc_by=cc_by --data out/london64 --splits london --split val --calibration-split all --out $R/london_val \
    --no-figures --quiet --kid-subsets 50
# validation people, the leave-JAFFE-and-Yale-out seed-0 chain's candidates of rounds 40-45
$N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors lodo_turned_gated=runs/feat10_turned_gated_seed0.safetensors \
    lodo_turned_london_gated=runs/feat10_turned_london_gated_seed0.safetensors \
    lodo_idjitter_gated=runs/feat10_idjitter_gated_seed0.safetensors lodo_soup3_gated=runs/feat10_soup3_gated_seed0.safetensors \
    lodo_soup4_gated=runs/feat10_soup4_gated_seed0.safetensors --data out/london64 --splits london --split val \
    --calibration-split all --out $R/london_val_seed0 --no-figures --quiet --kid-subsets 50
# test people: the shipped default, its first stage alone, cc_by (reported, not used for any choice)
$N evaluate default=default feat10_ema_here=runs/feat10_ema_gated_all_data.safetensors cc_by=cc_by --data out/london64 \
    --splits london --split test --calibration-split all --out $R/london_test --no-figures --quiet --kid-subsets 50
.venv/bin/python - <<'PY' > $R/summary.md
import csv
print("| people | model | inputs (3/4) | rank-1 faceres % (3/4) | rank-1 among every person faceres % (3/4) | the same, faceres_deep % (3/4) |")
print("|---|---|---|---|---|---|")
for part in ("london_val", "london_val_seed0", "london_test"):
    rows = list(csv.DictReader(open(f"docs/results/rank1_every/{part}/per_face.csv")))
    for m in dict.fromkeys(r["model"] for r in rows):
        rr = [r for r in rows if r["model"] == m]
        q = [r for r in rr if r["view"] == "3/4"]
        pct = lambda xs, k: 100 * sum(float(r[k]) for r in xs) / len(xs)
        print(f"| {part} | {m} | {len(rr)} ({len(q)}) | {pct(rr, 'rank1_faceres'):.1f} ({pct(q, 'rank1_faceres'):.1f}) | "
              f"{pct(rr, 'rank1_every_faceres'):.1f} ({pct(q, 'rank1_every_faceres'):.1f}) | "
              f"{pct(rr, 'rank1_every_faceres_deep'):.1f} ({pct(q, 'rank1_every_faceres_deep'):.1f}) |")
PY
cat $R/summary.md
date
echo RANK1_EVERY_DONE
