#!/usr/bin/env bash
# One prepared run of every GPU check on a CUDA node (docs/gpu.md): build the package in
# place with the node's Python (which must hold torch with CUDA, cupy, numba, pyarrow,
# scipy, pytest), run the gpu-marked tests and every kernel case on the GPU, then the GPU
# benchmark. Logs and the benchmark's JSON go to $OUT (default ./gpu-out).
#
# Wheels the node lacks travel in .whl/ (see docs/gpu.md for the download line):
#   blake3, cryptography, cffi, pycparser (for Python 3.12, manylinux x86_64).
# Usage: bash bench/gpu_node.sh [quick]   (quick: smaller benchmark sizes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; \
  $PY -c 'import torch, cupy; print("torch", torch.__version__, "cupy", cupy.__version__)'; } \
    2>&1 | tee "$OUT/node.txt"
$PY setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
# the source tree as the installed package: engine.kernels is kernels/ (python -m puts . first)
ln -sfn ../kernels engine/kernels
export MLOPS_CUDA_MIN_BYTES=0 PYTHONUNBUFFERED=1
rc=0
timeout 300 $PY -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/gpu-tests.log" || rc=1
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_cuda_runtime.py \
    2>&1 | tail -20 | tee "$OUT/kernel-tests.log" || rc=1
if [ "${1:-}" = quick ]; then
    ARGS="--hash-size 1GiB --state-size 512MiB --rows 200000 --cols 200 --mmd-rows 5000 --permutations 200"
else
    ARGS=""
fi
timeout 420 $PY bench/bench_gpu.py $ARGS --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench.log" || rc=1
rm -f engine/kernels
exit $rc
