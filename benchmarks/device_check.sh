#!/usr/bin/env bash
# One short GPU check on the lent device machine (one H200; its python3 has torch and Lightning, nothing else of ours):
#   run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=480)
# .whl/ holds the wheels the device lacks (hydra-core, omegaconf, antlr4-python3-runtime, ema-pytorch, torchtyping,
# typeguard, and the bench's peers denoising-diffusion-pytorch and diffusers); they go into $SITE with a copy of
# motiondiff (configs/ as motiondiff.configs, as an install ships it). Each step runs under its own timeout (all
# within 7 minutes) and a failed one does not stop the rest. Everything lands in $OUT (7 files):
#   env.log, bench.log, bench/bench.json, bench/bench.md, gpu_train.log, gpu_train.json, dmon.log
#   bash benchmarks/device_check.sh --quick   # here: tiny sizes on the CPU, a smoke test of this script
set -u
OUT=${OUT:-outputs/device_check}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--quick" ]; then
  ARGS=(--quick --device cpu)
  THREADS=2
else
  ARGS=(--device cuda)
  THREADS=8  # the bench's CPU side (data, coverage) on 8 of the 16 cores
fi

step() {  # step NAME SECONDS COMMAND...: COMMAND under a timeout, its output also in $OUT/NAME.log
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "=== $name (at most $limit s): $*"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "FAILED $name: exit $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"; fi
  echo "=== $name: $((SECONDS - start)) s"
}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
  || { echo "FAILED wheels: pip could not install .whl/*.whl into $SITE"; exit 1; }
rm -rf "$SITE/motiondiff" && cp -r src/motiondiff "$SITE/motiondiff" && cp -r configs "$SITE/motiondiff/configs"
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}

nvidia-smi dmon -s pucm -d 2 -o T >"$OUT/dmon.log" 2>&1 &  # power, load, clocks, memory every 2 s
DMON=$!
{
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  timeout 60 python3 -c 'import torch, lightning; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "lightning", lightning.__version__, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  timeout 60 python3 -c 'import hydra, diffusers, motiondiff.train; print("imports ok: hydra", hydra.__version__,
    "diffusers", diffusers.__version__)' || echo "FAILED imports"
} 2>&1 | tee "$OUT/env.log"
step bench 180 python3 benchmarks/bench.py "${ARGS[@]}" --threads "$THREADS" --out "$OUT/bench"
step gpu_train 200 python3 benchmarks/gpu_train.py "${ARGS[@]}" --out "$OUT"
kill "$DMON" 2>/dev/null

echo "=== summary"
cat "$OUT/bench/bench.md" 2>/dev/null || echo "no bench.md (bench.json keeps the sections measured)"
grep -E "^(bfloat16|train|  sample|lightning)" "$OUT/gpu_train.log"
ls -l "$OUT" "$OUT/bench"
