#!/usr/bin/env bash
# On the GPU machine, from the repository root, after tools/gpu/pack.sh: install Keras (from .whl/
# if the machine has none), unpack the data, train with tools/gpu/train_all.py, and pack what comes
# back into RESULTS_DIR in 15 MB pieces: every run's records, the best run's model per model.
#   [COMPACT_MODELS="resnet50"] tools/gpu/run.sh RESULTS_DIR MINUTES RUNS [train_all.py flags...]
# RUNS names train_all.py's RECIPES, e.g. cnn,cnn_sgd,attention_cnn,vgg_fer,resnet50_sgd.
# Back on the CPU machine: cat RESULTS_DIR/*/*.tar.part* pieces per folder | tar xf - -C runs/gpu, then
# `fer-core evaluate` and `fer-core promote` (README, "Training on a GPU").
set -euo pipefail
results=${1:?usage: tools/gpu/run.sh RESULTS_DIR MINUTES RUNS}; minutes=${2:?}; models=${3:?}; shift 3
work=${GPU_WORK_DIR:-/tmp/fer-gpu}
mkdir -p "$work" "$results"
# DONE tells a caller polling from another shell that this script ended, and how.
trap 'echo $? > "$results/DONE"' EXIT
if ! python3 -c 'import keras' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" .whl/*.whl
  export PYTHONPATH="$work/site"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export FER_CACHE_DIR="$work/cache"
[ -d "$work/data/fer2013" ] || { mkdir -p "$work/data" && tar xJf .gpu/fer2013.tar.xz -C "$work/data"; }
# The machine, kept beside the runs' records (each run's progress.json also names its GPU).
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c 'import keras, jax; print("keras", keras.__version__, "backend", keras.backend.backend(), "jax", jax.__version__, jax.devices())'
} 2>&1 | tee "$results/machine.txt"
python3 tools/gpu/train_all.py --data "$work/data/fer2013" --out "$work/runs" --models "$models" --minutes "$minutes" "$@" \
  2>&1 | tee "$results/train_all.log" || echo "train_all exited with $?; packing what the runs left"
# Back come the records of every run (no .keras files) with the model.keras of the best run per
# model, or per train_all SLOTS entry (best.json), in RESULTS_DIR/records. A best model whose slot is in COMPACT_MODELS is
# stored with float16 weights (`fer-core compact`) and packed apart, in RESULTS_DIR/<run>: ResNet50
# would not fit beside the others in what one call of the lending tool brings back (64 MiB).
cd "$work/runs"
find . -type f ! -name '*.keras' ! -name STOP > "$work/records.txt"
mkdir -p "$results/records"
while read -r model run; do
  if [[ " ${COMPACT_MODELS:-} " == *" $model "* ]]; then
    python3 -m fer_core compact "$run"
    mkdir -p "$results/$run"
    tar cf - "$run/model.keras" | split -b 15M -d - "$results/$run/model.tar.part"
  else
    echo "./$run/model.keras" >> "$work/records.txt"
  fi
done < <(python3 -c 'import json; [print(m, r) for m, r in json.load(open("best.json")).items()]')
tar cf - -T "$work/records.txt" | split -b 15M -d - "$results/records/runs.tar.part"
ls -laR "$results"
