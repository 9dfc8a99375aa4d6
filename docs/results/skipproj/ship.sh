#!/bin/bash
# Round 49b (docs/experiments.md), after round 49's seeds passed: the default ships with the expression directions
# taken out of its 16 px and 8 px skips (k 16). The directions fitted on the shipped file's training people; the test
# people scored once (the five sets, and the four sets' SFM-turned test faces) beside the shipped default without the
# step (`pull`, round 47's file); then the export (London's test metrics, the record of the directions kept) and the
# exported file checked against the scored one.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results
date
cp src/nfgan/assets/pix2pix_all_data_research64.safetensors runs/pull_default_shipped.safetensors
$PY tools/fit_expression_directions.py default runs/default_dirs16.safetensors --k 16
$PY docs/results/round47/same_outputs.py runs/default_dirs16.safetensors runs/default_dirs16_float32.safetensors
$PY benchmarks/generalisation.py default=runs/default_dirs16.safetensors pull=runs/pull_default_shipped.safetensors \
    --split test --out $R/default_dirs16_test
date
$PY benchmarks/generalisation.py default=runs/default_dirs16.safetensors pull=runs/pull_default_shipped.safetensors \
    --split test --turned --out $R/default_dirs16_turned_test
date
$PY tools/export_default_model.py runs/default_dirs16.safetensors --name default \
    --metrics $R/default_dirs16_test/london_test/metrics.json \
    --out src/nfgan/assets/pix2pix_all_data_research64.safetensors
$PY docs/results/round47/same_outputs.py default runs/default_dirs16.safetensors
date
echo SHIP_DONE
