#!/bin/bash
# Round 42 (docs/experiments.md): round 41's inference-only own-shape warp on the shipped default, London's
# validation people, against the usual warp.
set -x
cd /work/main
PY=.venv/bin/python; P="$PY docs/results/round41/probe.py"; MAP=runs/ownshape_map.npz; R=docs/results/round42
[ -f $MAP ] || $P fit $MAP
A="--data out/london64 --splits london --split val --calibration-split all --no-figures --quiet --kid-subsets 50"
.venv/bin/nfgan evaluate default=src/nfgan/assets/pix2pix_all_data_research64.safetensors $A --out $R/london_val_default
$P evaluate $MAP default_ownshape=src/nfgan/assets/pix2pix_all_data_research64.safetensors $A --out $R/london_val_ownshape
echo ROUND42_DONE
