#!/bin/bash
# Session 37: the CK+ 10-fold 2b_aug row (c16, seed 0) with references from the default's recipe since round 44
# (`soup3`: the equal average of three second stages of one first stage) trained without CK+: the leave-CK+-out
# chain's three second stages of round 44b (runs/lodo_ckplus_feat10_ema{,_turned,_turned_london}_sfm, AMD EPYC). The
# precropped CK+48 faces carry no landmarks, so the inference step cannot apply: their moving averages are averaged
# without it, as the earlier rows passed their run directories. A measurement; nothing is chosen from it.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python
date
$PY tools/average_models.py runs/lodo_ckplus_feat10_ema_sfm/checkpoints/step_00002500.safetensors#ema \
    runs/lodo_ckplus_feat10_ema_turned_sfm/checkpoints/step_00002500.safetensors#ema \
    runs/lodo_ckplus_feat10_ema_turned_london_sfm/checkpoints/step_00002500.safetensors#ema \
    --out runs/feat10_soup3_lodo_ckplus.safetensors
rm -rf runs/fer/ckplus96_2b_aug_lodo_soup3
$N fer cv --data out/ckplus_peak64_fer --folds ckplus_peak_10fold --config configs/fer/ckplus.yaml --variant 2b_aug \
    --augment runs/feat10_soup3_lodo_ckplus.safetensors --out runs/fer/ckplus96_2b_aug_lodo_soup3 > runs/fer_lodo_soup3.log 2>&1
cp runs/fer/ckplus96_2b_aug_lodo_soup3/{summary.json,confusion.csv,config.yaml} docs/results/fer_ckplus96_2b_aug_lodo_soup3/
date
echo FER_LODO_SOUP3_DONE
