#!/bin/bash
# Probe `trainproj` (docs/experiments.md, "Training with the expression directions taken out (probe)"): the seed-0
# leave-JAFFE-and-Yale-out soup3's three second stages trained again with the first K expression directions of
# their first stage taken out of the 16 px and 8 px skips (model.skip_proj_from), then the screen against the
# default's form (soup3 with 16 directions fitted after training) and soup3 with 64 fitted after training.
# ~30 min per K on 2 cores.   KS="64 16" bash docs/results/trainproj/trainproj.sh
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/trainproj; M=runs/trainproj
source docs/results/choice_helpers.sh   # gated_stage2, score, screen_eval, screen_spec
KS=${KS:-"64 16"}
mkdir -p $M
date
F=lodo_jaffe_yale_feat10
# the second stages' frontal sources (the first stage's config names no SFM folder)
S="canada=out/canada64:canada canada_sfm=out/canada64_sfm:canada ckplus=out/ckplus_wn64:ckplus_with_neutral"
S="$S london=out/london64:london london_sfm=out/london64_sfm:london"
[ -f $M/first_dirs64_seed0.safetensors ] || $PY tools/fit_expression_directions.py \
    runs/$F/checkpoints/step_00002000.safetensors $M/first_dirs64_seed0.safetensors --k 64 $S
for k in 16 64; do
  [ -f $M/soup3_dirs${k}_seed0.safetensors ] || $PY tools/fit_expression_directions.py \
      runs/feat10_soup3_gated_seed0.safetensors $M/soup3_dirs${k}_seed0.safetensors --k $k
done
for k in $KS; do
  date
  for c in ema ema_turned ema_turned_london; do
    gated_stage2 $F lodo_jaffe_yale_feat10_${c}_tp${k}_sfm $M/${c}_tp${k}_gated_seed0.safetensors \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  done
  $PY tools/average_models.py $M/ema_tp${k}_gated_seed0.safetensors $M/ema_turned_tp${k}_gated_seed0.safetensors \
      $M/ema_turned_london_tp${k}_gated_seed0.safetensors --out $M/soup3_tp${k}_gated_seed0.safetensors
  screen_eval $R/seed0_tp$k lodo_dirs16_gated=$M/soup3_dirs16_seed0.safetensors \
      lodo_dirs64_gated=$M/soup3_dirs64_seed0.safetensors lodo_tp${k}_gated=$M/soup3_tp${k}_gated_seed0.safetensors
  score $R/screen_seed0_tp$k.txt $(screen_spec dirs16=$R/seed0_tp$k@lodo_dirs16_gated \
      dirs64=$R/seed0_tp$k@lodo_dirs64_gated tp$k=$R/seed0_tp$k@lodo_tp${k}_gated)
  $PY docs/results/push/per_class.py $R/seed0_tp$k > $R/screen_seed0_tp${k}_per_class.md
done
date
echo TRAINPROJ_DONE
