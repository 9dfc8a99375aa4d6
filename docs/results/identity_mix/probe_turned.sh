#!/bin/bash
# Session 38 probe `mixturn` (docs/experiments.md, "Identity mixing (probe)"): identity mixing of frontal and turned
# inputs (data.identity_mix p 0.5, turned) in both stages of the five-set chain, scored with the inference step on
# the validation people of London, CK+, JAFFE and Yale beside the same recipe without mixing (`feat10_ema_gated`)
# and `mix`. A probe: nothing is chosen or shipped from it.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/identity_mix; S1=all_data_feat10_mixturn; S2=all_data_feat10_ema_mixturn_sfm
date
rm -rf runs/$S1
$N train --config configs/$S1.yaml --name $S1 --quiet > runs/$S1.log 2>&1
date
rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
cp runs/$S1/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
$PY tools/set_input_rule.py runs/$S2/checkpoints/step_00002500.safetensors runs/mixturn_gated_all_data.safetensors \
    --neutralize-mode warp_frame --neutralize-threshold 0.013
date
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    mix_gated=runs/mix_gated_all_data.safetensors mixturn_gated=runs/mixturn_gated_all_data.safetensors \
    --split val --sets london,ckplus,jaffe,yale --out $R/probe_mixturn
date
echo PROBE_DONE
