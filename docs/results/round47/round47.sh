#!/bin/bash
# Round 47 (docs/experiments.md): the identity pull (5 steps, no critic) on turned inputs only, as a package option
# (tools/set_input_rule.py --identity-pull). Inference only. Stops at the first condition that fails. No test person
# is scored here.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/round47
mkdir -p $R
date
passed() { grep -q "round47 $1 pass" $R/$1.txt; }
# the candidate files: the shipped default and round 44's leave-out soup3 files with the pull recorded
$PY tools/set_input_rule.py default runs/default_pull.safetensors --identity-pull
$PY tools/set_input_rule.py runs/feat10_soup3_gated_seed0.safetensors runs/soup3_seed0_pull.safetensors --identity-pull
$PY tools/set_input_rule.py runs/feat10_soup3_gated_lodo_ckplus.safetensors runs/soup3_lodo_ckplus_pull.safetensors \
    --identity-pull
# 1. London's validation people: 3/4 photos +5, neutral at most one face lost; frontal outputs byte for byte
$PY benchmarks/generalisation.py default=default pull=runs/default_pull.safetensors --split val --sets london --out $R/london
$PY - > $R/london_frontal.txt <<PYEOF
import numpy as np
from nfgan.data.dataset import PreparedDataset
from nfgan.data.pairs import load_splits
from nfgan.inference import load_model
ds = PreparedDataset('out/london64')
rows = ds.indices(load_splits('london')['val'], pose='frontal')
poses = list(np.asarray(ds.column('pose'), dtype=object)[rows])
a, b = (load_model(m).normalize(ds.images[rows], poses, landmarks=ds.landmarks[rows])
        for m in ('default', 'runs/default_pull.safetensors'))
print(f'{len(rows)} frontal London validation inputs; outputs equal byte for byte:', np.array_equal(a, b))
PYEOF
cat $R/london_frontal.txt
$PY $R/checks.py $R/london default pull --part london --min-rise 5 --faces 1 > $R/london.txt
grep -q "equal byte for byte: True" $R/london_frontal.txt || echo "round47 london fail (frontal outputs differ)" >> $R/london.txt
cat $R/london.txt
passed london || { echo ROUND47_DONE; exit 0; }
# 2. the other sets' SFM-turned validation faces, pooled
$PY benchmarks/generalisation.py default=default pull=runs/default_pull.safetensors --split val --turned \
    --sets ckplus_turned,jaffe_turned,yale_turned,canada_turned --out $R/turned_val
$PY $R/checks.py $R/turned_val default pull --part turned_val > $R/turned_val.txt
$PY docs/results/round42/pool.py $R/turned_val default pull >> $R/turned_val.txt
cat $R/turned_val.txt
passed turned_val || { echo ROUND47_DONE; exit 0; }
date
# 3. unseen people: every JAFFE, Yale (leave-JAFFE-and-Yale-out soup3, seed 0) and CK+ person (leave-CK+-out soup3)
# outside the test splits, their SFM-turned faces
for n in jaffe yale; do
  $N evaluate lodo_soup3=runs/feat10_soup3_gated_seed0.safetensors lodo_pull=runs/soup3_seed0_pull.safetensors \
      --data out/${n}64_turned --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
      --out $R/unseen/${n}_turned_every_person --no-figures --quiet --kid-subsets 50
done
$N evaluate lodo_soup3=runs/feat10_soup3_gated_lodo_ckplus.safetensors lodo_pull=runs/soup3_lodo_ckplus_pull.safetensors \
    --data out/ckplus_wn64_turned --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out $R/unseen/ckplus_turned_every_person --no-figures --quiet --kid-subsets 50
$PY $R/checks.py $R/unseen lodo_soup3 lodo_pull --part unseen > $R/unseen.txt
$PY docs/results/round42/pool.py $R/unseen lodo_soup3 lodo_pull >> $R/unseen.txt
cat $R/unseen.txt
date
echo ROUND47_DONE
