#!/bin/bash
# Session 32: the CK+ 10-fold 2b_aug row (c16, seed 0) with references from the default's recipe with the moving
# average (`feat10_ema`) trained without CK+: session 31's chain on this machine kind (AMD EPYC),
# runs/lodo_ckplus_feat10_ema_sfm (docs/results/round35/scripts/ship_lodo_ckplus.sh). The precropped CK+48 faces
# carry no landmarks, so the inference step cannot apply: the run directory (its average) is passed, as the
# feat10 and skip-mask rows passed theirs. A measurement; nothing is chosen from it.
set -x
cd /work/main
N=.venv/bin/nfgan
date
rm -rf runs/fer/ckplus96_2b_aug_lodo_feat10_ema
$N fer cv --data out/ckplus_peak64_fer --folds ckplus_peak_10fold --config configs/fer/ckplus.yaml --variant 2b_aug \
    --augment runs/lodo_ckplus_feat10_ema_sfm --out runs/fer/ckplus96_2b_aug_lodo_feat10_ema > runs/fer_lodo_feat10_ema.log 2>&1
date
echo FER_LODO_EMA_DONE
