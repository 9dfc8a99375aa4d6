#!/bin/bash
# Round 42 (docs/experiments.md): round 41's inference-only own-shape warp on the shipped default, London's
# validation people, against the usual warp.
set -x
cd /work/main
PY=.venv/bin/python; P="$PY docs/results/round41/probe.py"; MAP=runs/ownshape_map.npz; R=docs/results/round42
[ -f $MAP ] || $P fit $MAP
A="--data out/london64 --splits london --split val --calibration-split all --no-figures --quiet --kid-subsets 50"
[ "$1" = cc_by ] || .venv/bin/nfgan evaluate default=src/nfgan/assets/pix2pix_all_data_research64.safetensors $A --out $R/london_val_default
[ "$1" = cc_by ] || $P evaluate $MAP default_ownshape=src/nfgan/assets/pix2pix_all_data_research64.safetensors $A --out $R/london_val_ownshape
echo ROUND42_DONE
# 42b: the same on cc_by (appended after 42's result)
if [ "$1" = cc_by ]; then
.venv/bin/nfgan evaluate cc_by=src/nfgan/assets/pix2pix_cc_by64.safetensors $A --out $R/london_val_cc_by
$P evaluate $MAP cc_by_ownshape=src/nfgan/assets/pix2pix_cc_by64.safetensors $A --out $R/london_val_cc_by_ownshape
echo ROUND42B_DONE
fi
