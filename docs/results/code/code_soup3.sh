#!/bin/bash
# Probe `code`, follow-up (docs/experiments.md, "An expression-invariant code in the U-Net's loss"): the lead's three
# second stages of `soup3` (loss.code at W), averaged, on the JAFFE + Yale screen against `soup3` (part 1, ~20 min
# after code.sh); part 2 only if part 1 gives a lead: the CK+ part (three second stages of the leave-CK+-out chain,
# ~30 min; its first stage is part 2 of docs/results/critic/critic_soup3.sh, retrained there when missing).
#   bash docs/results/code/code_soup3.sh 1 W
#   bash docs/results/code/code_soup3.sh 2 W
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/code; W=$2
source docs/results/choice_helpers.sh   # score, gated_stage2
date
if [ "$1" = 1 ]; then
  for v in turned_ turned_london_; do
    gated_stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_${v}code${W}_sfm runs/feat10_ema_${v}code${W}_gated_seed0.safetensors \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_code${W}_gated_seed0.safetensors \
      runs/feat10_ema_turned_code${W}_gated_seed0.safetensors runs/feat10_ema_turned_london_code${W}_gated_seed0.safetensors \
      --out runs/feat10_soup3_code${W}_gated_seed0.safetensors
  for n in jaffe yale; do
    $N evaluate lodo_soup3_code${W}_gated=runs/feat10_soup3_code${W}_gated_seed0.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/soup3_seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
  spec=""
  for n in jaffe yale; do
    spec="$spec unseen:$n:soup3=docs/results/push/seed0/${n}_every_person/per_face.csv@lodo_soup3_gated"
    spec="$spec unseen:$n:soup3_code${W}=$R/soup3_seed0/${n}_every_person/per_face.csv@lodo_soup3_code${W}_gated"
  done
  score $R/screen_soup3_seed0.txt $spec
  $PY docs/results/push/per_class.py $R/soup3_seed0 > $R/screen_soup3_per_class.md
fi
if [ "$1" = 2 ]; then
  for v in "" turned_ turned_london_; do
    gated_stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_${v}code${W}_sfm runs/feat10_ema_${v}code${W}_gated_lodo_ckplus.safetensors \
        --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_code${W}_gated_lodo_ckplus.safetensors \
      runs/feat10_ema_turned_code${W}_gated_lodo_ckplus.safetensors \
      runs/feat10_ema_turned_london_code${W}_gated_lodo_ckplus.safetensors \
      --out runs/feat10_soup3_code${W}_gated_lodo_ckplus.safetensors
  $N evaluate lodo_soup3_code${W}_gated=runs/feat10_soup3_code${W}_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
      --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
      --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
  score $R/ckplus_part.txt \
      unseen:ckplus:soup3=docs/results/round44/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_gated \
      unseen:ckplus:soup3_code${W}=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_code${W}_gated
  $PY docs/results/push/per_class.py $R/lodo_ckplus > $R/ckplus_part_per_class.md
fi
date
echo CODE_SOUP3_PART$1_DONE
