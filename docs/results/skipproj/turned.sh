#!/bin/bash
# Round 49's measurement for the ship step (docs/experiments.md): the package form of the step (every input) on the
# shipped default against the default, London's validation people and the other sets' SFM-turned validation faces.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results/skipproj
date
[ -f runs/default_dirs16.safetensors ] || $PY tools/fit_expression_directions.py default runs/default_dirs16.safetensors --k 16
$PY benchmarks/generalisation.py default=default dirs16=runs/default_dirs16.safetensors --split val --sets london \
    --out $R/turned_val
$PY benchmarks/generalisation.py default=default dirs16=runs/default_dirs16.safetensors --split val --turned \
    --sets ckplus_turned,jaffe_turned,yale_turned,canada_turned --out $R/turned_val
date
echo TURNED_DONE
