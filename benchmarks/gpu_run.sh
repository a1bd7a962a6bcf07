#!/usr/bin/env bash
# The one prepared GPU run (≤ 8 min on one H100/H200): the step table (paper, small and light
# generators and the classifier; float32 and bfloat16; PyTorch CUDA eager and torch.compile
# beside each), the ensemble-vs-one-generator ratio, and batch-inversion throughput. Every
# part has its own time limit, so the whole stays under 8 minutes even when one part hangs;
# each writes its results file under $OUT (default /tmp/gpu_out).
#   bash benchmarks/gpu_run.sh        (carry .whl: ml_collections is not on that image)
#   SMOKE=1 bash benchmarks/gpu_run.sh   (tiny settings, any machine, no PyTorch: checks it runs)
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu_out}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD:$PWD/benchmarks:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
# JAX and PyTorch share the GPU in step_speed.py: JAX must not preallocate most of it.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45}
status=0
run() {  # run SECONDS FILE COMMAND...: a time-limited part, tee'd into $out/FILE
  local limit=$1 file=$2
  shift 2
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$file"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "!! $file: exit $rc" | tee -a "$out/$file"; status=1; }
}

if [ "${SMOKE:-0}" = 1 ]; then
  run 300 step_speed.txt python3 benchmarks/step_speed.py --batches 8 --steps 1 --models fast \
      --dtypes float32 bfloat16 --no-torch --host-memory default --out "$out/step_table.txt"
  run 300 ensemble_speed.txt python3 benchmarks/ensemble_speed.py --batches 8 --members 2 --steps 1
  run 120 batch_inversion.txt python3 benchmarks/batch_inversion.py --generators 1 2 --samples 40 --batch 20
  exit $status
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import jax, flax, optax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
} 2>&1 | tee "$out/environment.txt"
# ~5 min: 8 JAX rows (4 steps × 2 dtypes at batch 256), each beside PyTorch eager and torch.compile.
run 300 step_speed.txt python3 benchmarks/step_speed.py --batches 256 --steps 20 \
    --models paper small light --dtypes float32 bfloat16 --host-memory default \
    --out "$out/step_table.txt"
# ~1.5 min: 4 and 8 vmapped members against one generator at batch 256.
run 90 ensemble_speed.txt python3 benchmarks/ensemble_speed.py --batches 256 --members 4 8 --steps 10 --impl vmap
# ~1 min: 1 and 16 generators × 10 000 samples in one compiled call per chunk.
run 60 batch_inversion.txt python3 benchmarks/batch_inversion.py --generators 1 16 --samples 10000
exit $status
