#!/bin/bash
# Round 40 (docs/experiments.md): candidate `feat10_idjitter`, the default's leave-JAFFE-and-Yale-out second stage
# (with the moving average) with L_id on jittered outputs (loss.id_jitter 0.5), from session 31's first stage.
# Baseline: the default's recipe (`feat10_ema`) on this machine kind (AMD EPYC). Nothing scores a test person.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round40
mkdir -p $R
date
S2=lodo_jaffe_yale_feat10_ema_idjitter_sfm
rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
cp runs/lodo_jaffe_yale_feat10/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$S2 --steps 2500 > runs/$S2.log 2>&1
date
B=runs/lodo_jaffe_yale_feat10_ema_sfm/checkpoints/step_00002500.safetensors
E=runs/$S2/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $E runs/feat10_idjitter_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
# 1. the JAFFE + Yale screen: must score above the baseline
for n in jaffe yale; do
  $N evaluate lodo_feat10_idjitter=$E lodo_feat10_idjitter_gated=runs/feat10_idjitter_gated_seed0.safetensors \
      lodo_feat10_ema=$B lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
done
for g in _gated ""; do
  CMD=""; for m in feat10_ema feat10_idjitter; do for n in jaffe yale; do
    CMD="$CMD unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_$m$g"; done; done
  (echo "\$ python tools/choice_score.py $CMD --bootstrap 2000"; echo; $PY tools/choice_score.py $CMD --bootstrap 2000) \
      > $R/screen_seed0$([ -z "$g" ] && echo _ungated).txt
  tail -2 $R/screen_seed0$([ -z "$g" ] && echo _ungated).txt
done
# reported beside the screen: London's validation people, both with the step
$PY benchmarks/generalisation.py lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors \
    lodo_feat10_idjitter_gated=runs/feat10_idjitter_gated_seed0.safetensors --split val --sets london \
    --out $R/seed0_london_val
date
echo ROUND40_DONE
