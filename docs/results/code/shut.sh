#!/bin/bash
# Probe `code`, follow-up `shut` (docs/experiments.md, "An expression-invariant code in the U-Net's loss"): the seed-0
# leave-JAFFE-and-Yale-out chain with the 16 px and 8 px skips shut and loss.code at 10 (first stage ~40 min, second
# stage ~8 min on 2 cores), on the screen against `feat10_ema` (~4 min).
#   bash docs/results/code/shut.sh
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/code
source docs/results/choice_helpers.sh   # score, gated_stage2, screen_eval, screen_spec
date
F=lodo_jaffe_yale_feat10_shut
[ -f runs/$F/checkpoints/step_00002000.safetensors ] || {
  rm -rf runs/$F; $N train --config configs/$F.yaml --name $F --quiet > runs/$F.log 2>&1; }
date
gated_stage2 $F lodo_jaffe_yale_feat10_ema_shut_sfm runs/feat10_ema_shut_gated_seed0.safetensors \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
$PY $R/code_sight.py feat10_ema=runs/feat10_ema_gated_seed0.safetensors code10=runs/feat10_ema_code10_gated_seed0.safetensors \
    shut=runs/feat10_ema_shut_gated_seed0.safetensors > $R/code_sight_shut.md
screen_eval $R/shut_seed0 lodo_shut_gated=runs/feat10_ema_shut_gated_seed0.safetensors
spec=$(screen_spec feat10_ema=$R/seed0@lodo_feat10_ema_gated shut=$R/shut_seed0@lodo_shut_gated)
score $R/screen_shut_seed0.txt $spec
$PY docs/results/push/per_class.py $R/shut_seed0 > $R/screen_shut_per_class.md
date
echo SHUT_DONE
