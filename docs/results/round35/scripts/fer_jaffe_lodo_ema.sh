#!/bin/bash
# Session 31: JAFFE LOSO 2b / 2b_aug (j2), references from the default's recipe (with the moving average) trained
# without JAFFE and Yale (seed 0), exported with the default's inference step (t 0.012, the map fit without JAFFE
# and Yale): runs/feat10_ema_gated_seed0.safetensors, made by ship_lodo.sh. Seeds 0-2, paired; a measurement.
# As first run, the 2b_aug runs stopped at the leak guard (the file recorded no training subjects; set_input_rule
# records them since); the file was made again by ship_lodo.sh's command and the 2b_aug runs went with VARIANTS=2b_aug.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
A=runs/feat10_ema_gated_seed0.safetensors
test -f $A || { echo "missing $A: run ship_lodo.sh first"; exit 1; }
mkdir -p runs/fer
date
for seed in 0 1 2; do
  for v in ${VARIANTS:-2b 2b_aug}; do
    aug=""; [ $v = 2b_aug ] && aug="--augment $A"
    rm -rf runs/fer/jaffe_lodo_ema_${v}_seed$seed
    $N fer cv --data out/jaffe64_fer --folds jaffe_loso --config configs/fer/jaffe.yaml --variant $v $aug \
        --seed $seed --out runs/fer/jaffe_lodo_ema_${v}_seed$seed > runs/fer/jaffe_lodo_ema_${v}_seed$seed.log 2>&1
    date
  done
done
echo FER_JAFFE_DONE
$PY tools/fer_results_table.py --seeds runs/fer/jaffe_lodo_ema_2b_aug_seed0 runs/fer/jaffe_lodo_ema_2b_aug_seed1 \
    runs/fer/jaffe_lodo_ema_2b_aug_seed2 --vs runs/fer/jaffe_lodo_ema_2b_seed0 runs/fer/jaffe_lodo_ema_2b_seed1 \
    runs/fer/jaffe_lodo_ema_2b_seed2 > runs/fer/jaffe_lodo_ema_table.md 2>&1
echo FER_JAFFE_TABLE
