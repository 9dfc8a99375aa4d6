#!/bin/bash
# Probe `critic`, follow-up (docs/experiments.md, "A second expression critic in the lever's loss"): `crit_own`'s three
# second stages of `soup3`, averaged, on the JAFFE + Yale screen against `soup3` (part 1, ~20 min after
# critic.sh); part 2 only if part 1 gives a lead: the CK+ part (~80 min, the first stage retrained when missing);
# part 3 checks part 2's retrained first stage against session 31's rows (round 44b's soup3 is that chain's).
#   bash docs/results/critic/critic_soup3.sh 1
#   bash docs/results/critic/critic_soup3.sh 2
#   bash docs/results/critic/critic_soup3.sh 3
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/critic
source docs/results/choice_helpers.sh   # score, gated_stage2, screen_eval, screen_spec
date
if [ "$1" = 1 ]; then
  for v in turned turned_london; do
    gated_stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_${v}_crit_own_sfm runs/feat10_ema_${v}_crit_own_gated_seed0.safetensors \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_crit_own_gated_seed0.safetensors \
      runs/feat10_ema_turned_crit_own_gated_seed0.safetensors runs/feat10_ema_turned_london_crit_own_gated_seed0.safetensors \
      --out runs/feat10_soup3_crit_own_gated_seed0.safetensors
  screen_eval $R/soup3_seed0 lodo_soup3_crit_own_gated=runs/feat10_soup3_crit_own_gated_seed0.safetensors
  spec=$(screen_spec soup3=docs/results/push/seed0@lodo_soup3_gated \
      soup3_crit_own=$R/soup3_seed0@lodo_soup3_crit_own_gated)
  score $R/screen_soup3_seed0.txt $spec
  $PY docs/results/push/per_class.py $R/soup3_seed0 > $R/screen_soup3_per_class.md
fi
if [ "$1" = 2 ]; then
  # the leave-CK+-out first stage and neutral-shape map as round 35 made them (ship_lodo_ckplus.sh), when missing
  [ -f runs/maps/neutral_shape_no_ckplus.safetensors ] || $PY tools/fit_neutral_shape.py london=out/london64:london \
      jaffe=out/jaffe64:jaffe yale=out/yale64:yale london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
      --out runs/maps/neutral_shape_no_ckplus.safetensors --report runs/maps/no_ckplus
  [ -f runs/lodo_ckplus_feat10/checkpoints/step_00002000.safetensors ] || {
    rm -rf runs/lodo_ckplus_feat10
    $N train --config configs/lodo_ckplus_feat10.yaml --name lodo_ckplus_feat10 --quiet > runs/lodo_ckplus_feat10.log 2>&1; }
  date
  [ -f runs/critic_no_ckplus.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
      canada=out/canada64:canada jaffe=out/jaffe64:jaffe yale=out/yale64:yale \
      --out runs/critic_no_ckplus.safetensors --report $R/critic_no_ckplus
  for v in "" turned_ turned_london_; do
    gated_stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_${v}crit_own_sfm runs/feat10_ema_${v}crit_own_gated_lodo_ckplus.safetensors \
        --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_crit_own_gated_lodo_ckplus.safetensors \
      runs/feat10_ema_turned_crit_own_gated_lodo_ckplus.safetensors \
      runs/feat10_ema_turned_london_crit_own_gated_lodo_ckplus.safetensors \
      --out runs/feat10_soup3_crit_own_gated_lodo_ckplus.safetensors
  $N evaluate lodo_soup3_crit_own_gated=runs/feat10_soup3_crit_own_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
      --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
      --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
  score $R/ckplus_part.txt \
      unseen:ckplus:feat10_ema=docs/results/round35/feat10_ema_lodo_ckplus_epyc/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated \
      unseen:ckplus:soup3=docs/results/round44/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_gated \
      unseen:ckplus:soup3_crit_own=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_crit_own_gated
  # added after the run: the paired difference against soup3 itself (the table above pairs with feat10_ema)
  score $R/ckplus_part_vs_soup3.txt \
      unseen:ckplus:soup3=docs/results/round44/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_gated \
      unseen:ckplus:soup3_crit_own=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_crit_own_gated
  $PY docs/results/push/per_class.py $R/lodo_ckplus > $R/ckplus_part_per_class.md
fi
if [ "$1" = 3 ]; then
  # a check of part 2's retrained first stage: its plain `feat10_ema` second stage against session 31's rows
  gated_stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_sfm runs/feat10_ema_gated_lodo_ckplus.safetensors \
      --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  $N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
      --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
      --out runs/lodo_check/ckplus_every_person --no-figures --quiet --kid-subsets 50
  cmp <(grep ^lodo_feat10_ema_gated, runs/lodo_check/ckplus_every_person/per_face.csv) \
      <(grep ^lodo_feat10_ema_gated, docs/results/round35/feat10_ema_lodo_ckplus_epyc/ckplus_every_person/per_face.csv) \
      && echo "ckplus: the retrained chain's feat10_ema rows equal session 31's (the chain round 44b's soup3 averages)"
fi
date
echo CRITIC_SOUP3_PART$1_DONE
