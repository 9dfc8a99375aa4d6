#!/bin/bash
# Round 37 (docs/experiments.md): candidate `feat10_idrank`, the default's second stage (with its moving average)
# with the ranking term of L_id (loss.id_rank 1.0). Baseline: the default's recipe (`feat10_ema`) on this machine kind
# (AMD EPYC, session 31's chains in runs/). Each gate below must pass before the next runs; nothing scores a test person.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round37
mkdir -p $R
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
  CMD="python tools/choice_score.py $* --bootstrap 2000"
  (echo "\$ $CMD"; echo; $PY ${CMD#python }) > $out
  tail -2 $out
}
passed() {  # passed SCORE_FILE: 1 if feat10_idrank scores above feat10_ema
  $PY -c "
line = [l for l in open('$1') if l.startswith('choice_score')][-1]
d = dict(kv.split('=') for kv in line.split()[1:]); print(int(float(d['feat10_idrank']) > float(d['feat10_ema'])))"
}
gate() {  # gate CHECKPOINT OUT THRESHOLD [MAP]: the file with the default's inference step
  $PY tools/set_input_rule.py $1 $2 --neutralize-mode warp_frame --neutralize-threshold $3 ${4:+--neutral-shape-map $4}
}
# 1. screen, seed 0: JAFFE + Yale people outside the test splits, the leave-JAFFE-and-Yale-out chain
stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_idrank_sfm
B=runs/lodo_jaffe_yale_feat10_ema_sfm/checkpoints/step_00002500.safetensors
E=runs/lodo_jaffe_yale_feat10_ema_idrank_sfm/checkpoints/step_00002500.safetensors
gate $E runs/feat10_idrank_gated_seed0.safetensors 0.012 runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do
  $N evaluate lodo_feat10_idrank=$E lodo_feat10_idrank_gated=runs/feat10_idrank_gated_seed0.safetensors \
      lodo_feat10_ema=$B lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
done
for g in _gated ""; do
  CMD=""; for m in feat10_ema feat10_idrank; do for n in jaffe yale; do
    CMD="$CMD unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_$m$g"; done; done
  score $R/screen_seed0$([ -z "$g" ] && echo _ungated).txt $CMD
done
# reported beside the screen: London's validation people (in training for this chain), both with the step
$PY benchmarks/generalisation.py lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors \
    lodo_feat10_idrank_gated=runs/feat10_idrank_gated_seed0.safetensors --split val --sets london --out $R/seed0_london_val
echo "screen passed: $(passed $R/screen_seed0.txt)"
[ "$(passed $R/screen_seed0.txt)" = 1 ] || { echo ROUND37_DONE rejected at the screen; exit 0; }
# 2. the CK+ part: every CK+ person outside the test split, the leave-CK+-out chain; must not fall below
stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_idrank_sfm
BC=runs/lodo_ckplus_feat10_ema_sfm/checkpoints/step_00002500.safetensors
EC=runs/lodo_ckplus_feat10_ema_idrank_sfm/checkpoints/step_00002500.safetensors
gate $EC runs/feat10_idrank_gated_lodo_ckplus.safetensors 0.010 runs/maps/neutral_shape_no_ckplus.safetensors
$N evaluate lodo_feat10_idrank_gated=runs/feat10_idrank_gated_lodo_ckplus.safetensors \
    lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
score $R/ckplus_part.txt unseen:ckplus:feat10_ema=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated \
  unseen:ckplus:feat10_idrank=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_idrank_gated
CK=$($PY -c "
line = [l for l in open('$R/ckplus_part.txt') if l.startswith('choice_score')][-1]
d = dict(kv.split('=') for kv in line.split()[1:]); print(int(float(d['feat10_idrank']) >= float(d['feat10_ema'])))")
echo "CK+ part held: $CK"
[ "$CK" = 1 ] || { echo ROUND37_DONE rejected at the CK+ part; exit 0; }
# 3. round 8's rule: the five-set chain's validation people + the three unseen parts
rm -rf runs/all_data_feat10
$N train --config configs/all_data_feat10.yaml --name all_data_feat10 --quiet > runs/all_data_feat10.log 2>&1
date
stage2 all_data_feat10 all_data_feat10_ema_sfm
stage2 all_data_feat10 all_data_feat10_ema_idrank_sfm
BA=runs/all_data_feat10_ema_sfm/checkpoints/step_00002500.safetensors
EA=runs/all_data_feat10_ema_idrank_sfm/checkpoints/step_00002500.safetensors
gate $BA runs/feat10_ema_gated_all_data.safetensors 0.013
gate $EA runs/feat10_idrank_gated_all_data.safetensors 0.013
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    feat10_idrank_gated=runs/feat10_idrank_gated_all_data.safetensors --split val \
    --sets london,ckplus,jaffe,yale --out $R/all_data_val
CMD=""
for m in feat10_ema feat10_idrank; do
  for s in london ckplus jaffe yale; do CMD="$CMD in:$s:$m=$R/all_data_val/${s}_val/per_face.csv@${m}_gated"; done
  CMD="$CMD unseen:ckplus:$m=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_${m}_gated"
  for n in jaffe yale; do CMD="$CMD unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_${m}_gated"; done
done
score $R/rule.txt $CMD
echo "rule passed: $(passed $R/rule.txt)"
[ "$(passed $R/rule.txt)" = 1 ] || { echo ROUND37_DONE rejected by the rule; exit 0; }
# 4. seeds 1 and 2 of the screen: each first stage retrained here, both averages from it
for s in 1 2; do
  rm -rf runs/lodo_jaffe_yale_feat10_seed$s
  $N train --config configs/lodo_jaffe_yale_feat10_seed$s.yaml --name lodo_jaffe_yale_feat10_seed$s --quiet \
      > runs/lodo_jaffe_yale_feat10_seed$s.log 2>&1
  date
  stage2 lodo_jaffe_yale_feat10_seed$s lodo_jaffe_yale_feat10_ema_seed${s}_sfm
  stage2 lodo_jaffe_yale_feat10_seed$s lodo_jaffe_yale_feat10_ema_idrank_seed${s}_sfm
  gate runs/lodo_jaffe_yale_feat10_ema_seed${s}_sfm/checkpoints/step_00002500.safetensors \
      runs/feat10_ema_gated_seed$s.safetensors 0.012 runs/maps/neutral_shape_no_jaffe_yale.safetensors
  gate runs/lodo_jaffe_yale_feat10_ema_idrank_seed${s}_sfm/checkpoints/step_00002500.safetensors \
      runs/feat10_idrank_gated_seed$s.safetensors 0.012 runs/maps/neutral_shape_no_jaffe_yale.safetensors
  for n in jaffe yale; do
    $N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_seed$s.safetensors \
        lodo_feat10_idrank_gated=runs/feat10_idrank_gated_seed$s.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed$s/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
  CMD=""; for m in feat10_ema feat10_idrank; do for n in jaffe yale; do
    CMD="$CMD unseen:$n:$m=$R/seed$s/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
  score $R/screen_seed$s.txt $CMD
done
echo ROUND37_DONE
