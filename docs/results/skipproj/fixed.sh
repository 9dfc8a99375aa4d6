#!/bin/bash
# Round 49's correction (docs/experiments.md): the probe's directions fitted on the training split's people only
# (until then on the model file's whole train_subjects, which holds the validation people the input rule's maps were
# fit on). Part 1 (`skipprojlda16`), the seed-0 screen, the CK+ part and the rule again, into *_fixed. ~20 min.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results/skipproj; N="$PY $R/probe.py"
source docs/results/choice_helpers.sh   # score, value, higher, screen_eval, screen_spec
V=skipprojlda16
date
$PY $R/probe.py mechanics runs/feat10_soup3_gated_seed0.safetensors > $R/mechanics_fixed.md
def=$($PY -c 'from nfgan.inference.generator import default_model_path as d; print(d())')
for s in london:london64:london ckplus:ckplus_wn64:ckplus_with_neutral jaffe:jaffe64:jaffe yale:yale64:yale; do
  IFS=: read n f split <<< "$s"
  $N evaluate default=$def default_$V=runs/default_$V.safetensors --data out/$f --splits $split --split val \
      --calibration-split all --out $R/part1_fixed/${n}_val --no-figures --quiet --kid-subsets 50
done
$PY docs/results/push/checks.py $R/part1_fixed default default_$V | tee $R/part1_fixed_$V.txt
screen_eval $R/seed0_fixed lodo_soup3_gated=runs/feat10_soup3_gated_seed0.safetensors \
    lodo_${V}_gated=runs/soup3_seed0_$V.safetensors
score $R/screen_fixed_seed0.txt $(screen_spec soup3=$R/seed0_fixed@lodo_soup3_gated $V=$R/seed0_fixed@lodo_${V}_gated)
$PY docs/results/push/per_class.py $R/seed0_fixed > $R/screen_fixed_per_class.md
$N evaluate lodo_soup3_gated=runs/feat10_soup3_gated_lodo_ckplus.safetensors \
    lodo_${V}_gated=runs/soup3_lodo_ckplus_$V.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus_fixed/ckplus_every_person --no-figures --quiet --kid-subsets 50
CC=$R/lodo_ckplus_fixed/ckplus_every_person/per_face.csv
score $R/ckplus_part_fixed.txt unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:$V=$CC@lodo_${V}_gated
$PY docs/results/push/per_class.py $R/lodo_ckplus_fixed > $R/ckplus_part_fixed_per_class.md
CMD=""
for s in london ckplus jaffe yale; do
  CMD="$CMD in:$s:soup3=$R/part1_fixed/${s}_val/per_face.csv@default in:$s:$V=$R/part1_fixed/${s}_val/per_face.csv@default_$V"
done
CMD="$CMD unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:$V=$CC@lodo_${V}_gated"
CMD="$CMD $(screen_spec soup3=$R/seed0_fixed@lodo_soup3_gated $V=$R/seed0_fixed@lodo_${V}_gated)"
score $R/rule_fixed.txt $CMD
date
echo FIXED_DONE
