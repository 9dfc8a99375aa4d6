#!/bin/bash
# Round 48 (docs/experiments.md): round 47's identity pull on `cc_by` (the model trained on CC BY data only), under
# round 47's three conditions. Inference only; stops at the first condition that fails; no test person is scored.
# cc_by never saw CK+, JAFFE or Yale, so the shipped file itself is the "unseen" model of condition 3.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round48; C=docs/results/round47/checks.py
mkdir -p $R
date
passed() { grep -q "round47 $1 pass" $R/$1.txt; }
$PY tools/set_input_rule.py cc_by runs/cc_by_pull.safetensors --identity-pull
# 1. London's validation people
$PY benchmarks/generalisation.py cc_by=cc_by cc_by_pull=runs/cc_by_pull.safetensors --split val --sets london --out $R/london
$PY $C $R/london cc_by cc_by_pull --part london --min-rise 5 --faces 1 > $R/london.txt
$PY - >> $R/london.txt <<PYEOF
import csv
rows = [r for r in csv.DictReader(open('$R/london/london_val/per_face.csv')) if r['view'] == 'frontal']
a = {r['input_id']: r for r in rows if r['model'] == 'cc_by'}
b = {r['input_id']: r for r in rows if r['model'] == 'cc_by_pull'}
cols = [c for c in rows[0] if c not in ('model',)]
same = all(a[k][c] == b[k][c] for k in a for c in cols)
print(f'{len(a)} frontal London validation inputs; every per-face number equal: {same}')
if not same:
    print('round47 london fail (frontal outputs differ)')
PYEOF
cat $R/london.txt
grep -q "fail" $R/london.txt && { echo ROUND48_DONE; exit 0; }
# 2. the other sets' SFM-turned validation faces, pooled
$PY benchmarks/generalisation.py cc_by=cc_by cc_by_pull=runs/cc_by_pull.safetensors --split val --turned \
    --sets ckplus_turned,jaffe_turned,yale_turned,canada_turned --out $R/turned_val
$PY $C $R/turned_val cc_by cc_by_pull --part turned_val > $R/turned_val.txt
$PY docs/results/round42/pool.py $R/turned_val cc_by cc_by_pull >> $R/turned_val.txt
cat $R/turned_val.txt
passed turned_val || { echo ROUND48_DONE; exit 0; }
date
# 3. people cc_by never saw: the SFM-turned faces of every CK+, JAFFE and Yale person outside the test splits
for s in jaffe:jaffe64_turned:docs/results/lodo_jaffe_yale/jaffe_every_person.json \
         yale:yale64_turned:docs/results/lodo_jaffe_yale/yale_every_person.json \
         ckplus:ckplus_wn64_turned:docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json; do
  IFS=: read n folder splits <<< "$s"
  $N evaluate cc_by=cc_by cc_by_pull=runs/cc_by_pull.safetensors --data out/$folder --splits $splits --split test \
      --out $R/unseen/${n}_turned_every_person --no-figures --quiet --kid-subsets 50
done
$PY $C $R/unseen cc_by cc_by_pull --part unseen > $R/unseen.txt
$PY docs/results/round42/pool.py $R/unseen cc_by cc_by_pull >> $R/unseen.txt
cat $R/unseen.txt
date
echo ROUND48_DONE
