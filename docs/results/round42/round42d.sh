#!/bin/bash
# Round 42d (docs/experiments.md): the own-shape warp against the mean layout on SFM-turned faces of the validation
# people of CK+, JAFFE, Yale and canada (round 42c's folders), pooled over their 3/4 inputs.
set -x
cd /work/main
N=.venv/bin/nfgan; R=docs/results/round42/turned_val
[ -f runs/default_template.safetensors ] || \
  git show 2e81d28:src/nfgan/assets/pix2pix_all_data_research64.safetensors > runs/default_template.safetensors
git show 2adb6f6:src/nfgan/assets/pix2pix_all_data_research64.safetensors > runs/default_own.safetensors
for spec in ckplus_wn64:ckplus_with_neutral jaffe64:jaffe yale64:yale canada64:canada; do
  src=${spec%%:*}; split=${spec##*:}
  $N evaluate default_template=runs/default_template.safetensors default=runs/default_own.safetensors \
      --data out/${src}_turned --splits $split --split val --calibration-split all --out $R/$src --no-figures \
      --quiet --kid-subsets 50
done
.venv/bin/python docs/results/round42/pool.py $R > $R/pooled.txt
cat $R/pooled.txt
echo ROUND42D_DONE
