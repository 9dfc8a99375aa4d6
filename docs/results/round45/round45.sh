#!/bin/bash
# Round 45 (docs/experiments.md): `soup4`, the equal weight average of `soup3`'s three second stages and round 40's
# `feat10_idjitter` second stage (the same first stage in every chain), against `soup3` (the default's recipe), by
# round 35's procedure; each step runs only if the one before passed.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round45; R44=docs/results/round44
date
stage2() {  # stage2 FIRST_STAGE_RUN CONFIG_NAME
  [ -f runs/$2/checkpoints/step_00002500.safetensors ] && return
  rm -rf runs/$2; mkdir -p runs/$2/checkpoints
  cp runs/$1/checkpoints/step_00002000.safetensors runs/$2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$2.yaml'), open('runs/$2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$2 --steps 2500 --quiet > runs/$2.log 2>&1
  date
}
source docs/results/choice_helpers.sh   # score, value (the same functions, shared since round 46)
london34() {  # london34 PER_FACE MODEL: faceres mean of gt pass and rank-1 over London's 3/4 inputs
  $PY -c "
import csv
rows = [r for r in csv.DictReader(open('$1')) if r['view'] == '3/4' and r['model'] == '$2']
print(round(100 * sum(float(r['id_gt_pass_faceres']) + float(r['rank1_faceres']) for r in rows) / (2 * len(rows)), 2))"
}
atleast() { $PY -c "print(int(float('$1') >= float('$2')))"; }
above() { $PY -c "print(int(float('$1') > float('$2')))"; }
screen() {  # screen SEED SOUP3_DIR: score soup4 of this seed against soup3's rows of the same chain
  for n in jaffe yale; do
    $N evaluate lodo_soup4_gated=runs/feat10_soup4_gated_seed$1.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed$1/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
  CMD=""
  for n in jaffe yale; do
    CMD="$CMD unseen:$n:soup3=$2/${n}_every_person/per_face.csv@lodo_soup3_gated"
    CMD="$CMD unseen:$n:soup4=$R/seed$1/${n}_every_person/per_face.csv@lodo_soup4_gated"
  done
  score $R/screen_seed$1.txt $CMD
}

# 1. the screen, seed 0 (inference only), and London's validation 3/4 photos (nothing lost)
$PY tools/average_models.py runs/feat10_ema_gated_seed0.safetensors runs/feat10_turned_gated_seed0.safetensors \
    runs/feat10_turned_london_gated_seed0.safetensors runs/feat10_idjitter_gated_seed0.safetensors \
    --out runs/feat10_soup4_gated_seed0.safetensors
screen 0 $R44/seed0
$N evaluate lodo_soup4_gated=runs/feat10_soup4_gated_seed0.safetensors --data out/london64 --splits london --split val \
    --calibration-split all --out $R/london_val --no-figures --quiet --kid-subsets 50
L3=$(london34 $R44/london_val/per_face.csv lodo_soup3_gated); L4=$(london34 $R/london_val/per_face.csv lodo_soup4_gated)
echo "London val 3/4 faceres mean (seed-0 chain): soup3 $L3, soup4 $L4" | tee $R/london_val_34.txt
P1=$(above $(value $R/screen_seed0.txt soup4) $(value $R/screen_seed0.txt soup3)); P2=$(atleast $L4 $L3)
echo "screen passed: $P1, London kept: $P2"
[ "$P1$P2" = 11 ] || { echo ROUND45_DONE rejected at step 1; exit 0; }

# 2. the CK+ part (inference only): not below soup3's
$PY tools/average_models.py runs/feat10_ema_gated_lodo_ckplus.safetensors runs/feat10_turned_gated_lodo_ckplus.safetensors \
    runs/feat10_turned_london_gated_lodo_ckplus.safetensors runs/feat10_idjitter_gated_lodo_ckplus.safetensors \
    --out runs/feat10_soup4_gated_lodo_ckplus.safetensors
$N evaluate lodo_soup4_gated=runs/feat10_soup4_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
score $R/ckplus_part.txt unseen:ckplus:soup3=$R44/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup3_gated \
    unseen:ckplus:soup4=$R/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_soup4_gated
P=$(atleast $(value $R/ckplus_part.txt soup4) $(value $R/ckplus_part.txt soup3)); echo "CK+ part held: $P"
[ "$P" = 1 ] || { echo ROUND45_DONE rejected at the CK+ part; exit 0; }

# 3. round 8's rule on the five-set chain (its fourth second stage trained here): higher, and London's 3/4 kept
stage2 all_data_feat10 all_data_feat10_ema_idjitter_sfm
$PY tools/set_input_rule.py runs/all_data_feat10_ema_idjitter_sfm/checkpoints/step_00002500.safetensors \
    runs/feat10_idjitter_gated_all_data.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
$PY tools/average_models.py runs/feat10_ema_gated_all_data.safetensors runs/feat10_ema_turned_gated_all_data.safetensors \
    runs/feat10_ema_turned_london_gated_all_data.safetensors runs/feat10_idjitter_gated_all_data.safetensors \
    --out runs/feat10_soup4_gated_all_data.safetensors
$PY benchmarks/generalisation.py soup4_gated=runs/feat10_soup4_gated_all_data.safetensors --split val \
    --sets london,ckplus,jaffe,yale --out $R/all_data_val
CMD=""
for m in soup3 soup4; do
  [ $m = soup3 ] && D=$R44 || D=$R
  for s in london ckplus jaffe yale; do CMD="$CMD in:$s:$m=$D/all_data_val/${s}_val/per_face.csv@${m}_gated"; done
  CMD="$CMD unseen:ckplus:$m=$D/lodo_ckplus/ckplus_every_person/per_face.csv@lodo_${m}_gated"
  for n in jaffe yale; do CMD="$CMD unseen:$n:$m=$D/seed0/${n}_every_person/per_face.csv@lodo_${m}_gated"; done
done
score $R/rule.txt $CMD
L3=$(london34 $R44/all_data_val/london_val/per_face.csv soup3_gated); L4=$(london34 $R/all_data_val/london_val/per_face.csv soup4_gated)
echo "five-set London val 3/4 faceres mean: soup3 $L3, soup4 $L4" | tee $R/london_val_34_all_data.txt
P1=$(above $(value $R/rule.txt soup4) $(value $R/rule.txt soup3)); P2=$(atleast $L4 $L3)
echo "rule passed: $P1, London kept: $P2"
[ "$P1$P2" = 11 ] || { echo ROUND45_DONE rejected at the rule; exit 0; }

# 4. seeds 1 and 2 of the screen (their fourth second stages trained here): mean above soup3's
for s in 1 2; do
  stage2 lodo_jaffe_yale_feat10_seed$s lodo_jaffe_yale_feat10_ema_idjitter_seed${s}_sfm
  $PY tools/set_input_rule.py runs/lodo_jaffe_yale_feat10_ema_idjitter_seed${s}_sfm/checkpoints/step_00002500.safetensors \
      runs/feat10_ema_idjitter_gated_seed$s.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.012 \
      --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
  $PY tools/average_models.py runs/feat10_ema_gated_seed$s.safetensors runs/feat10_ema_turned_gated_seed$s.safetensors \
      runs/feat10_ema_turned_london_gated_seed$s.safetensors runs/feat10_ema_idjitter_gated_seed$s.safetensors \
      --out runs/feat10_soup4_gated_seed$s.safetensors
  screen $s $R44/seed$s
done
$PY -c "
v = lambda f, m: float(dict(kv.split('=') for kv in [l for l in open(f) if l.startswith('choice_score')][-1].split()[1:])[m])
a = [v('$R/screen_seed%d.txt' % s, 'soup3') for s in (1, 2)]; b = [v('$R/screen_seed%d.txt' % s, 'soup4') for s in (1, 2)]
print('seeds 1-2 mean: soup3 %.2f, soup4 %.2f, passed: %d' % (sum(a) / 2, sum(b) / 2, sum(b) > sum(a)))" | tee $R/seeds.txt
date
echo ROUND45_DONE
