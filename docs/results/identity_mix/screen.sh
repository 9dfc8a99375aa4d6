#!/bin/bash
# Session 38 measurement after probe `mixturn` (docs/experiments.md, "Identity mixing (probe)"): the JAFFE + Yale
# screen (round 21's: the leave-JAFFE-and-Yale-out chain, seed 0, scored on every JAFFE and Yale person) for
# identity mixing of frontal and turned inputs in both stages, beside the same chain without mixing (`feat10_ema`,
# 85.2). Nothing is chosen from it. Commands as round 40's (docs/results/round40/round40.sh), written in session 39
# with the functions of chain.sh (the same commands).
set -x
cd /work/main
source docs/results/identity_mix/chain.sh
S1=lodo_jaffe_yale_feat10_mixturn; S2=lodo_jaffe_yale_feat10_ema_mixturn_sfm
date
stage1 $S1
date
stage2 $S1 $S2 $S2
date
export_screen $S2 mixturn_gated_seed0.safetensors
score_screen docs/results/identity_mix/screen mixturn mixturn_gated_seed0.safetensors ""
date
echo SCREEN_DONE
