#!/usr/bin/env bash
# The one prepared GPU run (device machine) for the scale-out and speed issues:
# ensemble scaling (vmap), batch-inversion throughput, step speed vs PyTorch CUDA.
#   bash benchmarks/gpu_run.sh        (carry .whl: ml_collections is not on that image)
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD:$PWD/benchmarks:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
timeout 220 python3 benchmarks/ensemble_speed.py --batches 64 256 16 --members 4 8 --steps 10 --impl vmap 2>&1 | tee "$out/ensemble_speed.txt"
timeout 100 python3 benchmarks/batch_inversion.py --generators 1 4 16 --samples 10000 2>&1 | tee "$out/batch_inversion.txt"
timeout 200 python3 benchmarks/step_speed.py --batches 64 256 --steps 20 --no-compile --naive 2>&1 | tee "$out/step_speed.txt"
