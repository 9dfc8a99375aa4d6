#!/bin/bash
# Session 41: round 44b's leave-CK+-out `soup3` chain trained again (runs/ of earlier sessions did not reach this
# checkout), for the CK+ part of a `push` lead (docs/experiments.md). The commands of round 35's
# ship_lodo_ckplus.sh (first stage, map) and round 44b (second stages, input rule t 0.010, average). ~1 h on 2 cores.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
for s in jaffe64:jaffe yale64:yale canada64:canada london64:london; do
  src=${s%%:*}
  [ -d out/${src}_turned ] || $N synth-expressions out/$src out/${src}_turned --sfm ../shared/models/sfm --yaw 15 40 \
      --expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3 --quiet
done
[ -f runs/maps/neutral_shape_no_ckplus.safetensors ] || $PY tools/fit_neutral_shape.py london=out/london64:london \
    jaffe=out/jaffe64:jaffe yale=out/yale64:yale london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_ckplus.safetensors --report runs/maps/no_ckplus
F=lodo_ckplus_feat10
[ -f runs/$F/checkpoints/step_00002000.safetensors ] || {
  rm -rf runs/$F; $N train --config configs/$F.yaml --name $F --quiet > runs/$F.log 2>&1; }
date
for c in ema ema_turned ema_turned_london; do
  S2=lodo_ckplus_feat10_${c}_sfm
  [ -f runs/feat10_${c}_gated_lodo_ckplus.safetensors ] && continue
  rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
  cp runs/$F/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
  $PY tools/set_input_rule.py runs/$S2/checkpoints/step_00002500.safetensors runs/feat10_${c}_gated_lodo_ckplus.safetensors \
      --neutralize-mode warp_frame --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  date
done
$PY tools/average_models.py runs/feat10_ema_gated_lodo_ckplus.safetensors runs/feat10_ema_turned_gated_lodo_ckplus.safetensors \
    runs/feat10_ema_turned_london_gated_lodo_ckplus.safetensors --out runs/feat10_soup3_gated_lodo_ckplus.safetensors
echo CHAIN_LODO_CKPLUS_DONE
