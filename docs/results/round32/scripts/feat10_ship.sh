#!/bin/bash
# round 32 `feat10`: if it wins round 8's rule (above `feat05`'s score in the same file, its CK+ part not below
# 85.7), its test people scored once, the export as the default, its robustness on the test people
set -x
while ! grep -q "FEAT10_RULE_DONE\|FEAT10_RULE_SKIPPED" /work/main/runs/feat10_rule.log; do sleep 20; done
cd /work/main
PY=.venv/bin/python
R=docs/results/round32
RULE=$(grep '^choice_score' $R/feat10_rule.txt); CK=$(grep '^choice_score' $R/feat10_ckplus_part.txt)
echo "rule: $RULE; CK+ part: $CK"
if ! $PY - "$RULE" "$CK" <<'PYEOF'
import sys
rule = dict(p.split("=") for p in sys.argv[1].split()[1:])
ck = dict(p.split("=") for p in sys.argv[2].split()[1:])
ok = float(rule["feat10"]) > float(rule["feat05"]) and float(ck["feat10"]) >= 85.7
print("feat10 wins" if ok else "feat05 stays")
sys.exit(0 if ok else 1)
PYEOF
then echo FEAT10_SHIP_SKIPPED; exit 0; fi
date
S=runs/all_data_feat10_sfm/checkpoints/step_00002500.safetensors
$PY benchmarks/generalisation.py default=runs/feat10_gated_all_data.safetensors --split test --out docs/results/default_feat10_test
$PY benchmarks/generalisation.py default=$S --split test --out docs/results/default_feat10_ungated_test
$PY benchmarks/generalisation.py lodo_feat10_gated=runs/feat10_gated_seed0.safetensors --split test --sets jaffe,yale --out $R/feat10_seed0/test
$PY benchmarks/generalisation.py lodo_feat10_gated=runs/feat10_gated_lodo_ckplus.safetensors --split test --sets ckplus --out $R/feat10_lodo_ckplus/test
date
cp src/nfgan/assets/pix2pix_all_data_research64.safetensors runs/feat05_default_shipped.safetensors
$PY tools/export_default_model.py $S --name default --neutralize-mode warp_frame --neutralize-threshold 0.013 \
    --metrics docs/results/default_feat10_test/london_test/metrics.json \
    --out src/nfgan/assets/pix2pix_all_data_research64.safetensors
date
$PY benchmarks/generalisation.py default=default --split test --no-figures --out /tmp/feat10_shipped_test 2>&1 | tail -30
$PY benchmarks/photometric_robustness.py default=default --split test --conditions framing --out docs/results/framing_robustness/default_feat10
$PY benchmarks/photometric_robustness.py default=default --split test --out docs/results/photometric_robustness/default_feat10
date
echo FEAT10_SHIP_DONE
