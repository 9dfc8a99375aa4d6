#!/bin/bash
# the JAFFE FER measurement (docs/experiments.md), split off runs/round35.sh before it ran
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
# 5. the JAFFE FER measurement: references from the baseline chain's file with the inference step
for seed in 0 1 2; do
  for v in 2b 2b_aug; do
    aug=""; [ $v = 2b_aug ] && aug="--augment runs/feat10_gated_seed0.safetensors"
    rm -rf runs/fer/jaffe_lodo_${v}_seed$seed
    $N fer cv --data out/jaffe64_fer --folds jaffe_loso --config configs/fer/jaffe.yaml --variant $v $aug \
        --seed $seed --out runs/fer/jaffe_lodo_${v}_seed$seed > runs/fer/jaffe_lodo_${v}_seed$seed.log 2>&1
    date
  done
done
$PY tools/fer_results_table.py --seeds runs/fer/jaffe_lodo_2b_aug_seed0 runs/fer/jaffe_lodo_2b_aug_seed1 runs/fer/jaffe_lodo_2b_aug_seed2 \
    --vs runs/fer/jaffe_lodo_2b_seed0 runs/fer/jaffe_lodo_2b_seed1 runs/fer/jaffe_lodo_2b_seed2 > runs/fer/jaffe_lodo_table.md 2>&1
echo FER_JAFFE_DONE
