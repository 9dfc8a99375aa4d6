#!/bin/bash
# Round 35 seeds 1 and 2 (docs/experiments.md): each leave-JAFFE-and-Yale-out first stage retrained on this machine,
# its second stage once with the moving average; the baseline is the same run's live weights (CKPT#live), which
# round 35 showed equal to the chain trained without the average
set -x
while ! grep -q ROUND35_DONE /work/main/runs/round35_driver.log; do sleep 20; done
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round35
for s in 1 2; do
  date
  rm -rf runs/lodo_jaffe_yale_feat10_seed$s
  $N train --config configs/lodo_jaffe_yale_feat10_seed$s.yaml --name lodo_jaffe_yale_feat10_seed$s > runs/feat10_seed${s}_stage1.log 2>&1
  c=lodo_jaffe_yale_feat10_ema_seed${s}_sfm
  rm -rf runs/$c; mkdir -p runs/$c/checkpoints
  cp runs/lodo_jaffe_yale_feat10_seed$s/checkpoints/step_00002000.safetensors runs/$c/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$c.yaml'), open('runs/$c/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$c --steps 2500 > runs/$c.log 2>&1
  date
  E=runs/$c/checkpoints/step_00002500.safetensors
  for w in live ema; do
    $PY tools/set_input_rule.py "$E#$w" runs/feat10_${w}_gated_seed$s.safetensors --neutralize-mode warp_frame \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  done
  for n in jaffe yale; do
    $N evaluate lodo_feat10=$E#live lodo_feat10_gated=runs/feat10_live_gated_seed$s.safetensors \
        lodo_feat10_ema=$E#ema lodo_feat10_ema_gated=runs/feat10_ema_gated_seed$s.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed$s/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
  for g in _gated ""; do
    CMD="python tools/choice_score.py"
    for m in feat10 feat10_ema; do for n in jaffe yale; do
      CMD="$CMD unseen:$n:$m=$R/seed$s/${n}_every_person/per_face.csv@lodo_$m$g"; done; done
    (echo "\$ $CMD --bootstrap 2000"; echo; $PY ${CMD#python } --bootstrap 2000) > $R/screen_seed$s${g/_gated/}$([ -z "$g" ] && echo _ungated).txt
  done
  date
done
echo ROUND35_SEEDS_DONE
