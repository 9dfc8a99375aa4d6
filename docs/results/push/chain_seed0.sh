#!/bin/bash
# Session 41: round 44's leave-JAFFE-and-Yale-out `soup3` chain of seed 0 trained again (runs/ of earlier sessions
# did not reach this checkout), for the screen of probe `push` (docs/experiments.md, "Pushing frontal outputs
# towards neutral at inference"). The same commands as round 44c (docs/results/round44/round44c.sh) with SEEDS=0
# and the seed-0 configs; the plain file's JAFFE and Yale rows are compared with round 44's. ~1 h on 2 cores.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/push
source docs/results/choice_helpers.sh   # gated_stage2
date
for s in ckplus_wn64:ckplus_with_neutral canada64:canada london64:london; do
  src=${s%%:*}
  [ -d out/${src}_turned ] || $N synth-expressions out/$src out/${src}_turned --sfm ../shared/models/sfm --yaw 15 40 \
      --expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3 --quiet
done
[ -f runs/maps/neutral_shape_no_jaffe_yale.safetensors ] || $PY tools/fit_neutral_shape.py \
    london=out/london64:london ckplus=out/ckplus_wn64:ckplus_with_neutral \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_jaffe_yale.safetensors --report runs/maps/no_jaffe_yale
date
F=lodo_jaffe_yale_feat10
[ -f runs/$F/checkpoints/step_00002000.safetensors ] || {
  rm -rf runs/$F; $N train --config configs/$F.yaml --name $F --quiet > runs/$F.log 2>&1; }
date
for c in ema ema_turned ema_turned_london; do
  gated_stage2 $F lodo_jaffe_yale_feat10_${c}_sfm runs/feat10_${c}_gated_seed0.safetensors \
      --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
done
$PY tools/average_models.py runs/feat10_ema_gated_seed0.safetensors runs/feat10_ema_turned_gated_seed0.safetensors \
    runs/feat10_ema_turned_london_gated_seed0.safetensors --out runs/feat10_soup3_gated_seed0.safetensors
echo CHAIN_SEED0_DONE
