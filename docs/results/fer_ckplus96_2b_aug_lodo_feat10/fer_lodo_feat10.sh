#!/bin/bash
# the CK+ 10-fold 2b_aug row with references from the default's recipe (feat10) trained without CK+,
# as the skip-mask row (the precropped CK+48 faces carry no landmarks, so the inference step cannot apply)
set -x
while ! grep -q PREP_DONE /tmp/prep.log; do sleep 10; done
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
$N fer precropped --manifest ../shared/data/ckplus/manifest.csv --prefix peak/ --out out/ckplus_peak64_fer > runs/fer_precropped.log 2>&1
mkdir -p runs/maps
$PY tools/fit_neutral_shape.py london=out/london64:london jaffe=out/jaffe64:jaffe yale=out/yale64:yale \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_ckplus.safetensors --report runs/maps/no_ckplus > runs/map_no_ckplus.log 2>&1
date
rm -rf runs/lodo_ckplus_feat10
$N train --config configs/lodo_ckplus_feat10.yaml --name lodo_ckplus_feat10 > runs/feat10_ckplus_stage1.log 2>&1
rm -rf runs/lodo_ckplus_feat10_sfm; mkdir -p runs/lodo_ckplus_feat10_sfm/checkpoints
cp runs/lodo_ckplus_feat10/checkpoints/step_00002000.safetensors runs/lodo_ckplus_feat10_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/lodo_ckplus_feat10_sfm.yaml'), open('runs/lodo_ckplus_feat10_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/lodo_ckplus_feat10_sfm --steps 2500 > runs/feat10_ckplus_stage2.log 2>&1
date
S=runs/lodo_ckplus_feat10_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/feat10_gated_lodo_ckplus.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
$N evaluate lodo_feat10=$S lodo_feat10_gated=runs/feat10_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out runs/feat10_lodo_ckplus_check/ckplus_every_person --no-figures --quiet --kid-subsets 50
cmp runs/feat10_lodo_ckplus_check/ckplus_every_person/per_face.csv docs/results/round32/feat10_lodo_ckplus/ckplus_every_person/per_face.csv && echo SAME_AS_ROUND32
date
rm -rf runs/fer/ckplus96_2b_aug_lodo_feat10
$N fer cv --data out/ckplus_peak64_fer --folds ckplus_peak_10fold --config configs/fer/ckplus.yaml --variant 2b_aug \
    --augment runs/lodo_ckplus_feat10_sfm --out runs/fer/ckplus96_2b_aug_lodo_feat10 > runs/fer_lodo_feat10.log 2>&1
date
echo FER_LODO_DONE
