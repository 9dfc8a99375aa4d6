#!/bin/bash
# Session 30: the default's recipe without JAFFE and Yale (seed 0) trained again on this machine kind, checked
# against round 35's every-person outputs, then its JAFFE and Yale test people scored once (docs/experiments.md).
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round35
date
$PY tools/fit_neutral_shape.py london=out/london64:london ckplus=out/ckplus_wn64:ckplus_with_neutral \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_jaffe_yale.safetensors --report runs/maps/no_jaffe_yale
$N train --config configs/lodo_jaffe_yale_feat10.yaml --name lodo_jaffe_yale_feat10 --quiet > runs/lodo_jaffe_yale_feat10.log 2>&1
date
C=lodo_jaffe_yale_feat10_ema_sfm
rm -rf runs/$C; mkdir -p runs/$C/checkpoints
cp runs/lodo_jaffe_yale_feat10/checkpoints/step_00002000.safetensors runs/$C/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$C.yaml'), open('runs/$C/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$C --steps 2500 > runs/$C.log 2>&1
date
E=runs/$C/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $E runs/feat10_ema_gated_seed0.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
$N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/jaffe64 \
    --splits docs/results/lodo_jaffe_yale/jaffe_every_person.json --split test \
    --out runs/lodo_check/jaffe_every_person --no-figures --quiet --kid-subsets 50
$PY - runs/lodo_check/jaffe_every_person/per_face.csv $R/feat10_ema_seed0/jaffe_every_person/per_face.csv <<'PYEOF'
import csv, sys
a = [r for r in csv.DictReader(open(sys.argv[1])) if r["model"] == "lodo_feat10_ema_gated"]
b = [r for r in csv.DictReader(open(sys.argv[2])) if r["model"] == "lodo_feat10_ema_gated"]
print(sys.argv[1], len(a), "rows against", len(b), "SAME" if a == b else "DIFFERENT")
PYEOF
$PY benchmarks/generalisation.py lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --split test \
    --sets jaffe,yale --out $R/feat10_ema_seed0/test
date
echo LODO_DONE
