#!/bin/bash
# Round 44d (measurement, no choice): the JAFFE LOSO 2b_aug row with references from the default's recipe since
# round 44 (soup3) trained without JAFFE and Yale (runs/feat10_soup3_gated_seed0.safetensors, round 44's file),
# seeds 0-2, against the 2b runs of round 35's measurement (the same command, docs/results/round35/scripts/
# fer_jaffe_lodo_ema.sh, on this machine kind: runs/fer/jaffe_lodo_ema_2b_seed*, kept in
# docs/results/fer_jaffe_2b_aug_lodo_feat10_ema/).
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
A=runs/feat10_soup3_gated_seed0.safetensors
date
for seed in 0 1 2; do
  rm -rf runs/fer/jaffe_lodo_soup3_2b_aug_seed$seed
  $N fer cv --data out/jaffe64_fer --folds jaffe_loso --config configs/fer/jaffe.yaml --variant 2b_aug --augment $A \
      --seed $seed --out runs/fer/jaffe_lodo_soup3_2b_aug_seed$seed > runs/fer/jaffe_lodo_soup3_2b_aug_seed$seed.log 2>&1
  date
done
$PY tools/fer_results_table.py --seeds runs/fer/jaffe_lodo_soup3_2b_aug_seed0 runs/fer/jaffe_lodo_soup3_2b_aug_seed1 \
    runs/fer/jaffe_lodo_soup3_2b_aug_seed2 --vs runs/fer/jaffe_lodo_ema_2b_seed0 runs/fer/jaffe_lodo_ema_2b_seed1 \
    runs/fer/jaffe_lodo_ema_2b_seed2 > runs/fer/jaffe_lodo_soup3_table.md 2>&1
R=docs/results/fer_jaffe_2b_aug_lodo_soup3; mkdir -p $R
cp runs/fer/jaffe_lodo_soup3_table.md $R/table.md
for seed in 0 1 2; do mkdir -p $R/2b_aug_seed$seed
  cp runs/fer/jaffe_lodo_soup3_2b_aug_seed$seed/{summary.json,confusion.csv} $R/2b_aug_seed$seed/; done
echo FER_JAFFE_SOUP3_DONE
