#!/bin/bash
# Session 37 probe (docs/experiments.md, "Rank-1 among every person of the set"): L_id at 0.6 in the five-set
# chain's second stage, scored with the inference step on the validation people of London, CK+, JAFFE and Yale
# beside the same chain's feat10_ema second stage. A probe: nothing is chosen or shipped from it.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/rank1_every; C=all_data_feat10_ema_id06_sfm
date
rm -rf runs/$C; mkdir -p runs/$C/checkpoints
cp runs/all_data_feat10/checkpoints/step_00002000.safetensors runs/$C/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$C.yaml'), open('runs/$C/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$C --steps 2500 --quiet > runs/$C.log 2>&1
date
$PY tools/set_input_rule.py runs/$C/checkpoints/step_00002500.safetensors runs/feat10_id06_gated_all_data.safetensors \
    --neutralize-mode warp_frame --neutralize-threshold 0.013
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    id06_gated=runs/feat10_id06_gated_all_data.safetensors --split val --sets london,ckplus,jaffe,yale --out $R/probe_id06
date
echo PROBE_DONE
