#!/usr/bin/env bash
# Everything to check on a GPU machine, in one go (an estimate of about 5 minutes on an H100: this
# script has not run on a GPU yet):
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
# 0. stop here unless both sides see the GPU: otherwise every gpu test would be skipped and step 1 pass.
python3 -c "
import sys
import torch
from jax_lstm.rnn import cudnn
if not cudnn.available():
    sys.exit('gpu_session.sh: jax_lstm.cudnn.available() is False (JAX has no CUDA GPU with cuDNN): nothing to check')
if not torch.cuda.is_available():
    sys.exit('gpu_session.sh: torch.cuda.is_available() is False: nothing to compare against')
" 2>&1 | tee -a "$out/gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
# 1. the GPU parity tests: the real cuDNN kernel (and "fused") against torch's cuDNN LSTM, TF32 off.
# Only the tests marked gpu: the rest of the suite is written for the CPU (CI's machine). -rs lists
# any skipped test with its reason.
python3 -m pytest parity_tests/rnn/test_cudnn.py -m gpu -q -rs -p no:cacheprovider 2>&1 | tee "$out/pytest_gpu.txt" || status=1
# 2. the parity tables on the GPU: the default recurrence, then cuDNN
python3 -m jax_lstm.cli parity --device cuda --dtype float32 float64 2>&1 | tee "$out/parity_fused.txt" || status=1
python3 -m jax_lstm.cli parity --device cuda --dtype float32 --implementation cudnn 2>&1 | tee "$out/parity_cudnn.txt" || status=1
# 3. speed: torch (cuDNN) against jax_lstm fused and cudnn, then the FCN models one and K = 5 at once
#    (OSULeaf's shape from random data unless --osuleaf-dir finds its files)
python3 -m benchmarks.gpu --out "$out" 2>&1 | tee "$out/benchmark_log.txt" || status=1
exit $status
