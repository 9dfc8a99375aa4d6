#!/bin/bash
# Round 41b (docs/experiments.md): the leave-JAFFE-and-Yale-out chain (seed 0, both stages with the average) trained
# with turned faces warped onto their predicted own frontal shape (probe.py's map), evaluated with the same warp.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; P="$PY docs/results/round41/probe.py"; MAP=runs/ownshape_map.npz
R=docs/results/round41
date
[ -f $MAP ] || $P fit $MAP
rm -rf runs/lodo_jaffe_yale_feat10_ownshape
$P train $MAP --config configs/lodo_jaffe_yale_feat10.yaml --name lodo_jaffe_yale_feat10_ownshape --quiet \
    > runs/lodo_jaffe_yale_feat10_ownshape.log 2>&1
date
S2=lodo_jaffe_yale_feat10_ema_ownshape_sfm
rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
cp runs/lodo_jaffe_yale_feat10_ownshape/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; c = load_config('configs/lodo_jaffe_yale_feat10_ema_sfm.yaml'); c['name'] = '$S2'; yaml.safe_dump(c, open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
$P train $MAP --resume runs/$S2 --steps 2500 > runs/$S2.log 2>&1
date
E=runs/$S2/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $E runs/feat10_ownshape_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
# 1. London's validation people, 3/4 views (baseline: london_val_baseline/)
$P evaluate $MAP lodo_ownshape_trained_gated=runs/feat10_ownshape_gated_seed0.safetensors --data out/london64 \
    --splits london --split val --calibration-split all --out $R/london_val_ownshape_trained --no-figures --quiet \
    --kid-subsets 50
# 2. the JAFFE + Yale screen against the baseline's rows of round 40
for n in jaffe yale; do
  $P evaluate $MAP lodo_ownshape_trained_gated=runs/feat10_ownshape_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0_trained/${n}_every_person --no-figures --quiet --kid-subsets 50
done
CMD=""; for n in jaffe yale; do
  CMD="$CMD unseen:$n:feat10_ema=docs/results/round40/seed0/${n}_every_person/per_face.csv@lodo_feat10_ema_gated"
  CMD="$CMD unseen:$n:ownshape_trained=$R/seed0_trained/${n}_every_person/per_face.csv@lodo_ownshape_trained_gated"; done
(echo "\$ python tools/choice_score.py $CMD --bootstrap 2000"; echo; $PY tools/choice_score.py $CMD --bootstrap 2000) \
    > $R/screen_trained_seed0.txt
tail -2 $R/screen_trained_seed0.txt
date
echo ROUND41B_DONE
