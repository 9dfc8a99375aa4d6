#!/bin/bash
# JAFFE LOSO 2b / 2b_aug (j2), references from the default's recipe trained without JAFFE and Yale (feat10, seed 0)
# with the default's inference step (t 0.012, the map fit without JAFFE and Yale); seeds 0-2; a measurement
# session 29: the chain is retrained on this machine (another draw than round 32, see experiments)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
$N prepare jaffe ../shared/data/jaffe out/jaffe64_fer > runs/jaffe_fer_prepare.log 2>&1
$PY tools/fit_neutral_shape.py london=out/london64:london ckplus=out/ckplus_wn64:ckplus_with_neutral \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_jaffe_yale.safetensors --report runs/maps/no_jaffe_yale > runs/map_no_jaffe_yale.log 2>&1
rm -rf runs/lodo_jaffe_yale_feat10
$N train --config configs/lodo_jaffe_yale_feat10.yaml --name lodo_jaffe_yale_feat10 > runs/feat10_stage1.log 2>&1
date
rm -rf runs/lodo_jaffe_yale_feat10_sfm; mkdir -p runs/lodo_jaffe_yale_feat10_sfm/checkpoints
cp runs/lodo_jaffe_yale_feat10/checkpoints/step_00002000.safetensors runs/lodo_jaffe_yale_feat10_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/lodo_jaffe_yale_feat10_sfm.yaml'), open('runs/lodo_jaffe_yale_feat10_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/lodo_jaffe_yale_feat10_sfm --steps 2500 > runs/feat10_stage2.log 2>&1
date
S=runs/lodo_jaffe_yale_feat10_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/feat10_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
$N evaluate lodo_feat10=$S lodo_feat10_gated=runs/feat10_gated_seed0.safetensors --data out/jaffe64 \
    --splits docs/results/lodo_jaffe_yale/jaffe_every_person.json --split test \
    --out runs/feat10_seed0_check/jaffe_every_person --no-figures --quiet --kid-subsets 50
cmp runs/feat10_seed0_check/jaffe_every_person/per_face.csv docs/results/round32/feat10_seed0/jaffe_every_person/per_face.csv && echo SAME_AS_ROUND32
date
for seed in 0 1 2; do
  for v in 2b 2b_aug; do
    aug=""; [ $v = 2b_aug ] && aug="--augment runs/feat10_gated_seed0.safetensors"
    rm -rf runs/fer/jaffe_lodo_${v}_seed$seed
    $N fer cv --data out/jaffe64_fer --folds jaffe_loso --config configs/fer/jaffe.yaml --variant $v $aug \
        --seed $seed --out runs/fer/jaffe_lodo_${v}_seed$seed > runs/fer/jaffe_lodo_${v}_seed$seed.log 2>&1
    date
  done
done
echo FER_JAFFE_DONE
$PY tools/fer_results_table.py --seeds runs/fer/jaffe_lodo_2b_aug_seed0 runs/fer/jaffe_lodo_2b_aug_seed1 runs/fer/jaffe_lodo_2b_aug_seed2 \
    --vs runs/fer/jaffe_lodo_2b_seed0 runs/fer/jaffe_lodo_2b_seed1 runs/fer/jaffe_lodo_2b_seed2 > runs/fer/jaffe_lodo_table.md 2>&1
echo FER_JAFFE_TABLE
