#!/bin/bash
# Round 49 (docs/experiments.md): probe skipproj's lead `skipprojlda16` (an inference step) through round 35's
# procedure. Stops at the first condition that fails. Needs session 42's leave-CK+-out first stage and `feat10_ema`
# second stage (runs/lodo_ckplus_feat10, runs/feat10_ema_gated_lodo_ckplus.safetensors; part 2 of
# docs/results/critic/critic_soup3.sh) and the probe's part 1 and screen. ~1.5 h on 2 cores.
#   bash docs/results/skipproj/round49.sh          # SEEDS="1" by default (seed 2 in a later session: SEEDS=2)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/skipproj; P="$PY $R/probe.py"
source docs/results/choice_helpers.sh   # score, value, higher, gated_stage2, screen_spec
V=skipprojlda16
date
if [ -z "$SEEDS_ONLY" ]; then
  # 1. CK+ part
  for c in turned turned_london; do
    gated_stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_${c}_sfm runs/feat10_${c}_gated_lodo_ckplus.safetensors \
        --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_gated_lodo_ckplus.safetensors runs/feat10_turned_gated_lodo_ckplus.safetensors \
      runs/feat10_turned_london_gated_lodo_ckplus.safetensors --out runs/feat10_soup3_gated_lodo_ckplus.safetensors
  cp runs/feat10_soup3_gated_lodo_ckplus.safetensors runs/soup3_lodo_ckplus_$V.safetensors
  $P evaluate lodo_soup3_gated=runs/feat10_soup3_gated_lodo_ckplus.safetensors \
      lodo_${V}_gated=runs/soup3_lodo_ckplus_$V.safetensors --data out/ckplus_wn64 \
      --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
      --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
  cmp <(grep ^lodo_soup3_gated, $R/lodo_ckplus/ckplus_every_person/per_face.csv) \
      <(grep ^lodo_soup3_gated, docs/results/round44/lodo_ckplus/ckplus_every_person/per_face.csv) \
      && echo "plain soup3 CK+ rows equal to round 44b's"
  CC=$R/lodo_ckplus/ckplus_every_person/per_face.csv
  score $R/ckplus_part.txt unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:$V=$CC@lodo_${V}_gated
  $PY docs/results/push/per_class.py $R/lodo_ckplus > $R/ckplus_part_per_class.md
  PASS=$($PY -c "print(int(float('$(value $R/ckplus_part.txt $V)') >= float('$(value $R/ckplus_part.txt soup3)')))")
  echo "CK+ part passed: $PASS"
  [ "$PASS" = 1 ] || { echo ROUND49_DONE; exit 0; }
  # 2. the rule
  CMD=""
  for s in london ckplus jaffe yale; do
    CMD="$CMD in:$s:soup3=$R/part1_lda32/${s}_val/per_face.csv@default in:$s:$V=$R/part1_lda32/${s}_val/per_face.csv@default_$V"
  done
  CMD="$CMD unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:$V=$CC@lodo_${V}_gated"
  CMD="$CMD $(screen_spec soup3=$R/seed0@lodo_soup3_gated $V=$R/seed0@lodo_${V}_gated)"
  score $R/rule.txt $CMD
  PASS=$(higher $(value $R/rule.txt $V) $(value $R/rule.txt soup3))
  echo "rule passed: $PASS"
  [ "$PASS" = 1 ] || { echo ROUND49_DONE; exit 0; }
fi
# 3. seeds (round 44c's chain, then the screen with and without the step)
for s in ${SEEDS:-1}; do
  date
  F=lodo_jaffe_yale_feat10_seed$s
  [ -f runs/$F/checkpoints/step_00002000.safetensors ] || {
    rm -rf runs/$F; $N train --config configs/$F.yaml --name $F --quiet > runs/$F.log 2>&1; }
  for c in ema ema_turned ema_turned_london; do
    gated_stage2 $F lodo_jaffe_yale_feat10_${c}_seed${s}_sfm runs/feat10_${c}_gated_seed$s.safetensors \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  done
  $PY tools/average_models.py runs/feat10_ema_gated_seed$s.safetensors runs/feat10_ema_turned_gated_seed$s.safetensors \
      runs/feat10_ema_turned_london_gated_seed$s.safetensors --out runs/feat10_soup3_gated_seed$s.safetensors
  cp runs/feat10_soup3_gated_seed$s.safetensors runs/soup3_seed${s}_$V.safetensors
  N="$P" screen_eval $R/seed$s lodo_soup3_gated=runs/feat10_soup3_gated_seed$s.safetensors \
      lodo_${V}_gated=runs/soup3_seed${s}_$V.safetensors
  for n in jaffe yale; do
    cmp <(grep ^lodo_soup3_gated, $R/seed$s/${n}_every_person/per_face.csv) \
        <(grep ^lodo_soup3_gated, docs/results/round44/seed$s/${n}_every_person/per_face.csv) \
        && echo "seed $s $n: plain soup3 rows equal to round 44c's"
  done
  score $R/screen_seed$s.txt $(screen_spec soup3=$R/seed$s@lodo_soup3_gated $V=$R/seed$s@lodo_${V}_gated)
  $PY docs/results/push/per_class.py $R/seed$s > $R/screen_seed${s}_per_class.md
done
date
echo ROUND49_DONE
