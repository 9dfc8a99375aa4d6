#!/bin/bash
# measurement (no choice): the shipped default's five-set chain (configs/all_data_feat10.yaml + _sfm) trained
# with seeds 1 and 2, exported with the default's inference step (t 0.013) and scored on every set's test people,
# beside the shipped seed-0 weights (docs/results/default_feat10_test)
set -x
while ! grep -q "FEATL1_RULE_SKIPPED" /work/main/runs/featl1_rule.log; do
  grep -q "FEATL1_CKPLUS_DONE" /work/main/runs/featl1_rule.log && { echo "the rule runs: no seed measurement"; exit 0; }
  sleep 20; done
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/default_feat10_seeds
for s in 1 2; do
date
rm -rf runs/all_data_feat10_seed$s
$N train --config configs/all_data_feat10.yaml --set seed=$s --name all_data_feat10_seed$s > runs/default_seed${s}_stage1.log 2>&1
date
rm -rf runs/all_data_feat10_seed${s}_sfm; mkdir -p runs/all_data_feat10_seed${s}_sfm/checkpoints
cp runs/all_data_feat10_seed$s/checkpoints/step_00002000.safetensors runs/all_data_feat10_seed${s}_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; c = load_config('configs/all_data_feat10_sfm.yaml'); c['seed'] = $s; c['name'] = 'all_data_feat10_seed${s}_sfm'; yaml.safe_dump(c, open('runs/all_data_feat10_seed${s}_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/all_data_feat10_seed${s}_sfm --steps 2500 > runs/default_seed${s}_stage2.log 2>&1
date
S=runs/all_data_feat10_seed${s}_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $S runs/default_gated_seed$s.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
$PY benchmarks/generalisation.py default_seed$s=runs/default_gated_seed$s.safetensors --split test --out $R/seed$s
done
date
echo DEFAULT_SEEDS_DONE
