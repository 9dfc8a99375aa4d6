#!/bin/bash
# Round 42c (docs/experiments.md): the own-shape warp against the mean layout on SFM-turned faces of the test people
# of CK+, JAFFE, Yale and canada (a measurement).
set -x
cd /work/main
N=.venv/bin/nfgan; R=docs/results/round42/turned
git show 2e81d28:src/nfgan/assets/pix2pix_all_data_research64.safetensors > runs/default_template.safetensors
for spec in ckplus_wn64:ckplus_with_neutral jaffe64:jaffe yale64:yale canada64:canada; do
  src=${spec%%:*}; split=${spec##*:}
  [ -d out/${src}_turned ] || $N synth-expressions out/$src out/${src}_turned --sfm ../shared/models/sfm --yaw 15 40 \
      --expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3 --quiet
  $N evaluate default_template=runs/default_template.safetensors default=default --data out/${src}_turned \
      --splits $split --split test --calibration-split all --out $R/$src --no-figures --quiet --kid-subsets 50
done
echo ROUND42C_DONE
