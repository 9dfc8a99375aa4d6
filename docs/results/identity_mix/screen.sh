#!/bin/bash
# Session 38 measurement after probe `mixturn` (docs/experiments.md, "Identity mixing (probe)"): the JAFFE + Yale
# screen (round 21's: the leave-JAFFE-and-Yale-out chain, seed 0, scored on every JAFFE and Yale person) for
# identity mixing of frontal and turned inputs in both stages, beside the same chain without mixing (`feat10_ema`,
# 85.2). Nothing is chosen from it. Commands as round 40's (docs/results/round40/round40.sh).
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/identity_mix/screen
S1=lodo_jaffe_yale_feat10_mixturn; S2=lodo_jaffe_yale_feat10_ema_mixturn_sfm
mkdir -p $R
date
rm -rf runs/$S1
$N train --config configs/$S1.yaml --name $S1 --quiet > runs/$S1.log 2>&1
date
rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
cp runs/$S1/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
date
B=runs/lodo_jaffe_yale_feat10_ema_sfm/checkpoints/step_00002500.safetensors
E=runs/$S2/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $E runs/mixturn_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do
  $N evaluate lodo_mixturn_gated=runs/mixturn_gated_seed0.safetensors \
      lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/${n}_every_person --no-figures --quiet --kid-subsets 50
done
CMD=""; for m in feat10_ema mixturn; do for n in jaffe yale; do
  CMD="$CMD unseen:$n:$m=$R/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
(echo "\$ python tools/choice_score.py $CMD --bootstrap 2000"; echo; $PY tools/choice_score.py $CMD --bootstrap 2000) \
    > $R/screen_seed0.txt
tail -2 $R/screen_seed0.txt
date
echo SCREEN_DONE
