#!/usr/bin/env bash
# One short GPU check on the lent device machine (one H200; its python3 has torch and Lightning, nothing else of ours):
#   run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=520)   # about 160 s on an H200
# .whl/ holds the wheels the device lacks (hydra-core, omegaconf, antlr4-python3-runtime, ema-pytorch, torchtyping,
# typeguard, and the bench's peers denoising-diffusion-pytorch and diffusers); they go into $SITE with a copy of
# motiondiff (configs/ as motiondiff.configs, as an install ships it). Each step runs under its own timeout (all
# within 7.5 minutes) and a failed one does not stop the rest. Everything lands in $OUT (7 files):
#   env.log, bench.log, bench/bench.json, bench/bench.md, gpu_train.log, gpu_train.json, dmon.log
#   bash benchmarks/device_check.sh --quick   # here: tiny sizes on the CPU, a smoke test of this script
#   bash benchmarks/device_check.sh --wheels  # here, once: download the wheels into .whl/ (ignored by git)
set -u

if [ "${1:-}" = "--wheels" ]; then  # pure-Python wheels for the device's Python 3.12; antlr4 ships as sdist only
  exclude=$(git rev-parse --git-path info/exclude) && mkdir -p "$(dirname "$exclude")"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo /.whl/ >>"$exclude"
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1 ema-pytorch==0.8.3 \
    torchtyping==0.1.5 typeguard==2.13.3 denoising-diffusion-pytorch==2.3.4 diffusers==0.42.1 lazy-importer==0.1.0 \
    importlib_metadata==10.2.0 &&
    python3 -m pip download -q --no-deps --no-binary=:all: -d .whl/sdist antlr4-python3-runtime==4.9.3 &&
    python3 -m pip wheel -q --no-deps -w .whl .whl/sdist/antlr4-python3-runtime-4.9.3.tar.gz && rm -rf .whl/sdist &&
    ls .whl
  exit
fi
OUT=${OUT:-outputs/device_check}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--quick" ]; then
  ARGS=(--quick --device cpu)
  BENCH_ARGS=()
  THREADS=2
else
  ARGS=(--device cuda)
  BENCH_ARGS=(--data-motions 0)  # the data section is CPU work (make bench measures it)
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
step gpu_train 230 python3 benchmarks/gpu_train.py "${ARGS[@]}" --out "$OUT"
step bench 190 python3 benchmarks/bench.py "${ARGS[@]}" "${BENCH_ARGS[@]}" --threads "$THREADS" --out "$OUT/bench"
kill "$DMON" 2>/dev/null

echo "=== summary"
cat "$OUT/bench/bench.md" 2>/dev/null || echo "no bench.md (bench.json keeps the sections measured)"
grep -E "^(bfloat16|train|  sample|lightning)" "$OUT/gpu_train.log"
ls -l "$OUT" "$OUT/bench"
