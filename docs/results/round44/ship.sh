#!/bin/bash
# Round 44d (docs/experiments.md): round 44's `soup3` becomes the default. The five-set soup made again from round
# 44b's three gated second stages; its test people scored once beside `feat10_ema_here` (the same first stage's
# baseline second stage), without the inference step, and on turned faces; the export; the exported file scored again.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results
date
$PY tools/average_models.py runs/feat10_ema_gated_all_data.safetensors runs/feat10_ema_turned_gated_all_data.safetensors \
    runs/feat10_ema_turned_london_gated_all_data.safetensors --out runs/soup3_gated_all_data.safetensors
# without the inference step: the three second stages' moving averages at step 2500, averaged
$PY tools/average_models.py runs/all_data_feat10_ema_sfm runs/all_data_feat10_ema_turned_sfm \
    runs/all_data_feat10_ema_turned_london_sfm --out runs/soup3_all_data.safetensors
cp src/nfgan/assets/pix2pix_all_data_research64.safetensors runs/feat10_ema_default_shipped.safetensors
$PY benchmarks/generalisation.py default=runs/soup3_gated_all_data.safetensors \
    feat10_ema_here=runs/feat10_ema_gated_all_data.safetensors --split test --out $R/default_soup3_test
date
$PY benchmarks/generalisation.py default=runs/soup3_all_data.safetensors --split test --out $R/default_soup3_ungated_test
date
$PY benchmarks/generalisation.py default=runs/soup3_gated_all_data.safetensors \
    feat10_ema_here=runs/feat10_ema_gated_all_data.safetensors --split test --turned --out $R/default_soup3_turned_test
date
$PY tools/export_default_model.py runs/soup3_gated_all_data.safetensors --name default \
    --metrics $R/default_soup3_test/london_test/metrics.json \
    --out src/nfgan/assets/pix2pix_all_data_research64.safetensors
date
$PY benchmarks/generalisation.py default=default --split test --out runs/shipped_soup3_file_test
for s in london ckplus jaffe yale canada; do
  $PY - runs/shipped_soup3_file_test/${s}_test/per_face.csv $R/default_soup3_test/${s}_test/per_face.csv <<'PYEOF'
import csv, sys
a = [r for r in csv.DictReader(open(sys.argv[1])) if r["model"] == "default"]
b = [r for r in csv.DictReader(open(sys.argv[2])) if r["model"] == "default"]
same = sum(x == y for x, y in zip(a, b))
print(sys.argv[1], len(a), "rows;", same, "equal to the float32 file's")
PYEOF
done
date
echo SHIP_DONE
