#!/bin/bash
# Round 40, after the screen passed (docs/experiments.md): 2. the CK+ part (every CK+ person outside the test split,
# leave-CK+-out chain; must not fall below the baseline), 3. round 8's rule on the five-set chain (its first stage
# retrained here, both second stages from it; must score higher). Seeds 1-2 follow in a later session.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round40
date
stage2() {  # stage2 FIRST_STAGE_RUN CONFIG_NAME
  rm -rf runs/$2; mkdir -p runs/$2/checkpoints
  cp runs/$1/checkpoints/step_00002000.safetensors runs/$2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$2.yaml'), open('runs/$2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$2 --steps 2500 > runs/$2.log 2>&1
  date
}
score() {  # score OUT SPEC...
  local out=$1; shift
  (echo "\$ python tools/choice_score.py $* --bootstrap 2000"; echo; $PY tools/choice_score.py $* --bootstrap 2000) > $out
  tail -2 $out
}
gate() {  # gate CHECKPOINT OUT THRESHOLD [MAP]: the file with the default's inference step
  $PY tools/set_input_rule.py $1 $2 --neutralize-mode warp_frame --neutralize-threshold $3 ${4:+--neutral-shape-map $4}
}
value() {  # value SCORE_FILE NAME
  $PY -c "
line = [l for l in open('$1') if l.startswith('choice_score')][-1]
print(dict(kv.split('=') for kv in line.split()[1:])['$2'])"
}
# 2. the CK+ part
stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_idjitter_sfm
EC=runs/lodo_ckplus_feat10_ema_idjitter_sfm/checkpoints/step_00002500.safetensors
gate $EC runs/feat10_idjitter_gated_lodo_ckplus.safetensors 0.010 runs/maps/neutral_shape_no_ckplus.safetensors
$N evaluate lodo_feat10_idjitter_gated=runs/feat10_idjitter_gated_lodo_ckplus.safetensors \
    lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
score $R/ckplus_part.txt unseen:ckplus:feat10_ema=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated \
  unseen:ckplus:feat10_idjitter=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_idjitter_gated
CK=$($PY -c "print(int(float('$(value $R/ckplus_part.txt feat10_idjitter)') >= float('$(value $R/ckplus_part.txt feat10_ema)')))")
echo "CK+ part held: $CK"
[ "$CK" = 1 ] || { echo ROUND40_DONE rejected at the CK+ part; exit 0; }
# 3. round 8's rule: the five-set chain's validation people + the three unseen parts
rm -rf runs/all_data_feat10
$N train --config configs/all_data_feat10.yaml --name all_data_feat10 --quiet > runs/all_data_feat10.log 2>&1
date
stage2 all_data_feat10 all_data_feat10_ema_sfm
stage2 all_data_feat10 all_data_feat10_ema_idjitter_sfm
BA=runs/all_data_feat10_ema_sfm/checkpoints/step_00002500.safetensors
EA=runs/all_data_feat10_ema_idjitter_sfm/checkpoints/step_00002500.safetensors
gate $BA runs/feat10_ema_gated_all_data.safetensors 0.013
gate $EA runs/feat10_idjitter_gated_all_data.safetensors 0.013
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    feat10_idjitter_gated=runs/feat10_idjitter_gated_all_data.safetensors --split val \
    --sets london,ckplus,jaffe,yale --out $R/all_data_val
CMD=""
for m in feat10_ema feat10_idjitter; do
  for s in london ckplus jaffe yale; do CMD="$CMD in:$s:$m=$R/all_data_val/${s}_val/per_face.csv@${m}_gated"; done
  CMD="$CMD unseen:ckplus:$m=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_${m}_gated"
  for n in jaffe yale; do CMD="$CMD unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_${m}_gated"; done
done
score $R/rule.txt $CMD
RULE=$($PY -c "print(int(float('$(value $R/rule.txt feat10_idjitter)') > float('$(value $R/rule.txt feat10_ema)')))")
echo "rule passed: $RULE"
date
echo ROUND40_DONE
