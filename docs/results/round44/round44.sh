#!/bin/bash
# Round 44 (docs/experiments.md): weight averages of the leave-JAFFE-and-Yale-out chain's second stages (round 43's
# files), scored as round 43 against round 40's baseline file runs/feat10_ema_gated_seed0.safetensors.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round44
date
$PY tools/average_models.py runs/feat10_ema_gated_seed0.safetensors runs/feat10_turned_gated_seed0.safetensors \
    --out runs/feat10_soup_gated_seed0.safetensors
$PY tools/average_models.py runs/feat10_ema_gated_seed0.safetensors runs/feat10_turned_gated_seed0.safetensors \
    runs/feat10_turned_london_gated_seed0.safetensors --out runs/feat10_soup3_gated_seed0.safetensors
B=lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors
C=lodo_soup_gated=runs/feat10_soup_gated_seed0.safetensors; C3=lodo_soup3_gated=runs/feat10_soup3_gated_seed0.safetensors
# (a) SFM-turned faces of the validation people of CK+, JAFFE, Yale and canada (round 42d's folders), pooled
for spec in ckplus_wn64:ckplus_with_neutral jaffe64:jaffe yale64:yale canada64:canada; do
  src=${spec%%:*}; split=${spec##*:}
  $N evaluate $B $C $C3 --data out/${src}_turned --splits $split --split val --calibration-split all \
      --out $R/turned_val/$src --no-figures --quiet --kid-subsets 50
done
for m in lodo_soup_gated lodo_soup3_gated; do
  $PY docs/results/round42/pool.py $R/turned_val lodo_feat10_ema_gated $m > $R/turned_val/pooled_$m.txt
  cat $R/turned_val/pooled_$m.txt
done
# (b) London's validation people (real 3/4 photos; baseline: docs/results/round41/london_val_baseline/)
$N evaluate $C $C3 --data out/london64 --splits london --split val --calibration-split all --out $R/london_val \
    --no-figures --quiet --kid-subsets 50
# (c) the JAFFE + Yale screen against the baseline's rows of round 40
for n in jaffe yale; do
  $N evaluate $C $C3 --data out/${n}64 --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
done
for m in soup soup3; do
  CMD=""; for n in jaffe yale; do
    CMD="$CMD unseen:$n:feat10_ema=docs/results/round40/seed0/${n}_every_person/per_face.csv@lodo_feat10_ema_gated"
    CMD="$CMD unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_${m}_gated"; done
  (echo "\$ python tools/choice_score.py $CMD --bootstrap 2000"; echo; $PY tools/choice_score.py $CMD --bootstrap 2000) \
      > $R/screen_${m}_seed0.txt
  tail -2 $R/screen_${m}_seed0.txt
done
date
echo ROUND44_DONE
