#!/bin/bash
# Probe `code` (docs/experiments.md, "An expression-invariant code in the U-Net's loss"). Needs the seed-0
# leave-JAFFE-and-Yale-out chain of docs/results/push/chain_seed0.sh (its first stage and `feat10_ema` second stage).
#   bash docs/results/code/code.sh   # two second stages (~8 min each on 2 cores), the screen (~6 min)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/code
source docs/results/choice_helpers.sh   # score, gated_stage2, screen_eval, screen_spec, baseline_rows_check
date
$PY $R/where.py > $R/where.md
for w in 3 10; do
  gated_stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_code${w}_sfm runs/feat10_ema_code${w}_gated_seed0.safetensors \
      --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
done
$PY $R/code_sight.py feat10_ema=runs/feat10_ema_gated_seed0.safetensors code3=runs/feat10_ema_code3_gated_seed0.safetensors \
    code10=runs/feat10_ema_code10_gated_seed0.safetensors > $R/code_sight.md
screen_eval $R/seed0 lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors \
    lodo_code3_gated=runs/feat10_ema_code3_gated_seed0.safetensors lodo_code10_gated=runs/feat10_ema_code10_gated_seed0.safetensors
baseline_rows_check $R/seed0
spec=$(screen_spec feat10_ema=$R/seed0@lodo_feat10_ema_gated code3=$R/seed0@lodo_code3_gated code10=$R/seed0@lodo_code10_gated)
score $R/screen_seed0.txt $spec
$PY docs/results/push/per_class.py $R/seed0 > $R/screen_per_class.md
date
echo CODE_DONE
