#!/usr/bin/env bash
# Seed study: by default the CK+ configuration (configs/fer/ckplus.yaml, c16) on the 10-fold test, for the three
# variants and the seeds FIRST..LAST, JOBS `nfgan fer cv` runs at a time. Each run is resumable per fold, so the study can be
# stopped (Ctrl-C, `timeout`) and started again; finished folds are kept.
#
#   tools/fer_seeds.sh 2 9                       # CPU, one run at a time (~35 min per run on 2 cores)
#   DEVICE=cuda JOBS=7 tools/fer_seeds.sh 2 9    # one GPU shared by 7 runs (2 CPU threads each)
#   python tools/fer_results_table.py --seeds runs/fer/seeds/ckplus96_2b_seed*   # mean over the seeds
#
# Environment: DEVICE (cpu), JOBS (1), DATA (out/ckplus_peak64_fer), FOLDS (ckplus_peak_10fold),
# CONFIG (configs/fer/ckplus.yaml), RUNS (runs/fer/seeds), VARIANTS ("2b 2b_aug softmax"), NFGAN (nfgan),
# NAME (ckplus96: runs are RUNS/NAME_<variant>_seed<S>). JAFFE, for example:
#   DATA=out/jaffe64_fer FOLDS=jaffe_loso CONFIG=configs/fer/jaffe.yaml NAME=jaffe tools/fer_seeds.sh 1 2
# Logs: RUNS/logs/<run>.log. The runs are queued seed by seed, so a stopped study has whole seeds first.
set -uo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 FIRST_SEED LAST_SEED   (environment: DEVICE, JOBS, DATA, FOLDS, CONFIG, RUNS, VARIANTS)" >&2
    exit 2
fi
export DEVICE=${DEVICE:-cpu} DATA=${DATA:-out/ckplus_peak64_fer} FOLDS=${FOLDS:-ckplus_peak_10fold}
export CONFIG=${CONFIG:-configs/fer/ckplus.yaml} RUNS=${RUNS:-runs/fer/seeds} NFGAN=${NFGAN:-nfgan} NAME=${NAME:-ckplus96}
export AUGMENT=${AUGMENT:-src/nfgan/assets/nfgan_london64.safetensors}
JOBS=${JOBS:-1}
VARIANTS=${VARIANTS:-2b 2b_aug softmax}
mkdir -p "$RUNS/logs"

one_run() {   # SEED VARIANT
    local seed=$1 variant=$2 aug=() name
    name="${NAME}_${variant}_seed${seed}"
    [ "$variant" = 2b_aug ] && aug=(--augment "$AUGMENT")
    if $NFGAN fer cv --data "$DATA" --folds "$FOLDS" --config "$CONFIG" --variant "$variant" "${aug[@]}" \
        --seed "$seed" --device "$DEVICE" --out "$RUNS/$name" >"$RUNS/logs/$name.log" 2>&1; then
        echo "done $name: $(tail -n 2 "$RUNS/logs/$name.log" | head -n 1)"
    else
        echo "FAILED $name (see $RUNS/logs/$name.log): $(tail -n 1 "$RUNS/logs/$name.log")"
    fi
}
export -f one_run

for seed in $(seq "$1" "$2"); do
    for variant in $VARIANTS; do
        echo "$seed $variant"
    done
done | xargs -P "$JOBS" -L 1 bash -c 'one_run "$0" "$1"'
