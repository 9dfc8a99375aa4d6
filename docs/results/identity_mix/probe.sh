#!/bin/bash
# Session 38 probes (docs/experiments.md, "Identity mixing (probe)"): identity mixing (data.identity_mix p 0.5,
# nfgan.data.identity_mix) in the five-set chain's second stage only (`mix`), then in both stages (`mixchain`),
# scored with the inference step on the validation people of London, CK+, JAFFE and Yale beside the same recipe
# without mixing (`feat10_ema_gated`). Probes: nothing is chosen or shipped from them.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/identity_mix; S2=all_data_feat10_ema_mix_sfm
stage2() {   # $1: first-stage run (its step 2000), $2: second-stage run folder, $3: exported model file
    rm -rf runs/$2; mkdir -p runs/$2/checkpoints
    cp runs/$1/checkpoints/step_00002000.safetensors runs/$2/checkpoints/
    $PY -c "import yaml; from nfgan.training.config import load_config; c = load_config('configs/$S2.yaml'); c['name'] = '$2'; yaml.safe_dump(c, open('runs/$2/config.yaml', 'w'), sort_keys=False)"
    $N train --resume runs/$2 --steps 2500 --quiet > runs/$2.log 2>&1
    $PY tools/set_input_rule.py runs/$2/checkpoints/step_00002500.safetensors runs/$3 \
        --neutralize-mode warp_frame --neutralize-threshold 0.013
}
date
stage2 all_data_feat10 $S2 mix_gated_all_data.safetensors
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    mix_gated=runs/mix_gated_all_data.safetensors --split val --sets london,ckplus,jaffe,yale --out $R/probe_mix
date
echo MIX_DONE
rm -rf runs/all_data_feat10_mix
$N train --config configs/all_data_feat10_mix.yaml --name all_data_feat10_mix --quiet > runs/all_data_feat10_mix.log 2>&1
date
stage2 all_data_feat10_mix all_data_feat10_mix_ema_mix_sfm mixchain_gated_all_data.safetensors
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors \
    mix_gated=runs/mix_gated_all_data.safetensors mixchain_gated=runs/mixchain_gated_all_data.safetensors \
    --split val --sets london,ckplus,jaffe,yale --out $R/probe_mixchain
date
echo PROBE_DONE
