#!/bin/bash
# round 34 `featl1`: both stages of the leave-JAFFE-and-Yale-out chain, the gate at inference, the screen against
# the default's recipe (`feat10`, round 32's seed-0 chain)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
rm -rf runs/lodo_jaffe_yale_featl1
$N train --config configs/lodo_jaffe_yale_featl1.yaml --name lodo_jaffe_yale_featl1 > runs/featl1_stage1.log 2>&1
date
rm -rf runs/lodo_jaffe_yale_featl1_sfm; mkdir -p runs/lodo_jaffe_yale_featl1_sfm/checkpoints
cp runs/lodo_jaffe_yale_featl1/checkpoints/step_00002000.safetensors runs/lodo_jaffe_yale_featl1_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/lodo_jaffe_yale_featl1_sfm.yaml'), open('runs/lodo_jaffe_yale_featl1_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/lodo_jaffe_yale_featl1_sfm --steps 2500 > runs/featl1_stage2.log 2>&1
date
S=runs/lodo_jaffe_yale_featl1_sfm/checkpoints/step_00002500.safetensors
R=docs/results/round34; F=docs/results/round32/feat10_seed0
$PY tools/set_input_rule.py $S runs/featl1_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do $N evaluate lodo_featl1=$S lodo_featl1_gated=runs/featl1_gated_seed0.safetensors --data out/${n}64 --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test --out $R/featl1_seed0/${n}_every_person --no-figures --quiet --kid-subsets 50; done
$N evaluate lodo_feat10_gated=runs/feat10_gated_seed0.safetensors lodo_featl1_gated=runs/featl1_gated_seed0.safetensors --data out/london64 --splits london --split val --calibration-split all --out $R/london_val --no-figures --quiet --kid-subsets 50
date
CMD="python tools/choice_score.py unseen:jaffe:feat10=$F/jaffe_every_person/per_face.csv@lodo_feat10_gated unseen:yale:feat10=$F/yale_every_person/per_face.csv@lodo_feat10_gated unseen:jaffe:featl1=$R/featl1_seed0/jaffe_every_person/per_face.csv@lodo_featl1_gated unseen:yale:featl1=$R/featl1_seed0/yale_every_person/per_face.csv@lodo_featl1_gated --bootstrap 2000"
(echo "\$ $CMD"; echo; $PY ${CMD#python }) > $R/featl1_screen_seed0.txt
CMD="python tools/choice_score.py unseen:jaffe:feat10=$F/jaffe_every_person/per_face.csv@lodo_feat10 unseen:yale:feat10=$F/yale_every_person/per_face.csv@lodo_feat10 unseen:jaffe:featl1=$R/featl1_seed0/jaffe_every_person/per_face.csv@lodo_featl1 unseen:yale:featl1=$R/featl1_seed0/yale_every_person/per_face.csv@lodo_featl1 --bootstrap 2000"
(echo "\$ $CMD"; echo; $PY ${CMD#python }) > $R/featl1_screen_seed0_ungated.txt
date
echo FEATL1_DONE
