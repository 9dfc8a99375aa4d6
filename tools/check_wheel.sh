#!/usr/bin/env bash
# A user's first steps with a built wheel, outside the repository: build the wheel, install it into a fresh
# virtual environment (no test requirements, no fer, no h5py, no tensorboard), then from an empty folder run
# `nfgan --version`, `nfgan normalize` on a photo, `nfgan prepare` + `nfgan splits` + `nfgan evaluate` on the
# example photos, and `nfgan fer train` + `nfgan fer predict`. Exits non-zero at the first failure.
# Usage: tools/check_wheel.sh [PYTHON]     (about 3 minutes; CI runs it after the tests)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-python3}
WORK=$(mktemp -d /tmp/nfgan-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "== build the wheel"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$REPO"
WHEEL=$(ls "$WORK"/dist/nfgan-*.whl)
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["nfgan/assets/splits/london.json", "nfgan/assets/folds/jaffe_loso.json",
        "nfgan/assets/fer_mini_xception.safetensors", "nfgan/assets/pix2pix_lid_frontalized_london64.safetensors",
        "nfgan/assets/pix2pix_all_data_research64.safetensors", "nfgan/assets/pix2pix_cc_by64.safetensors"]
missing = [n for n in need if n not in names]
assert not missing, f"the wheel lacks {missing}"
PYEOF
echo "== a fresh environment: the wheel and its runtime dependencies only"
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/pip" install -q --upgrade pip
"$V/pip" install -q "torch==2.13.0"
"$V/pip" install -q "$WHEEL"
if "$V/python" -c "import fer" 2>/dev/null || "$V/python" -c "import h5py" 2>/dev/null; then
  echo "fer or h5py got installed: they must not be runtime dependencies" >&2; exit 1
fi
mkdir "$WORK/user"; cd "$WORK/user"             # nothing of the repository is reachable from here
export NFGAN_CACHE="$WORK/cache"
cp -r "$REPO/examples/london" photos
N="$V/nfgan"
"$N" --version
echo "== nfgan normalize (the shipped default model)"
"$N" normalize photos/smiling_front/124_08.jpg -o normalized
test -s normalized/124_08.png
echo "== nfgan prepare + splits + evaluate"
set +e; "$N" prepare csv photos/manifest.csv prepared; rc=$?; set -e
[ "$rc" -le 1 ] || { echo "prepare failed ($rc)"; exit 1; }      # 1: the profiles have no usable face
"$N" splits prepared --counts 0 0 2
"$N" evaluate "$("$V/python" -c 'import nfgan; print(nfgan.default_model_path())')" --data prepared \
    --no-figures --kid-subsets 5 --quiet --out eval
test -s eval/metrics.json
echo "== nfgan fer train + predict (neutral vs smiling, plain trunk, one epoch)"
"$N" fer train --data prepared --out fermodel --set trunk=plain --set epochs=1 --set batch_size=8 \
    --set n_queries=2 --set n_pos=2 --set n_neg=2
"$N" fer predict --model fermodel --data prepared --out predictions.csv
test "$(wc -l < predictions.csv)" -gt 2
echo "wheel check passed: $(basename "$WHEEL")"
