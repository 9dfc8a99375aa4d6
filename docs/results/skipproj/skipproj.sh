#!/bin/bash
# Probe `skipproj` (docs/experiments.md, "Taking the training people's expression directions out of the mid skips").
#   bash docs/results/skipproj/skipproj.sh 1   # part 1: validation people, the shipped default (~10 min)
#   bash docs/results/skipproj/skipproj.sh 2   # part 2: the screen, variants that passed part 1 (needs the seed-0
#                                              # leave-JAFFE-and-Yale-out soup3 of docs/results/push/chain_seed0.sh)
# As run: part 1 (no variant passed), then VARIANTS="skipprojlda64 skipprojlda128" P1=docs/results/skipproj/part1_lda
# bash docs/results/skipproj/skipproj.sh 1 (neither passed), then VARIANTS="skipprojlda16 skipprojlda32"
# P1=docs/results/skipproj/part1_lda32 bash docs/results/skipproj/skipproj.sh 1, then part 2 with VARIANTS="skipprojlda16
# skipprojlda32 skipprojlda64 skipprojlda128" MEASURE="skipprojlda64 skipprojlda128" (part 2 skips a variant that
# failed part 1 unless MEASURE names it: scored as a measurement, nothing chosen from it).
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results/skipproj; N="$PY $R/probe.py"   # `$N evaluate` = nfgan evaluate with the step
source docs/results/choice_helpers.sh   # score, screen_eval, screen_spec
VARIANTS=${VARIANTS:-"skipproj8 skipproj32 skipproj32_8"}; P1=${P1:-$R/part1}   # part 1 folder
date
if [ "$1" = 1 ]; then
  def=$($PY -c 'from nfgan.inference.generator import default_model_path as d; print(d())'); models="default=$def"
  for v in $VARIANTS; do
    cp $def runs/default_$v.safetensors
    models="$models default_$v=runs/default_$v.safetensors"
  done
  for s in london:london64:london ckplus:ckplus_wn64:ckplus_with_neutral jaffe:jaffe64:jaffe yale:yale64:yale; do
    IFS=: read n f split <<< "$s"
    $N evaluate $models --data out/$f --splits $split --split val --calibration-split all \
        --out $P1/${n}_val --no-figures --quiet --kid-subsets 50
  done
  for v in $VARIANTS; do $PY docs/results/push/checks.py $P1 default default_$v | tee $R/part1_$v.txt; done
fi
if [ "$1" = 2 ]; then
  models="lodo_soup3_gated=runs/feat10_soup3_gated_seed0.safetensors"; labels="soup3=$R/seed0@lodo_soup3_gated"
  for v in $VARIANTS; do
    grep -q "part1 default_$v pass" $R/part1_$v.txt || [[ " $MEASURE " == *" $v "* ]] || continue
    cp runs/feat10_soup3_gated_seed0.safetensors runs/soup3_seed0_$v.safetensors
    models="$models lodo_${v}_gated=runs/soup3_seed0_$v.safetensors"; labels="$labels $v=$R/seed0@lodo_${v}_gated"
  done
  screen_eval $R/seed0 $models
  for n in jaffe yale; do   # the plain soup3 rows against probe push's (the same file, scored in session 41)
    cmp <(grep ^lodo_soup3_gated, $R/seed0/${n}_every_person/per_face.csv) \
        <(grep ^lodo_soup3_gated, docs/results/push/seed0/${n}_every_person/per_face.csv) \
        && echo "$n: plain soup3 rows equal to probe push's"
  done
  score $R/screen_seed0.txt $(screen_spec $labels)
  $PY docs/results/push/per_class.py $R/seed0 > $R/screen_per_class.md
fi
date
echo SKIPPROJ_PART$1_DONE
