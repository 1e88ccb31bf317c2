#!/usr/bin/env bash
# Everything to check on a GPU machine, in one go (about 5 minutes on an H100):
#   bash benchmarks/gpu_session.sh [OUTDIR]
# Needs jax with CUDA, torch with CUDA, flax, optax, pytest and hypothesis already installed (the
# project itself is used from this checkout, nothing is downloaded). Writes the logs, the parity
# tables and the GPU benchmark to OUTDIR (default benchmarks/results/gpu).
set -uo pipefail
out="${1:-benchmarks/results/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"
# 1. the GPU parity tests: the real cuDNN kernel (and "fused") against torch's cuDNN LSTM, TF32 off.
# Only the tests marked gpu: the rest of the suite is written for the CPU (CI's machine).
python3 -m pytest parity_tests/test_cudnn.py -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/pytest_gpu.txt" || status=1
# 2. the parity tables on the GPU: the default recurrence, then cuDNN
python3 -m jax_lstm.cli parity --device cuda --dtype float32 float64 2>&1 | tee "$out/parity_fused.txt" || status=1
python3 -m jax_lstm.cli parity --device cuda --dtype float32 --implementation cudnn 2>&1 | tee "$out/parity_cudnn.txt" || status=1
# 3. speed: torch (cuDNN) against jax_lstm fused and cudnn
python3 -m benchmarks.gpu --out "$out" 2>&1 | tee "$out/benchmark_log.txt" || status=1
exit $status
