#!/bin/bash
# Round 47 (docs/experiments.md), after its three conditions passed: the default ships with the identity pull of
# turned faces. Its test people scored once (the five sets, and the four sets' SFM-turned test faces) beside the
# default without the pull (`soup3`, round 44's file); then the export (the shipped file re-exported with the pull
# recorded and London's test metrics), and the exported file checked against the scored one.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results
date
cp src/nfgan/assets/pix2pix_all_data_research64.safetensors runs/soup3_default_shipped.safetensors
$PY benchmarks/generalisation.py default=runs/default_pull.safetensors soup3=runs/soup3_default_shipped.safetensors \
    --split test --out $R/default_pull_test
date
$PY benchmarks/generalisation.py default=runs/default_pull.safetensors soup3=runs/soup3_default_shipped.safetensors \
    --split test --turned --out $R/default_pull_turned_test
date
$PY tools/export_default_model.py default --identity-pull --name default \
    --metrics $R/default_pull_test/london_test/metrics.json \
    --out src/nfgan/assets/pix2pix_all_data_research64.safetensors
$PY docs/results/round47/same_outputs.py default runs/default_pull.safetensors
date
echo SHIP_DONE
