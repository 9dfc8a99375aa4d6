#!/bin/bash
# Probe `critic` (docs/experiments.md, "A second expression critic in the lever's loss"). Needs the seed-0
# leave-JAFFE-and-Yale-out chain of docs/results/push/chain_seed0.sh (its first stage and `feat10_ema` second stage).
#   bash docs/results/critic/critic.sh   # two critics (~1 min each), their readings, two second stages (~8 min
#                                        # each on 2 cores), the screen (~6 min)
set -x
cd /work/main
N=.venv/bin/nfgan; PY=.venv/bin/python; R=docs/results/critic
source docs/results/choice_helpers.sh   # score, gated_stage2, screen_eval, screen_spec, baseline_rows_check
date
[ -f runs/critic_no_jaffe_yale.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
    canada=out/canada64:canada ckplus=out/ckplus_wn64:ckplus_with_neutral \
    --out runs/critic_no_jaffe_yale.safetensors --report docs/results/push/critic_no_jaffe_yale
[ -f runs/critic_sfm_no_jaffe_yale.safetensors ] || $PY tools/train_neutral_critic.py london=out/london64:london \
    canada=out/canada64:canada ckplus=out/ckplus_wn64:ckplus_with_neutral \
    london_sfm=out/london64_sfm:london canada_sfm=out/canada64_sfm:canada \
    --out runs/critic_sfm_no_jaffe_yale.safetensors --report $R/critic_sfm_no_jaffe_yale
date
CRITICS="own=runs/critic_no_jaffe_yale.safetensors sfm=runs/critic_sfm_no_jaffe_yale.safetensors"
$PY $R/transfer.py $CRITICS > $R/transfer.md
$PY docs/results/push/critic_sight.py $CRITICS > $R/sight.md
cat $R/sight.md
for v in own sfm; do
  gated_stage2 lodo_jaffe_yale_feat10 lodo_jaffe_yale_feat10_ema_crit_${v}_sfm runs/feat10_ema_crit_${v}_gated_seed0.safetensors \
      --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
done
screen_eval $R/seed0 lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors \
    lodo_crit_own_gated=runs/feat10_ema_crit_own_gated_seed0.safetensors \
    lodo_crit_sfm_gated=runs/feat10_ema_crit_sfm_gated_seed0.safetensors
baseline_rows_check $R/seed0   # the baseline (retrained in session 41) against round 40's rows of the same files
spec=$(screen_spec feat10_ema=$R/seed0@lodo_feat10_ema_gated crit_own=$R/seed0@lodo_crit_own_gated \
    crit_sfm=$R/seed0@lodo_crit_sfm_gated)
score $R/screen_seed0.txt $spec
$PY docs/results/push/per_class.py $R/seed0 > $R/screen_per_class.md
date
echo CRITIC_DONE
