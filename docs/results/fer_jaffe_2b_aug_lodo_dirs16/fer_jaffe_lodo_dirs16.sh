#!/bin/bash
# Measurement (docs/experiments.md, "The JAFFE 2b_aug row with the expression directions, trained without JAFFE and
# Yale"): the JAFFE LOSO 2b_aug row with references from the seed-0 leave-JAFFE-and-Yale-out soup3 with its 16
# expression directions (the default's recipe since round 49b), seeds 0-2, against 2b run again beside it. ~35 min.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
[ -d out/jaffe64_fer ] || $N prepare jaffe ../shared/data/jaffe out/jaffe64_fer
A=runs/feat10_soup3_dirs16_gated_seed0.safetensors
[ -f $A ] || $PY tools/fit_expression_directions.py runs/feat10_soup3_gated_seed0.safetensors $A --k 16
date
for seed in 0 1 2; do
  for v in 2b 2b_aug; do
    aug=""; [ $v = 2b_aug ] && aug="--augment $A"
    O=runs/fer/jaffe_lodo_dirs16_${v}_seed$seed; rm -rf $O
    $N fer cv --data out/jaffe64_fer --folds jaffe_loso --config configs/fer/jaffe.yaml --variant $v $aug \
        --seed $seed --out $O > $O.log 2>&1
    date
  done
done
R=docs/results/fer_jaffe_2b_aug_lodo_dirs16
$PY tools/fer_results_table.py --seeds runs/fer/jaffe_lodo_dirs16_2b_aug_seed{0,1,2} \
    --vs runs/fer/jaffe_lodo_dirs16_2b_seed{0,1,2} > $R/table.md 2>&1
for v in 2b 2b_aug; do for seed in 0 1 2; do mkdir -p $R/${v}_seed$seed
  cp runs/fer/jaffe_lodo_dirs16_${v}_seed$seed/{summary.json,confusion.csv} $R/${v}_seed$seed/; done; done
cat $R/table.md
echo FER_JAFFE_DIRS16_DONE
