#!/bin/bash
# Session 45: the CK+ 10-fold 2b_aug row (c16, seed 0) with references from the default's recipe since round 49b
# trained without CK+: session 37's leave-CK+-out `soup3` without the inference step (the CK+48 crops carry no
# landmarks; remade as fer_ckplus96_2b_aug_lodo_soup3/fer_lodo_soup3.sh made it), with its 16 expression directions
# fitted by the package tool on its own training people (no CK+). A measurement; nothing is chosen from it.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
[ -f out/ckplus_peak64_fer/manifest.csv ] || \
    $N fer precropped --manifest ../shared/data/ckplus/manifest.csv --prefix peak/ --out out/ckplus_peak64_fer
$PY tools/average_models.py runs/lodo_ckplus_feat10_ema_sfm/checkpoints/step_00002500.safetensors#ema \
    runs/lodo_ckplus_feat10_ema_turned_sfm/checkpoints/step_00002500.safetensors#ema \
    runs/lodo_ckplus_feat10_ema_turned_london_sfm/checkpoints/step_00002500.safetensors#ema \
    --out runs/feat10_soup3_lodo_ckplus.safetensors
$PY tools/fit_expression_directions.py runs/feat10_soup3_lodo_ckplus.safetensors \
    runs/feat10_soup3_dirs16_lodo_ckplus.safetensors --k 16
rm -rf runs/fer/ckplus96_2b_aug_lodo_dirs16
$N fer cv --data out/ckplus_peak64_fer --folds ckplus_peak_10fold --config configs/fer/ckplus.yaml --variant 2b_aug \
    --augment runs/feat10_soup3_dirs16_lodo_ckplus.safetensors --out runs/fer/ckplus96_2b_aug_lodo_dirs16 > runs/fer_lodo_dirs16.log 2>&1
cp runs/fer/ckplus96_2b_aug_lodo_dirs16/{summary.json,confusion.csv,config.yaml} docs/results/fer_ckplus96_2b_aug_lodo_dirs16/
date
echo FER_LODO_DIRS16_DONE
