#!/bin/bash
# Session 39 probe `mixchain` (docs/experiments.md, "Identity mixing (probe)"): identity mixing of frontal pairs
# (data.identity_mix p 0.5) in both stages, (1) in the five-set chain, scored on the validation people of London,
# CK+, JAFFE and Yale beside `feat10_ema_gated` (and session 38's `mix` and `mixturn`), then (2) in the
# leave-JAFFE-and-Yale-out chain, scored by the JAFFE + Yale screen beside `feat10_ema` (85.2). Nothing is chosen or
# shipped from it.
set -x
cd /work/main
source docs/results/identity_mix/chain.sh
R=docs/results/identity_mix
date
stage1 all_data_feat10_mix
stage2 all_data_feat10_mix all_data_feat10_ema_mix_sfm all_data_feat10_mix_ema_mix_sfm
export_all_data all_data_feat10_mix_ema_mix_sfm mixchain_gated_all_data.safetensors
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    mix_gated=runs/mix_gated_all_data.safetensors mixturn_gated=runs/mixturn_gated_all_data.safetensors \
    mixchain_gated=runs/mixchain_gated_all_data.safetensors --split val --sets london,ckplus,jaffe,yale \
    --out $R/probe_mixchain
date
echo FIVE_SET_DONE
stage1 lodo_jaffe_yale_feat10_mix
stage2 lodo_jaffe_yale_feat10_mix lodo_jaffe_yale_feat10_ema_mix_sfm lodo_jaffe_yale_feat10_ema_mix_sfm
export_screen lodo_jaffe_yale_feat10_ema_mix_sfm mixchain_gated_seed0.safetensors
score_screen $R/screen_mixchain mixchain mixchain_gated_seed0.safetensors _gated
date
echo SCREEN_DONE
