#!/bin/bash
# Round 46 (docs/experiments.md): the probe's `tto5_critic` (inference only: 5 Adam steps on the generator's deepest
# maps towards dlib's reading of the input photo, guarded by nfgan's expression critic) on the default's chains,
# through round 35's procedure. Every model file exists (round 44's soup3 chains); nothing is trained but the two
# critics that never saw the left-out sets. Stops at the first condition that fails. No test person is scored.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results/round46; P=docs/results/tto/probe.py
mkdir -p $R
date
source docs/results/choice_helpers.sh   # score, value, higher
# critics that never saw the left-out sets (the shipped one learned every set's training people)
[ -f runs/critic_no_jaffe_yale.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
    canada=out/canada64:canada ckplus=out/ckplus_wn64:ckplus_with_neutral \
    --out runs/critic_no_jaffe_yale.safetensors --report $R/critic_no_jaffe_yale
[ -f runs/critic_no_ckplus.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
    canada=out/canada64:canada jaffe=out/jaffe64:jaffe yale=out/yale64:yale \
    --out runs/critic_no_ckplus.safetensors --report $R/critic_no_ckplus
date
screen() {  # screen SEED: the leave-JAFFE-and-Yale-out soup3 of that seed, plain and with the pull
  cp runs/feat10_soup3_gated_seed$1.safetensors runs/soup3_seed$1_tto5_critic.safetensors
  for n in jaffe yale; do
    [ -f $R/seed$1/${n}_every_person/per_face.csv ] || $PY $P evaluate --critic runs/critic_no_jaffe_yale.safetensors \
        lodo_soup3_gated=runs/feat10_soup3_gated_seed$1.safetensors \
        lodo_tto5_critic_gated=runs/soup3_seed$1_tto5_critic.safetensors --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed$1/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
  local spec="" m n
  for m in soup3 tto5_critic; do for n in jaffe yale; do
    spec="$spec unseen:$n:$m=$R/seed$1/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
  score $R/screen_seed$1.txt $spec
  date
}
# 1. screen, seed 0
screen 0
[ "$(higher $(value $R/screen_seed0.txt tto5_critic) $(value $R/screen_seed0.txt soup3))" = 1 ] || { echo ROUND46_DONE; exit 0; }
# 2. CK+ part: every CK+ person outside the test split, the leave-CK+-out soup3
cp runs/feat10_soup3_gated_lodo_ckplus.safetensors runs/soup3_lodo_ckplus_tto5_critic.safetensors
[ -f $R/lodo_ckplus/ckplus_every_person/per_face.csv ] || $PY $P evaluate --critic runs/critic_no_ckplus.safetensors \
    lodo_soup3_gated=runs/feat10_soup3_gated_lodo_ckplus.safetensors \
    lodo_tto5_critic_gated=runs/soup3_lodo_ckplus_tto5_critic.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
CC=$R/lodo_ckplus/ckplus_every_person/per_face.csv
score $R/ckplus_part.txt unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:tto5_critic=$CC@lodo_tto5_critic_gated
[ "$(higher $(value $R/ckplus_part.txt soup3) $(value $R/ckplus_part.txt tto5_critic))" = 0 ] || { echo ROUND46_DONE; exit 0; }
date
# 3. the rule: the shipped default (the five-set soup3) on the validation people (the probe's evaluations, shipped
# critic) plus the three unseen parts
V=docs/results/tto/probe
SPEC=""
for n in london ckplus jaffe yale; do
  SPEC="$SPEC in:$n:soup3=$V/${n}_val/per_face.csv@default in:$n:tto5_critic=$V/${n}_val/per_face.csv@default_tto5_critic"
done
SPEC="$SPEC unseen:ckplus:soup3=$CC@lodo_soup3_gated unseen:ckplus:tto5_critic=$CC@lodo_tto5_critic_gated"
for n in jaffe yale; do
  SPEC="$SPEC unseen:$n:soup3=$R/seed0/${n}_every_person/per_face.csv@lodo_soup3_gated"
  SPEC="$SPEC unseen:$n:tto5_critic=$R/seed0/${n}_every_person/per_face.csv@lodo_tto5_critic_gated"
done
score $R/rule.txt $SPEC
# London's validation 3/4 photos (faceres mean of gt pass and rank-1) and rank-1 among every person, pooled over
# the unseen people (faceres)
$PY - > $R/checks.txt <<PYEOF
import csv
def rows(path, model, view=None):
    return [r for r in csv.DictReader(open(path)) if r['model'] == model and (view is None or r['view'] == view)]
def mean(rs, *cols):
    return round(100 * sum(float(r[c]) for r in rs for c in cols) / (len(cols) * len(rs)), 2)
lv = '$V/london_val/per_face.csv'
for m in ('default', 'default_tto5_critic'):
    print('london val 3/4 faceres mean of gt pass and rank-1', m, mean(rows(lv, m, '3/4'), 'id_gt_pass_faceres', 'rank1_faceres'))
unseen = ['$CC', '$R/seed0/jaffe_every_person/per_face.csv', '$R/seed0/yale_every_person/per_face.csv']
for m in ('lodo_soup3_gated', 'lodo_tto5_critic_gated'):
    rs = [r for p in unseen for r in rows(p, m)]
    print('unseen people rank-1 among every person faceres', m, len(rs), mean(rs, 'rank1_every_faceres'))
PYEOF
cat $R/checks.txt
date
# 4. seeds 1 and 2 of the screen (their first stages were retrained in round 44c), whatever the rule gives
screen 1
screen 2
echo ROUND46_DONE
