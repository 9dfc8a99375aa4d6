#!/bin/bash
# round 34 `featl1` seeds 1 and 2: both stages of each leave-JAFFE-and-Yale-out chain, the gate at inference, the
# confirmation against `feat10`'s seed-1 and seed-2 chains (round 32)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round34
for s in 1 2; do
date
rm -rf runs/lodo_jaffe_yale_featl1_seed$s
$N train --config configs/lodo_jaffe_yale_featl1_seed$s.yaml --name lodo_jaffe_yale_featl1_seed$s > runs/featl1_seed${s}_stage1.log 2>&1
date
rm -rf runs/lodo_jaffe_yale_featl1_seed${s}_sfm; mkdir -p runs/lodo_jaffe_yale_featl1_seed${s}_sfm/checkpoints
cp runs/lodo_jaffe_yale_featl1_seed$s/checkpoints/step_00002000.safetensors runs/lodo_jaffe_yale_featl1_seed${s}_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/lodo_jaffe_yale_featl1_seed${s}_sfm.yaml'), open('runs/lodo_jaffe_yale_featl1_seed${s}_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/lodo_jaffe_yale_featl1_seed${s}_sfm --steps 2500 > runs/featl1_seed${s}_stage2.log 2>&1
date
S=runs/lodo_jaffe_yale_featl1_seed${s}_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/featl1_gated_seed$s.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do $N evaluate lodo_featl1_seed$s=$S lodo_featl1_seed${s}_gated=runs/featl1_gated_seed$s.safetensors --data out/${n}64 --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test --out $R/featl1_seed$s/${n}_every_person --no-figures --quiet --kid-subsets 50; done
$N evaluate lodo_feat10_seed${s}_gated=runs/feat10_gated_seed$s.safetensors lodo_featl1_seed${s}_gated=runs/featl1_gated_seed$s.safetensors --data out/london64 --splits london --split val --calibration-split all --out $R/london_val_seed$s --no-figures --quiet --kid-subsets 50
date
F=docs/results/round32/feat10_seed$s
CMD="python tools/choice_score.py unseen:jaffe:feat10=$F/jaffe_every_person/per_face.csv@lodo_feat10_seed${s}_gated unseen:yale:feat10=$F/yale_every_person/per_face.csv@lodo_feat10_seed${s}_gated unseen:jaffe:featl1=$R/featl1_seed$s/jaffe_every_person/per_face.csv@lodo_featl1_seed${s}_gated unseen:yale:featl1=$R/featl1_seed$s/yale_every_person/per_face.csv@lodo_featl1_seed${s}_gated --bootstrap 2000"
(echo "\$ $CMD"; echo; $PY ${CMD#python }) > $R/featl1_confirm_seed$s.txt
CMD="python tools/choice_score.py unseen:jaffe:feat10=$F/jaffe_every_person/per_face.csv@lodo_feat10_seed$s unseen:yale:feat10=$F/yale_every_person/per_face.csv@lodo_feat10_seed$s unseen:jaffe:featl1=$R/featl1_seed$s/jaffe_every_person/per_face.csv@lodo_featl1_seed$s unseen:yale:featl1=$R/featl1_seed$s/yale_every_person/per_face.csv@lodo_featl1_seed$s --bootstrap 2000"
(echo "\$ $CMD"; echo; $PY ${CMD#python }) > $R/featl1_confirm_seed${s}_ungated.txt
done
date
echo FEATL1_SEEDS_DONE
