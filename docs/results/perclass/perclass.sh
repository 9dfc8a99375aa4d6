#!/bin/bash
# Probe `perclass` (docs/experiments.md, "Expression directions per class (probe)"): part 1, the screen, and for a
# lead round 35's procedure (CK+ part, rule, seeds 1 and 2). Inference only; needs the chains' soup3 files under runs/
# (docs/results/push/chain_seed0.sh, docs/results/skipproj/round49.sh). ~1 h on 2 cores.
#   bash docs/results/perclass/perclass.sh
set -x
cd /work/main
PY=.venv/bin/python; N=.venv/bin/nfgan; R=docs/results/perclass; M=runs/perclass; FIT="$PY $R/fit.py"
source docs/results/choice_helpers.sh   # score, value, higher, screen_eval, screen_spec
VARIANTS=${VARIANTS:-"perclass1 perclass2 plus1"}
mkdir -p $M
date
fit() {  # fit SOURCE NAME: the tool's pooled 16 (NAME_dirs16) and each variant's directions (NAME_VARIANT)
  [ -f $M/$2_dirs16.safetensors ] || $PY tools/fit_expression_directions.py $1 $M/$2_dirs16.safetensors --k 16
  for v in $VARIANTS; do
    [ -f $M/$2_$v.safetensors ] || $FIT $1 $M/$2_$v.safetensors --mode ${v%%[0-9]*} --k ${v##*[a-z]}
  done
}
{ $FIT runs/feat10_soup3_gated_seed0.safetensors --mechanics; $FIT runs/pull_default_shipped.safetensors --mechanics; } \
    > $R/mechanics.md
# 1. part 1: the shipped default against each variant on the shipped default's weights
fit runs/pull_default_shipped.safetensors default
$PY docs/results/round47/same_outputs.py default $M/default_dirs16.safetensors | tee $R/same_outputs_default.txt
def=$($PY -c 'from nfgan.inference.generator import default_model_path as d; print(d())'); models="default=$def"
for v in $VARIANTS; do models="$models default_$v=$M/default_$v.safetensors"; done
for s in london:london64:london ckplus:ckplus_wn64:ckplus_with_neutral jaffe:jaffe64:jaffe yale:yale64:yale; do
  IFS=: read n f split <<< "$s"
  $N evaluate $models --data out/$f --splits $split --split val --calibration-split all \
      --out $R/part1/${n}_val --no-figures --quiet --kid-subsets 50
done
PASSED=""
for v in $VARIANTS; do
  $PY docs/results/push/checks.py $R/part1 default default_$v | tee $R/part1_$v.txt
  grep -q "part1 default_$v pass" $R/part1_$v.txt && PASSED="$PASSED $v"
done
echo "part 1 passed:$PASSED"
[ -n "$PASSED" ] || { date; echo PERCLASS_DONE; exit 0; }
# 2. the screen, seed 0
fit runs/feat10_soup3_gated_seed0.safetensors seed0
models="lodo_dirs16_gated=$M/seed0_dirs16.safetensors"; labels="dirs16=$R/seed0@lodo_dirs16_gated"
for v in $PASSED; do
  models="$models lodo_${v}_gated=$M/seed0_$v.safetensors"; labels="$labels $v=$R/seed0@lodo_${v}_gated"
done
screen_eval $R/seed0 $models
score $R/screen_seed0.txt $(screen_spec $labels)
$PY docs/results/push/per_class.py $R/seed0 > $R/screen_seed0_per_class.md
LEAD=$($PY -c "
line = [l for l in open('$R/screen_seed0.txt') if l.startswith('choice_score')][-1]
v = dict(kv.split('=') for kv in line.split()[1:]); base = float(v.pop('dirs16'))
best = max(v, key=lambda k: float(v[k]))
print(best if float(v[best]) > base else '')")
echo "lead: ${LEAD:-none}"
[ -n "$LEAD" ] || { date; echo PERCLASS_DONE; exit 0; }
VARIANTS=$LEAD
# 3a. the CK+ part
fit runs/feat10_soup3_gated_lodo_ckplus.safetensors lodo_ckplus
$N evaluate lodo_dirs16_gated=$M/lodo_ckplus_dirs16.safetensors lodo_${LEAD}_gated=$M/lodo_ckplus_$LEAD.safetensors \
    --data out/ckplus_wn64 --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
CC=$R/lodo_ckplus/ckplus_every_person/per_face.csv
score $R/ckplus_part.txt unseen:ckplus:dirs16=$CC@lodo_dirs16_gated unseen:ckplus:$LEAD=$CC@lodo_${LEAD}_gated
$PY docs/results/push/per_class.py $R/lodo_ckplus > $R/ckplus_part_per_class.md
PASS=$($PY -c "print(int(float('$(value $R/ckplus_part.txt $LEAD)') >= float('$(value $R/ckplus_part.txt dirs16)')))")
echo "CK+ part passed: $PASS"
[ "$PASS" = 1 ] || { date; echo PERCLASS_DONE; exit 0; }
# 3b. the rule
CMD=""
for s in london ckplus jaffe yale; do
  CMD="$CMD in:$s:dirs16=$R/part1/${s}_val/per_face.csv@default in:$s:$LEAD=$R/part1/${s}_val/per_face.csv@default_$LEAD"
done
CMD="$CMD unseen:ckplus:dirs16=$CC@lodo_dirs16_gated unseen:ckplus:$LEAD=$CC@lodo_${LEAD}_gated"
CMD="$CMD $(screen_spec dirs16=$R/seed0@lodo_dirs16_gated $LEAD=$R/seed0@lodo_${LEAD}_gated)"
score $R/rule.txt $CMD
PASS=$(higher $(value $R/rule.txt $LEAD) $(value $R/rule.txt dirs16))
echo "rule passed: $PASS"
[ "$PASS" = 1 ] || { date; echo PERCLASS_DONE; exit 0; }
# 3c. seeds 1 and 2
for s in 1 2; do
  fit runs/feat10_soup3_gated_seed$s.safetensors seed$s
  screen_eval $R/seed$s lodo_dirs16_gated=$M/seed${s}_dirs16.safetensors lodo_${LEAD}_gated=$M/seed${s}_$LEAD.safetensors
  score $R/screen_seed$s.txt $(screen_spec dirs16=$R/seed$s@lodo_dirs16_gated $LEAD=$R/seed$s@lodo_${LEAD}_gated)
  $PY docs/results/push/per_class.py $R/seed$s > $R/screen_seed${s}_per_class.md
done
$PY -c "
def v(f, k):
    line = [l for l in open(f) if l.startswith('choice_score')][-1]
    return float(dict(kv.split('=') for kv in line.split()[1:])[k])
a = (v('$R/screen_seed1.txt', '$LEAD') + v('$R/screen_seed2.txt', '$LEAD')) / 2
b = (v('$R/screen_seed1.txt', 'dirs16') + v('$R/screen_seed2.txt', 'dirs16')) / 2
print(f'seeds 1-2 mean: $LEAD {a:.2f} against dirs16 {b:.2f}: ' + ('passed' if a > b else 'failed'))" | tee $R/seeds.txt
date
echo PERCLASS_DONE
