#!/bin/bash
# the shipped default's chain retrained on this session's machine (a CPU with AMX): do its weights equal the
# shipped file, and what does it score on the test people? A measurement
set -x
while ! grep -q FER_LODO_DONE /work/main/runs/fer_lodo_feat10_driver.log; do sleep 20; done
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
rm -rf runs/all_data_feat10
$N train --config configs/all_data_feat10.yaml --name all_data_feat10 > runs/repro_stage1.log 2>&1
rm -rf runs/all_data_feat10_sfm; mkdir -p runs/all_data_feat10_sfm/checkpoints
cp runs/all_data_feat10/checkpoints/step_00002000.safetensors runs/all_data_feat10_sfm/checkpoints/
$PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/all_data_feat10_sfm.yaml'), open('runs/all_data_feat10_sfm/config.yaml', 'w'), sort_keys=False)"
$N train --resume runs/all_data_feat10_sfm --steps 2500 > runs/repro_stage2.log 2>&1
date
S=runs/all_data_feat10_sfm/checkpoints/step_00002500.safetensors
$PY - <<'PYEOF' > runs/repro_weights.txt
import torch
from safetensors import safe_open
a = safe_open('src/nfgan/assets/pix2pix_all_data_research64.safetensors', 'pt')
b = safe_open('runs/all_data_feat10_sfm/checkpoints/step_00002500.safetensors', 'pt')
same = 0; worst = 0.0
for k in a.keys():
    x = a.get_tensor(k); y = b.get_tensor('net/' + k).to(torch.float16)
    same += bool(torch.equal(x, y)); worst = max(worst, (x.float() - y.float()).abs().max().item())
print(f'{same} of {len(list(a.keys()))} generator tensors equal the shipped float16 file; largest difference {worst:.4g}')
PYEOF
cat runs/repro_weights.txt
$PY tools/set_input_rule.py $S runs/feat10_gated_all_data.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
$PY benchmarks/generalisation.py default_retrained=runs/feat10_gated_all_data.safetensors --split test --out docs/results/retrained_here > runs/repro_eval.log 2>&1
date
echo REPRO_DONE
