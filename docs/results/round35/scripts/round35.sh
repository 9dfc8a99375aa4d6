#!/bin/bash
# Session 29: the JAFFE 2b_aug measurement (experiments: "JAFFE's 2b_aug with the default's recipe trained without
# JAFFE") and round 35 (`feat10_ema`: the default's second stage with a moving average), on one machine.
# The leave-JAFFE-and-Yale-out first stage was started by runs/fer_jaffe_lodo.sh (prepare, map, stage 1) as PID $1.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round35
while kill -0 $1 2>/dev/null; do sleep 20; done
date
stage2() {  # stage2 FIRST_STAGE_RUN CONFIG_NAME
  rm -rf runs/$2; mkdir -p runs/$2/checkpoints
  cp runs/$1/checkpoints/step_00002000.safetensors runs/$2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$2.yaml'), open('runs/$2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$2 --steps 2500 > runs/$2.log 2>&1
  date
}
same_live() {  # same_live BASELINE_CKPT CANDIDATE_CKPT: every tensor of the baseline equal in the candidate?
  $PY - "$1" "$2" <<'PYEOF'
import sys, torch
from safetensors import safe_open
a = safe_open(sys.argv[1], 'pt'); b = safe_open(sys.argv[2], 'pt')
ka, kb = set(a.keys()), set(b.keys())
same = sum(k in kb and torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in ka)
print(f'{sys.argv[2]}: {same} of {len(ka)} tensors of {sys.argv[1]} equal; only in the candidate: '
      f'{len(kb - ka)} ({sorted({k.split("/")[0] + "/" + k.split("/")[1].split(".")[0] for k in kb - ka})})')
PYEOF
}
score() {  # score OUT SPEC...
  local out=$1; shift
  CMD="python tools/choice_score.py $* --bootstrap 2000"
  (echo "\$ $CMD"; echo; $PY ${CMD#python }) > $out
  tail -2 $out
}
# 1. the baseline: the default's leave-JAFFE-and-Yale-out chain (seed 0), stage 2, with the inference step
stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_sfm
S=runs/lodo_jaffe_yale_feat10_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/feat10_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do
  $N evaluate lodo_feat10=$S lodo_feat10_gated=runs/feat10_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out runs/feat10_seed0_check/${n}_every_person --no-figures --quiet --kid-subsets 50
  cmp runs/feat10_seed0_check/${n}_every_person/per_face.csv docs/results/round32/feat10_seed0/${n}_every_person/per_face.csv && echo SAME_AS_ROUND32_$n
done
date
# 2. round 35's screen: the same chain's second stage with the average
stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_sfm
E=runs/lodo_jaffe_yale_feat10_ema_sfm/checkpoints/step_00002500.safetensors
same_live $S $E > $R/live_equal.txt
$PY tools/set_input_rule.py $E runs/feat10_ema_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
for n in jaffe yale; do
  $N evaluate lodo_feat10_ema=$E lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/feat10_ema_seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
  mkdir -p $R/feat10_seed0_here/${n}_every_person; cp runs/feat10_seed0_check/${n}_every_person/* $R/feat10_seed0_here/${n}_every_person/
done
B=$R/feat10_seed0_here; C=$R/feat10_ema_seed0
score $R/screen_seed0.txt unseen:jaffe:feat10=$B/jaffe_every_person/per_face.csv@lodo_feat10_gated \
  unseen:yale:feat10=$B/yale_every_person/per_face.csv@lodo_feat10_gated \
  unseen:jaffe:feat10_ema=$C/jaffe_every_person/per_face.csv@lodo_feat10_ema_gated \
  unseen:yale:feat10_ema=$C/yale_every_person/per_face.csv@lodo_feat10_ema_gated
score $R/screen_seed0_ungated.txt unseen:jaffe:feat10=$B/jaffe_every_person/per_face.csv@lodo_feat10 \
  unseen:yale:feat10=$B/yale_every_person/per_face.csv@lodo_feat10 \
  unseen:jaffe:feat10_ema=$C/jaffe_every_person/per_face.csv@lodo_feat10_ema \
  unseen:yale:feat10_ema=$C/yale_every_person/per_face.csv@lodo_feat10_ema
date
echo SCREEN_DONE
PASS=$($PY -c "
line = [l for l in open('$R/screen_seed0.txt') if l.startswith('choice_score')][-1]
d = dict(kv.split('=') for kv in line.split()[1:]); print(int(float(d['feat10_ema']) > float(d['feat10'])))")
echo "screen passed: $PASS"
if [ "$PASS" = 1 ]; then
  # 3. the CK+ part: the leave-CK+-out chain (first stage retrained on this machine kind, session 28)
  stage2 lodo_ckplus_feat10 lodo_ckplus_feat10_ema_sfm
  SC=runs/lodo_ckplus_feat10_sfm/checkpoints/step_00002500.safetensors
  EC=runs/lodo_ckplus_feat10_ema_sfm/checkpoints/step_00002500.safetensors
  same_live $SC $EC >> $R/live_equal.txt
  $PY tools/set_input_rule.py $EC runs/feat10_ema_gated_lodo_ckplus.safetensors --neutralize-mode warp_frame \
      --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
  $N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
      --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
      --out $R/feat10_ema_lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
  mkdir -p $R/feat10_lodo_ckplus_here/ckplus_every_person
  cp runs/feat10_lodo_ckplus_check/ckplus_every_person/* $R/feat10_lodo_ckplus_here/ckplus_every_person/
  score $R/ckplus_part.txt unseen:ckplus:feat10=$R/feat10_lodo_ckplus_here/ckplus_every_person/per_face.csv@lodo_feat10_gated \
    unseen:ckplus:feat10_ema=$R/feat10_ema_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated
  # 4. round 8's rule: the five-set chain (first stage retrained on this machine kind, session 28), validation people
  stage2 all_data_feat10 all_data_feat10_ema_sfm
  SA=runs/all_data_feat10_sfm/checkpoints/step_00002500.safetensors
  EA=runs/all_data_feat10_ema_sfm/checkpoints/step_00002500.safetensors
  same_live $SA $EA >> $R/live_equal.txt
  $PY tools/set_input_rule.py $EA runs/feat10_ema_gated_all_data.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
  $PY benchmarks/generalisation.py feat10_gated=runs/feat10_gated_all_data.safetensors \
      feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors --split val \
      --sets london,ckplus,jaffe,yale --out $R/all_data_val
  CMD=""
  for s in london ckplus jaffe yale; do CMD="$CMD in:$s:feat10=$R/all_data_val/${s}_val/per_face.csv@feat10_gated in:$s:feat10_ema=$R/all_data_val/${s}_val/per_face.csv@feat10_ema_gated"; done
  CMD="$CMD unseen:ckplus:feat10=$R/feat10_lodo_ckplus_here/ckplus_every_person/per_face.csv@lodo_feat10_gated unseen:ckplus:feat10_ema=$R/feat10_ema_lodo_ckplus/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated"
  for s in jaffe yale; do CMD="$CMD unseen:$s:feat10=$B/${s}_every_person/per_face.csv@lodo_feat10_gated unseen:$s:feat10_ema=$C/${s}_every_person/per_face.csv@lodo_feat10_ema_gated"; done
  score $R/rule.txt $CMD
  date
fi
echo ROUND35_DONE
