#!/bin/bash
# Session 31: the default's recipe without CK+ trained again on this machine kind, checked against round 35's
# every-CK+-person outputs, then its CK+ test people scored once (docs/experiments.md).
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round35
date
$PY tools/fit_neutral_shape.py london=out/london64:london jaffe=out/jaffe64:jaffe yale=out/yale64:yale \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/maps/neutral_shape_no_ckplus.safetensors --report runs/maps/no_ckplus
rm -rf runs/lodo_ckplus_feat10
$N train --config configs/lodo_ckplus_feat10.yaml --name lodo_ckplus_feat10 --quiet > runs/lodo_ckplus_feat10.log 2>&1
date
C=lodo_ckplus_feat10_ema_sfm
rm -rf runs/$C; mkdir -p runs/$C/checkpoints
cp runs/lodo_ckplus_feat10/checkpoints/step_00002000.safetensors runs/$C/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$C.yaml'), open('runs/$C/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$C --steps 2500 > runs/$C.log 2>&1
date
E=runs/$C/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $E runs/feat10_ema_gated_lodo_ckplus.safetensors --neutralize-mode warp_frame \
    --neutralize-threshold 0.010 --neutral-shape-map runs/maps/neutral_shape_no_ckplus.safetensors
$N evaluate lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --data out/ckplus_wn64 \
    --splits docs/results/lodo_ckplus_default_recipe/ckplus_every_person.json --split test \
    --out runs/lodo_check/ckplus_every_person --no-figures --quiet --kid-subsets 50
$PY - runs/lodo_check/ckplus_every_person/per_face.csv $R/feat10_ema_lodo_ckplus/ckplus_every_person/per_face.csv <<'PYEOF'
import csv, sys
a = [r for r in csv.DictReader(open(sys.argv[1])) if r["model"] == "lodo_feat10_ema_gated"]
b = [r for r in csv.DictReader(open(sys.argv[2])) if r["model"] == "lodo_feat10_ema_gated"]
print(sys.argv[1], len(a), "rows against", len(b), "SAME" if a == b else "DIFFERENT")
PYEOF
$PY benchmarks/generalisation.py lodo_feat10_ema_gated=runs/feat10_ema_gated_lodo_ckplus.safetensors --split test \
    --sets ckplus --out $R/feat10_ema_lodo_ckplus/test
date
echo LODO_CKPLUS_DONE
