#!/bin/bash
# Probe `distil` (docs/experiments.md, "Distilling the identity pull into the weights (probe)"). ~30 min on 2 cores.
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/distil; C=docs/results/round47/checks.py
date
for s in jaffe64 yale64; do   # the turned validation folders of generalisation.py --turned
  [ -d out/${s}_turned ] || $N synth-expressions out/$s out/${s}_turned --sfm ../shared/models/sfm --yaw 15 40 \
      --expressions neutral,anger,disgust,fear,happiness,sadness,surprise --per-face 3 --quiet
done
[ -f runs/distil_student.safetensors ] || $PY $R/probe.py fit
date
$PY $R/probe.py score
for part in london turned; do
  for pair in "default_no_pull default" "default_no_pull distil" "default distil"; do
    $PY $C $R/probe/$part $pair --part "$part ${pair// / -> }"
  done
done | tee $R/checks.txt
date
echo DISTIL_DONE
