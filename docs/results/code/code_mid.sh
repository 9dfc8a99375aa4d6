#!/bin/bash
# Probe `code`, follow-up `code_mid` (docs/experiments.md, "An expression-invariant code in the U-Net's loss"): the
# seed-0 leave-JAFFE-and-Yale-out second stage with loss.code at 10 on the maps at 16 px and coarser (~8 min on 2
# cores), on the screen against `feat10_ema` (~4 min). Needs docs/results/push/chain_seed0.sh's first stage.
#   bash docs/results/code/code_mid.sh
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/code
source docs/results/choice_helpers.sh   # score, gated_stage2, screen_eval, screen_spec
date
gated_stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_code_mid_sfm runs/feat10_ema_code_mid_gated_seed0.safetensors \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
screen_eval $R/code_mid_seed0 lodo_code_mid_gated=runs/feat10_ema_code_mid_gated_seed0.safetensors
spec=$(screen_spec feat10_ema=$R/seed0@lodo_feat10_ema_gated code_mid=$R/code_mid_seed0@lodo_code_mid_gated)
score $R/screen_code_mid_seed0.txt $spec
$PY $R/code_sight.py feat10_ema=runs/feat10_ema_gated_seed0.safetensors code10=runs/feat10_ema_code10_gated_seed0.safetensors \
    code_mid=runs/feat10_ema_code_mid_gated_seed0.safetensors > $R/code_sight_mid.md
# added after the run: the distances on the maps the term matched (16 px and coarser)
$PY $R/code_sight.py --max-size 16 feat10_ema=runs/feat10_ema_gated_seed0.safetensors \
    code_mid=runs/feat10_ema_code_mid_gated_seed0.safetensors > $R/code_sight_mid16.md
$PY docs/results/push/per_class.py $R/code_mid_seed0 > $R/screen_code_mid_per_class.md
date
echo CODE_MID_DONE
