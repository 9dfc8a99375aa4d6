#!/bin/bash
# Round 44d, after ship.sh: the shipped file (the new default) under photometric changes and re-framings of every
# set's test people (scored once, no choice made from them), the crop-path alignment check, and the figures.
set -x
cd /work/main
PY=.venv/bin/python; R=docs/results
date
git show 2cdd1cf:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/feat10_ema.safetensors
for s in 71604f4:plain b7c91f7:skipmask 3ad3522:feat 42a0a5a:feat05 a998237:feat10; do
  git show ${s%%:*}:src/nfgan/assets/pix2pix_all_data_research64.safetensors > /tmp/${s##*:}.safetensors; done
$PY tools/skip_mask_figure.py out/london64 out/london64_sfm docs/figures/skip_mask.png \
    --model plain=/tmp/plain.safetensors --model skipmask=/tmp/skipmask.safetensors \
    --model feat=/tmp/feat.safetensors --model feat05=/tmp/feat05.safetensors \
    --model feat10=/tmp/feat10.safetensors --model feat10_ema=/tmp/feat10_ema.safetensors \
    --model default=default --model cc_by=cc_by
date
$PY benchmarks/photometric_robustness.py default=default --split test --out $R/photometric_robustness/default_soup3
date
$PY benchmarks/photometric_robustness.py default=default --split test --conditions framing --out $R/framing_robustness/default_soup3
date
$PY tools/crop_alignment_check.py out/london64@london out/ckplus_wn64@ckplus_with_neutral out/jaffe64@jaffe \
    out/yale64@yale --model default --out $R/crop_alignment/summary.md
date
echo ROBUSTNESS_DONE
