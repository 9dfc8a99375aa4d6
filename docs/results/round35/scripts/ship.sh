#!/bin/bash
# Session 30: `feat10_ema` (round 35) becomes the default. The five-set chain retrained on this machine kind (Xeon
# with AMX; session 29's chain did not persist): configs/all_data_feat10.yaml (started by hand as PID $1), its
# second stage with the average (configs/all_data_feat10_ema_sfm.yaml); the validation people scored again and
# compared byte for byte with round 35's (docs/results/round35/all_data_val); the test people scored once, with
# and without the inference step; the export; the leave-out chains' second stages with the average and their
# test people (ship_lodo.sh).
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
R=docs/results/round35
while kill -0 $1 2>/dev/null; do sleep 20; done
date
stage2() {  # stage2 FIRST_STAGE_RUN CONFIG_NAME
  rm -rf runs/$2; mkdir -p runs/$2/checkpoints
  cp runs/$1/checkpoints/step_00002000.safetensors runs/$2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$2.yaml'), open('runs/$2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$2 --steps 2500 > runs/$2.log 2>&1
  date
}
stage2 all_data_feat10 all_data_feat10_ema_sfm
EA=runs/all_data_feat10_ema_sfm/checkpoints/step_00002500.safetensors
$PY tools/set_input_rule.py $EA runs/feat10_ema_gated_all_data.safetensors --neutralize-mode warp_frame --neutralize-threshold 0.013
echo STAGE2_DONE
# the same model as round 35 chose? its validation people again, against round 35's per-face files
$PY benchmarks/generalisation.py feat10_ema_gated=runs/feat10_ema_gated_all_data.safetensors --split val \
    --sets london,ckplus,jaffe,yale --out runs/val_check
for s in london ckplus jaffe yale; do
  $PY - runs/val_check/${s}_val/per_face.csv $R/all_data_val/${s}_val/per_face.csv <<'PYEOF'
import csv, sys
a = [r for r in csv.DictReader(open(sys.argv[1])) if r["model"] == "feat10_ema_gated"]
b = [r for r in csv.DictReader(open(sys.argv[2])) if r["model"] == "feat10_ema_gated"]
print(sys.argv[1], len(a), "rows against", len(b), "SAME" if a == b else "DIFFERENT")
PYEOF
done
date
$PY benchmarks/generalisation.py default=runs/feat10_ema_gated_all_data.safetensors --split test --out docs/results/default_feat10_ema_test
$PY benchmarks/generalisation.py default=$EA --split test --out docs/results/default_feat10_ema_ungated_test
date
cp src/nfgan/assets/pix2pix_all_data_research64.safetensors runs/feat10_default_shipped.safetensors
$PY tools/export_default_model.py $EA --name default --neutralize-mode warp_frame --neutralize-threshold 0.013 \
    --metrics docs/results/default_feat10_ema_test/london_test/metrics.json \
    --out src/nfgan/assets/pix2pix_all_data_research64.safetensors
date
$PY benchmarks/generalisation.py default=default --split test --out runs/shipped_file_test
$PY benchmarks/photometric_robustness.py default=default --split test --conditions framing --out docs/results/framing_robustness/default_feat10_ema
$PY benchmarks/photometric_robustness.py default=default --split test --out docs/results/photometric_robustness/default_feat10_ema
date
echo SHIP_DONE
# then by hand, after SHIP_DONE: `make demo` (docs/figures/demo_overview.png), the skip-mask figure (the command in
# tools/skip_mask_figure.py's docstring) and
#   python tools/crop_alignment_check.py out/london64@london out/ckplus_wn64@ckplus_with_neutral out/jaffe64@jaffe \
#       out/yale64@yale --model default --out docs/results/crop_alignment/summary.md
