#!/bin/bash
# Round 38, second candidate `twopass_mouth` (docs/experiments.md): the second pass kept inside the mouth and brow
# regions only; the screen, then the CK+ part if the screen passes.
set -x
cd /work/main
PY=.venv/bin/python
R=docs/results/round38
date
for n in jaffe yale; do
  $PY $R/probe.py --mouth lodo_feat10_twopass_mouth_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
      --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0_mouth/${n}_every_person --no-figures --quiet --kid-subsets 50
done
B=docs/results/round37/seed0
CMD="python tools/choice_score.py"
for n in jaffe yale; do CMD="$CMD unseen:$n:feat10_ema=$B/${n}_every_person/per_face.csv@lodo_feat10_ema_gated"; done
for n in jaffe yale; do CMD="$CMD unseen:$n:feat10_twopass_mouth=$R/seed0_mouth/${n}_every_person/per_face.csv@lodo_feat10_twopass_mouth_gated"; done
(echo "\$ $CMD --bootstrap 2000"; echo; $PY ${CMD#python } --bootstrap 2000) > $R/screen_mouth_seed0.txt
tail -2 $R/screen_mouth_seed0.txt
PASS=$($PY -c "
line = [l for l in open('$R/screen_mouth_seed0.txt') if l.startswith('choice_score')][-1]
d = dict(kv.split('=') for kv in line.split()[1:]); print(int(float(d['feat10_twopass_mouth']) > float(d['feat10_ema'])))")
echo "screen passed: $PASS"
[ "$PASS" = 1 ] || { echo ROUND38B_DONE rejected at the screen; exit 0; }
$PY $R/probe.py --mouth lodo_feat10_twopass_mouth_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus_mouth/ckplus_every_person --no-figures --quiet --kid-subsets 50
CMD="python tools/choice_score.py unseen:ckplus:feat10_ema=docs/results/round35/feat10_ema_lodo_ckplus_epyc/ckplus_every_person/per_face.csv@lodo_feat10_ema_gated"
CMD="$CMD unseen:ckplus:feat10_twopass_mouth=$R/lodo_ckplus_mouth/ckplus_every_person/per_face.csv@lodo_feat10_twopass_mouth_gated"
(echo "\$ $CMD --bootstrap 2000"; echo; $PY ${CMD#python } --bootstrap 2000) > $R/ckplus_part_mouth.txt
tail -2 $R/ckplus_part_mouth.txt
date
echo ROUND38B_DONE
