#!/bin/bash
# `K` 64 with the corrected directions (docs/experiments.md, "Training with the expression directions taken out
# (probe)", follow-up): part 1 (the shipped default against its weights with 64 directions), then, if it passes,
# round 35's procedure as probe perclass's script runs it (the seed-0 screen is trainproj's, already scored), all
# inference. ~30 min on 2 cores.
set -x
cd /work/main
PY=.venv/bin/python; N=.venv/bin/nfgan; R=docs/results/perclass/k64; M=runs/perclass; V=dirs64
source docs/results/choice_helpers.sh   # score, value, higher, screen_eval, screen_spec
mkdir -p $R
date
fit() {  # fit SOURCE NAME: the tool's pooled 16 and 64 directions
  for k in 16 64; do
    [ -f $M/$2_dirs$k.safetensors ] || $PY tools/fit_expression_directions.py $1 $M/$2_dirs$k.safetensors --k $k
  done
}
fit runs/pull_default_shipped.safetensors default
def=$($PY -c 'from nfgan.inference.generator import default_model_path as d; print(d())')
for s in london:london64:london ckplus:ckplus_wn64:ckplus_with_neutral jaffe:jaffe64:jaffe yale:yale64:yale; do
  IFS=: read n f split <<< "$s"
  $N evaluate default=$def default_$V=$M/default_$V.safetensors --data out/$f --splits $split --split val \
      --calibration-split all --out $R/part1/${n}_val --no-figures --quiet --kid-subsets 50
done
$PY docs/results/push/checks.py $R/part1 default default_$V | tee $R/part1_$V.txt
grep -q "part1 default_$V pass" $R/part1_$V.txt || { date; echo K64_DONE; exit 0; }
# the CK+ part
fit runs/feat10_soup3_gated_lodo_ckplus.safetensors lodo_ckplus
$N evaluate lodo_dirs16_gated=$M/lodo_ckplus_dirs16.safetensors lodo_${V}_gated=$M/lodo_ckplus_$V.safetensors \
    --data out/ckplus_wn64 --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/lodo_ckplus/ckplus_every_person --no-figures --quiet --kid-subsets 50
CC=$R/lodo_ckplus/ckplus_every_person/per_face.csv
score $R/ckplus_part.txt unseen:ckplus:dirs16=$CC@lodo_dirs16_gated unseen:ckplus:$V=$CC@lodo_${V}_gated
$PY docs/results/push/per_class.py $R/lodo_ckplus > $R/ckplus_part_per_class.md
PASS=$($PY -c "print(int(float('$(value $R/ckplus_part.txt $V)') >= float('$(value $R/ckplus_part.txt dirs16)')))")
echo "CK+ part passed: $PASS"
[ "$PASS" = 1 ] || { date; echo K64_DONE; exit 0; }
# the rule (seed-0 screen: trainproj's run, the same files)
T=docs/results/trainproj/seed0_tp64
CMD=""
for s in london ckplus jaffe yale; do
  CMD="$CMD in:$s:dirs16=$R/part1/${s}_val/per_face.csv@default in:$s:$V=$R/part1/${s}_val/per_face.csv@default_$V"
done
CMD="$CMD unseen:ckplus:dirs16=$CC@lodo_dirs16_gated unseen:ckplus:$V=$CC@lodo_${V}_gated"
CMD="$CMD $(screen_spec dirs16=$T@lodo_dirs16_gated $V=$T@lodo_${V}_gated)"
score $R/rule.txt $CMD
PASS=$(higher $(value $R/rule.txt $V) $(value $R/rule.txt dirs16))
echo "rule passed: $PASS"
[ "$PASS" = 1 ] || { date; echo K64_DONE; exit 0; }
for s in 1 2; do
  fit runs/feat10_soup3_gated_seed$s.safetensors seed$s
  screen_eval $R/seed$s lodo_dirs16_gated=$M/seed${s}_dirs16.safetensors lodo_${V}_gated=$M/seed${s}_$V.safetensors
  score $R/screen_seed$s.txt $(screen_spec dirs16=$R/seed$s@lodo_dirs16_gated $V=$R/seed$s@lodo_${V}_gated)
  $PY docs/results/push/per_class.py $R/seed$s > $R/screen_seed${s}_per_class.md
done
$PY -c "
def v(f, k):
    line = [l for l in open(f) if l.startswith('choice_score')][-1]
    return float(dict(kv.split('=') for kv in line.split()[1:])[k])
a = (v('$R/screen_seed1.txt', '$V') + v('$R/screen_seed2.txt', '$V')) / 2
b = (v('$R/screen_seed1.txt', 'dirs16') + v('$R/screen_seed2.txt', 'dirs16')) / 2
print(f'seeds 1-2 mean: $V {a:.2f} against dirs16 {b:.2f}: ' + ('passed' if a > b else 'failed'))" | tee $R/seeds.txt
date
echo K64_DONE
