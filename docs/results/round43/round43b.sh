#!/bin/bash
# Round 43b (docs/experiments.md): round 43 with rendered turns of London's training people too
# (configs/lodo_jaffe_yale_feat10_ema_turned_london_sfm.yaml), against round 40's baseline file
# runs/feat10_ema_gated_seed0.safetensors.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round43/turned_london
date
[ -d out/london64_turned ] || $N synth-expressions out/london64 out/london64_turned --sfm ../shared/models/sfm --yaw 15 40 \
    --expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3 --quiet
S2=lodo_jaffe_yale_feat10_ema_turned_london_sfm
rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
cp runs/lodo_jaffe_yale_feat10/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
date
$PY tools/set_input_rule.py runs/$S2/checkpoints/step_00002500.safetensors runs/feat10_turned_london_gated_seed0.safetensors \
    --neutralize-mode warp_frame --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
B=lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors; C=lodo_turned_london_gated=runs/feat10_turned_london_gated_seed0.safetensors
# (a) SFM-turned faces of the validation people of CK+, JAFFE, Yale and canada (round 42d's folders), pooled
for spec in ckplus_wn64:ckplus_with_neutral jaffe64:jaffe yale64:yale canada64:canada; do
  src=${spec%%:*}; split=${spec##*:}
  $N evaluate $B $C --data out/${src}_turned --splits $split --split val --calibration-split all \
      --out $R/turned_val/$src --no-figures --quiet --kid-subsets 50
done
$PY docs/results/round42/pool.py $R/turned_val lodo_feat10_ema_gated lodo_turned_london_gated > $R/turned_val/pooled.txt
cat $R/turned_val/pooled.txt
# (b) London's validation people (real 3/4 photos; baseline: docs/results/round41/london_val_baseline/)
$N evaluate $C --data out/london64 --splits london --split val --calibration-split all --out $R/london_val \
    --no-figures --quiet --kid-subsets 50
# (c) the JAFFE + Yale screen against the baseline's rows of round 40
for n in jaffe yale; do
  $N evaluate $C --data out/${n}64 --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
done
CMD=""; for n in jaffe yale; do
  CMD="$CMD unseen:$n:feat10_ema=docs/results/round40/seed0/${n}_every_person/per_face.csv@lodo_feat10_ema_gated"
  CMD="$CMD unseen:$n:turned_london=$R/seed0/${n}_every_person/per_face.csv@lodo_turned_london_gated"; done
(echo "\$ python tools/choice_score.py $CMD --bootstrap 2000"; echo; $PY tools/choice_score.py $CMD --bootstrap 2000) \
    > $R/screen_seed0.txt
tail -2 $R/screen_seed0.txt
date
echo ROUND43_DONE
