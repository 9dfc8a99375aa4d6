#!/bin/bash
# Round 48 (docs/experiments.md), after its three conditions passed: `cc_by` ships with the identity pull of turned
# faces. Its test people scored once (London's, and the four sets' SFM-turned test faces) beside `cc_by` without
# the pull (the file as it was); then the shipped file re-exported with the pull recorded and London's test metrics,
# and checked against the scored one.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results
date
cp src/nfgan/assets/pix2pix_cc_by64.safetensors runs/cc_by_shipped_before_pull.safetensors
$PY benchmarks/generalisation.py cc_by=runs/cc_by_pull.safetensors cc_by_plain=runs/cc_by_shipped_before_pull.safetensors \
    --split test --sets london --out $R/cc_by_pull_test
$PY benchmarks/generalisation.py cc_by=runs/cc_by_pull.safetensors cc_by_plain=runs/cc_by_shipped_before_pull.safetensors \
    --split test --turned --out $R/cc_by_pull_turned_test
date
$PY tools/export_default_model.py cc_by --identity-pull --name cc_by \
    --metrics $R/cc_by_pull_test/london_test/metrics.json --out src/nfgan/assets/pix2pix_cc_by64.safetensors
$PY docs/results/round47/same_outputs.py cc_by runs/cc_by_pull.safetensors
date
echo SHIP_DONE
