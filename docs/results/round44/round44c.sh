#!/bin/bash
# Round 44's seeds (docs/experiments.md): the screen of `soup3` on the leave-JAFFE-and-Yale-out chains of seeds 1 and
# 2. Each first stage is retrained here (~35 min on 2 cores), then its three second stages (~9 min each): the
# baseline `feat10_ema`, `turned` and `turned_london`; `soup3` is their equal average. ~1 h per seed.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round44
for s in ${SEEDS:-1 2}; do
  date
  F=lodo_jaffe_yale_feat10_seed$s
  [ -f runs/$F/checkpoints/step_00002000.safetensors ] || {
    rm -rf runs/$F; $N train --config configs/$F.yaml --name $F --quiet > runs/$F.log 2>&1; }
  for c in ema ema_turned ema_turned_london; do
    S2=lodo_jaffe_yale_feat10_${c}_seed${s}_sfm
    rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
    cp runs/$F/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
    $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
    $N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
    $PY tools/set_input_rule.py runs/$S2/checkpoints/step_00002500.safetensors runs/feat10_${c}_gated_seed$s.safetensors \
        --neutralize-mode warp_frame --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
    date
  done
  $PY tools/average_models.py runs/feat10_ema_gated_seed$s.safetensors runs/feat10_ema_turned_gated_seed$s.safetensors \
      runs/feat10_ema_turned_london_gated_seed$s.safetensors --out runs/feat10_soup3_gated_seed$s.safetensors
  for n in jaffe yale; do
    $N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_seed$s.safetensors \
        lodo_soup3_gated=runs/feat10_soup3_gated_seed$s.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed$s/${n}_every_person --no-figures --quiet --kid-subsets 50
    # the baseline retrained here against round 35's file of the same seed (another machine kind gives another draw)
    cmp <(grep ^lodo_feat10_ema_gated, $R/seed$s/${n}_every_person/per_face.csv) \
        <(grep ^lodo_feat10_ema_gated, docs/results/round35/seed$s/${n}_every_person/per_face.csv) \
        && echo "seed $s $n: baseline rows equal to round 35's"
  done
  CMD="python tools/choice_score.py"
  for m in feat10_ema soup3; do for n in jaffe yale; do
    CMD="$CMD unseen:$n:$m=$R/seed$s/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
  (echo "\$ $CMD --bootstrap 2000"; echo; $PY ${CMD#python } --bootstrap 2000) > $R/screen_soup3_seed$s.txt
  tail -2 $R/screen_soup3_seed$s.txt
  date
done
echo ROUND44C_DONE
