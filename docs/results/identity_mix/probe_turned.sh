#!/bin/bash
# Session 38 probe `mixturn` (docs/experiments.md, "Identity mixing (probe)"): identity mixing of frontal and turned
# inputs (data.identity_mix p 0.5, turned) in both stages of the five-set chain, scored with the inference step on
# the validation people of London, CK+, JAFFE and Yale beside the same recipe without mixing (`feat10_ema_gated`)
# and `mix`. A probe: nothing is chosen or shipped from it. The commands as run, written in session 39 with the
# functions of chain.sh (the same commands).
set -x
cd /work/main
source docs/results/identity_mix/chain.sh
R=docs/results/identity_mix; S1=all_data_feat10_mixturn; S2=all_data_feat10_ema_mixturn_sfm
date
stage1 $S1
date
stage2 $S1 $S2 $S2
export_all_data $S2 mixturn_gated_all_data.safetensors
date
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    mix_gated=runs/mix_gated_all_data.safetensors mixturn_gated=runs/mixturn_gated_all_data.safetensors \
    --split val --sets london,ckplus,jaffe,yale --out $R/probe_mixturn
date
echo PROBE_DONE
