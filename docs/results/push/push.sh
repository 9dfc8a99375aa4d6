#!/bin/bash
# Probe `push` (docs/experiments.md, "Pushing frontal outputs towards neutral at inference (probe)").
#   bash docs/results/push/push.sh 1   # part 1: validation people, the shipped default and critic (~5 min alone)
#   bash docs/results/push/push.sh 2   # part 2: the screen (needs docs/results/push/chain_seed0.sh's files)
# As run: part 1, then `push5_region`'s part 1 (PART1_REGION=1 bash docs/results/push/push.sh 1 runs only that),
# then VARIANTS="push5 push5_anchor push5_region" bash docs/results/push/push.sh 2 (a measurement: no lead).
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results/push; P=$R/probe.py
source docs/results/choice_helpers.sh   # score, value, higher
date
if [ "$1" = 1 ] && [ -z "$PART1_REGION" ]; then
  $PY $P --sets london,ckplus,jaffe,yale
  for v in push5 push5_anchor; do $PY $R/checks.py $R/probe default default_$v | tee $R/part1_$v.txt; done
fi
if [ "$1" = 1 ] && [ -n "$PART1_REGION" ]; then
  $PY $P --sets london,ckplus,jaffe,yale --variants push5_region --out $R/probe_region
  $PY $R/checks.py $R/probe_region default default_push5_region | tee $R/part1_push5_region.txt
fi
if [ "$1" = 2 ]; then
  [ -f runs/critic_no_jaffe_yale.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
      canada=out/canada64:canada ckplus=out/ckplus_wn64:ckplus_with_neutral \
      --out runs/critic_no_jaffe_yale.safetensors --report $R/critic_no_jaffe_yale
  date
  models="lodo_soup3_gated=runs/feat10_soup3_gated_seed0.safetensors"
  for v in ${VARIANTS:-push5 push5_anchor}; do
    cp runs/feat10_soup3_gated_seed0.safetensors runs/soup3_seed0_$v.safetensors
    models="$models lodo_${v}_gated=runs/soup3_seed0_$v.safetensors"
  done
  for n in jaffe yale; do
    $PY $P evaluate --critic runs/critic_no_jaffe_yale.safetensors $models --data out/${n}64 \
        --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $R/seed0/${n}_every_person --no-figures --quiet --kid-subsets 50
    # the chain trained again here against round 44's file of the same seed (the columns both files have)
    $PY - $R/seed0/${n}_every_person/per_face.csv docs/results/round44/seed0/${n}_every_person/per_face.csv <<'PYEOF'
import csv, sys
a, b = ([r for r in csv.DictReader(open(f)) if r["model"] == "lodo_soup3_gated"] for f in sys.argv[1:3])
cols = [c for c in b[0] if c in a[0]]
same = len(a) == len(b) and all(x[c] == y[c] for x, y in zip(a, b) for c in cols)
print(sys.argv[1], "plain soup3 rows", "equal to" if same else "differ from", "round 44's on", len(cols), "columns")
PYEOF
  done
  spec=""
  for m in soup3 ${VARIANTS:-push5 push5_anchor}; do for n in jaffe yale; do
    spec="$spec unseen:$n:$m=$R/seed0/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
  score $R/screen_seed0.txt $spec
  $PY $R/per_class.py $R/seed0 > $R/screen_per_class.md
  cat $R/screen_per_class.md
fi
date
echo PUSH_PART$1_DONE
