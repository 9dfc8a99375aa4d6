#!/bin/bash
# round 34 `featl1`: after seeds 1-2, if they average above `feat10`'s 81.85, round 8's rule: the leave-CK+-out
# chain (its part, not below `feat10`'s 89.6) and the five-set chain (validation part), against `feat10`
set -x
while ! grep -q FEATL1_SEEDS_DONE /work/main/runs/featl1_seeds.log; do sleep 20; done
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round34; F=docs/results/round32
S1=$(grep '^choice_score' $R/featl1_confirm_seed1.txt | sed 's/.*featl1=//')
S2=$(grep '^choice_score' $R/featl1_confirm_seed2.txt | sed 's/.*featl1=//')
echo "seed 1: $S1, seed 2: $S2"
if ! $PY -c "import sys; sys.exit(0 if (float('$S1') + float('$S2')) / 2 > 81.85 else 1)"; then echo FEATL1_RULE_SKIPPED; exit 0; fi
date
rm -rf runs/lodo_ckplus_featl1
$N train --config configs/lodo_ckplus_featl1.yaml --name lodo_ckplus_featl1 > runs/featl1_ckplus_stage1.log 2>&1
rm -rf runs/lodo_ckplus_featl1_sfm; mkdir -p runs/lodo_ckplus_featl1_sfm/checkpoints
cp runs/lodo_ckplus_featl1/checkpoints/step_00002000.safetensors runs/lodo_ckplus_featl1_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/lodo_ckplus_featl1_sfm.yaml'), open('runs/lodo_ckplus_featl1_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/lodo_ckplus_featl1_sfm --steps 2500 > runs/featl1_ckplus_stage2.log 2>&1
date
S=runs/lodo_ckplus_featl1_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/featl1_gated_lodo_ckplus.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
$N evaluate lodo_featl1=$S lodo_featl1_gated=runs/featl1_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/featl1_lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
CMD="python tools/choice_score.py unseen:ckplus:feat10=$F/feat10_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_gated unseen:ckplus:featl1=$R/featl1_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_featl1_gated --bootstrap 2000"
(echo "\$ $CMD"; echo; $PY ${CMD#python }) > $R/featl1_ckplus_part.txt
date
echo FEATL1_CKPLUS_DONE
rm -rf runs/all_data_featl1
$N train --config configs/all_data_featl1.yaml --name all_data_featl1 > runs/featl1_all_data_stage1.log 2>&1
rm -rf runs/all_data_featl1_sfm; mkdir -p runs/all_data_featl1_sfm/checkpoints
cp runs/all_data_featl1/checkpoints/step_00002000.safetensors runs/all_data_featl1_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/all_data_featl1_sfm.yaml'), open('runs/all_data_featl1_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/all_data_featl1_sfm --steps 2500 > runs/featl1_all_data_stage2.log 2>&1
date
S=runs/all_data_featl1_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/featl1_gated_all_data.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
$PY benchmarks/generalisation.py featl1_gated=runs/featl1_gated_all_data.safetensors --split val \
    --sets london,ckplus,jaffe,yale --out $R/featl1_all_data_val
date
CMD="python tools/choice_score.py"
for s in london ckplus jaffe yale; do CMD="$CMD in:$s:feat10=$F/feat10_all_data_val/${s}_val/per_face.csv@feat10_gated in:$s:featl1=$R/featl1_all_data_val/${s}_val/per_face.csv@featl1_gated"; done
CMD="$CMD unseen:ckplus:feat10=$F/feat10_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_gated unseen:ckplus:featl1=$R/featl1_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_featl1_gated"
for s in jaffe yale; do CMD="$CMD unseen:$s:feat10=$F/feat10_seed0/${s}_every_person/per_face.csv@lodo_feat10_gated unseen:$s:featl1=$R/featl1_seed0/${s}_every_person/per_face.csv@lodo_featl1_gated"; done
(echo "\$ $CMD --bootstrap 2000"; echo; $PY ${CMD#python } --bootstrap 2000) > $R/featl1_rule.txt
date
echo FEATL1_RULE_DONE
