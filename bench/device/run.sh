#!/usr/bin/env bash
# The one command a GPU session runs on the device machine (see bench/device/README.md):
#   run(carry: [".device"], command: "bash bench/device/run.sh", timeout_s: 600)
# Builds nothing: it uses the bundles and addons prepared here in .device/ (node bench/device/bundle.mjs).
# Stages, each under its own time cap and all under one budget (VLMIX_DEVICE_BUDGET seconds, default 520):
#   parity      op-parity + fused kernels + CUDA checks, cuBLAS, strict FP32      (.device/parity.mjs)
#   builtin     the same vlmix-cuda tests with the built-in GEMM kernel
#   memcheck    compute-sanitizer over the fused/device tests (when the tool exists)
#   bench       kernels + every preset (forward, train step, generate) on vlmix-cuda and PyTorch CUDA, FP32
#   tf32        matmuls with TF32 on both sides
#   bf16        PyTorch's bf16 matmul (vlmix-cuda has no bf16 GEMM yet: the row says what there is to reach)
#   demo        typeA..D-tiny trained to the demo's steps on vlmix-cuda, time and held-out accuracy each
# Only a few files come back from $OUT, so everything lands in a work folder that is packed into
# $OUT/results.tar.gz, next to summary.md / summary.json (bench/device/summary.mjs), stages.json, env.txt.
# Exit status: 0 when every stage that ran passed, else 1 (stages.jsonl has each stage's exit).
# Dry run without a GPU (vlmix-cpu and PyTorch CPU, quick caps):
#   VLMIX_DEVICE_ALLOW_NO_GPU=1 VLMIX_DEVICE_QUICK=1 bash bench/device/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/bench/out/device}
WORK=${VLMIX_DEVICE_WORK:-/tmp/vlmix-device-work}
BUDGET=${VLMIX_DEVICE_BUDGET:-470}
QUICK=${VLMIX_DEVICE_QUICK:-}
rm -rf "$WORK"; mkdir -p "$OUT" "$WORK"
for f in .device/env.sh .device/node.xz .device/parity.mjs .device/bench.mjs .device/vlmix.mjs; do
  if [ ! -s "$f" ]; then
    echo "missing $f: run /work/shared/tools/device-prep and node bench/device/bundle.mjs first, carry [\".device\"]" | tee "$OUT/error.txt"
    exit 3
  fi
done
# shellcheck disable=SC1091
source .device/env.sh
export VLMIX_BENCH_REFERENCE_DIR=$PWD/bench/reference PYTHONDONTWRITEBYTECODE=1
# The python with torch, probed as the bench does ($VLMIX_TORCH_PYTHON, /usr/bin/python3, python3).
PY=python3
for c in "${VLMIX_TORCH_PYTHON:-}" /usr/bin/python3 python3; do
  if [ -n "$c" ] && "$c" -c 'import torch' >/dev/null 2>&1; then PY=$c; break; fi
done
T0=$(date +%s)

GPU=1
if [ -n "${VLMIX_DEVICE_ALLOW_NO_GPU:-}" ] && ! nvidia-smi >/dev/null 2>&1; then GPU=0; fi
BACKEND=vlmix-cuda; TORCH_DEVICE=cuda
if [ "$GPU" -eq 0 ]; then BACKEND=vlmix-cpu; TORCH_DEVICE=cpu; fi

{
  echo "== date $(date -u +%FT%TZ), budget ${BUDGET}s, backend $BACKEND, torch on $TORCH_DEVICE${QUICK:+, quick}"
  echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "== node $(node --version)"
  echo "== python $PY $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1)"
  echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "== cuBLAS candidates"; ls -1 $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') 2>/dev/null | grep -E '^libcublas(Lt)?\.so' | sort -u
  command -v compute-sanitizer || echo "compute-sanitizer: not found"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

STAGES_JSON="$WORK/stages.jsonl"; : > "$STAGES_JSON"
FAILBITS=0; K=0
# stage NAME CAP_SECONDS COMMAND...: runs under min(cap, budget left), logs to $WORK/NAME.log, records status.
stage() {
  local name=$1 cap=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - T0) ))
  local t=$(( cap < left ? cap : left ))
  local rc s0; s0=$(date +%s)
  if [ -n "${VLMIX_DEVICE_STAGES:-}" ] && ! [[ "$name" =~ ^(${VLMIX_DEVICE_STAGES})$ ]]; then
    echo "== $name: not selected (VLMIX_DEVICE_STAGES)"; return 0
  fi
  if [ "$t" -lt 5 ]; then
    echo "== $name: skipped (budget spent)"; rc=-1
  else
    echo "== $name (cap ${t}s)"
    timeout --kill-after=5 "$t" "$@" > "$WORK/$name.log" 2>&1; rc=$?
    tail -n 4 "$WORK/$name.log"
  fi
  local secs=$(( $(date +%s) - s0 ))
  echo "{\"stage\":\"$name\",\"rc\":$rc,\"seconds\":$secs,\"cap\":$t}" >> "$STAGES_JSON"
  if [ "$rc" -ne 0 ]; then FAILBITS=$(( FAILBITS | (1 << K) )); fi
  echo "   -> $name exit $rc in ${secs}s"
  K=$((K + 1))
}

cap() { if [ -n "$QUICK" ]; then echo "$2"; else echo "$1"; fi; }   # cap FULL QUICK

# 1) parity: every kernel on vlmix-cuda (and vlmix-cpu) against tfjs 'cpu', strict FP32 matmuls
#    (TF32 is checked inside cuda.test.ts). Exit 2 = no usable GPU: then nothing else is worth running.
PAR_FILTER=${VLMIX_DEVICE_FILTER:-}
[ -n "$QUICK" ] && PAR_FILTER=${PAR_FILTER:-'matMul 7x33|ayer ?[Nn]orm'}
stage parity "$(cap 60 60)" env OUT="$WORK/parity" VLMIX_TF32=0 VLMIX_DEVICE_FILTER="$PAR_FILTER" node .device/parity.mjs
if [ "$GPU" -eq 1 ] && grep -q "vlmix-cuda unavailable" "$WORK/parity.log"; then
  echo "== no usable GPU (see parity.log); nothing else to run"; cp "$WORK/parity.log" "$OUT/"; exit 2
fi
# 2) the vlmix-cuda tests again on the built-in GEMM (the fallback when cuBLAS cannot be loaded)
if [ "$GPU" -eq 1 ]; then
  stage builtin "$(cap 25 20)" env OUT="$WORK/builtin" VLMIX_CUDA_GEMM=builtin VLMIX_DEVICE_FILTER='vlmix-cuda' node .device/parity.mjs
  # 3) memcheck of the CUDA kernels
  if command -v compute-sanitizer >/dev/null 2>&1; then
    stage memcheck "$(cap 40 20)" env OUT="$WORK/memcheck" VLMIX_DEVICE_FILTER='fused kernels on vlmix-cuda|vlmix-cuda on the device' \
      compute-sanitizer --tool memcheck --print-limit 20 --error-exitcode 9 node .device/parity.mjs
  fi
fi
# 4) the bench: kernels, then presets (two stages, so that a stage stopped at its cap loses only its own rows;
#    the bench writes its results at the end), same device, PyTorch side by side (FP32 on both sides)
BENCH_FILTER=()
[ -n "$QUICK" ] && BENCH_FILTER=(--filter 'matmul 256,attention fwd+bwd T=64,layer norm,typeC-tiny,lm-tiny')
for suite in kernels arch; do
  stage "bench-$suite" "$(cap "$([ $suite = kernels ] && echo 60 || echo 110)" 60)" env VLMIX_TF32=0 node .device/bench.mjs --backend "$BACKEND" --suite "$suite" \
    --torch-device "$TORCH_DEVICE" --repeats "$(cap 5 2)" --warmup 2 --out "$WORK/bench-$suite" --machine "${VLMIX_DEVICE_MACHINE:-device run}" "${BENCH_FILTER[@]}"
done
# 4b) large matmuls (2048^3 and the transformer shapes) and long attention (T up to 1024): the sizes where
#    throughput, not launch overhead, shows (--size full; not in the quick dry run)
if [ -z "$QUICK" ]; then
  stage bench-large 45 env VLMIX_TF32=0 node .device/bench.mjs --backend "$BACKEND" --suite kernels --size full \
    --filter 'matmul|attention' --torch-device "$TORCH_DEVICE" --repeats 5 --warmup 2 --out "$WORK/bench-large" \
    --machine "${VLMIX_DEVICE_MACHINE:-device run}"
fi
# 5) TF32 matmuls on both sides
FULL=(); [ -z "$QUICK" ] && FULL=(--size full)
stage tf32 "$(cap 15 15)" env VLMIX_TF32=1 node .device/bench.mjs --backend "$BACKEND" --suite kernels --filter matmul --tf32 "${FULL[@]}" \
  --torch-device "$TORCH_DEVICE" --repeats "$(cap 5 2)" --out "$WORK/bench-tf32" --machine "${VLMIX_DEVICE_MACHINE:-device run}"
# 6) PyTorch bf16 matmuls (the target for a vlmix bf16 GEMM)
BF16_JOBS='[{"id":"bf16-1024","kind":"matmul","params":{"m":1024,"k":1024,"n":1024,"dtype":"bfloat16"}},{"id":"bf16-4096","kind":"matmul","params":{"m":4096,"k":4096,"n":4096,"dtype":"bfloat16"}},{"id":"fp32-4096","kind":"matmul","params":{"m":4096,"k":4096,"n":4096}}]'
[ "$GPU" -eq 0 ] && BF16_JOBS='[{"id":"bf16-256","kind":"matmul","params":{"m":256,"k":256,"n":256,"dtype":"bfloat16"}}]'
stage bf16 "$(cap 10 15)" bash -c "echo '{\"threads\":1,\"device\":\"$TORCH_DEVICE\",\"policy\":{\"warmup\":2,\"repeats\":5,\"min_sample_ms\":10,\"max_inner\":100,\"max_case_ms\":3000},\"jobs\":$BF16_JOBS}' | '$PY' bench/reference/kernels.py > '$WORK/bf16.json'"
# 7) the demo's training on the device: each type to the demo's steps (quick: 30 steps), held-out accuracy
mkdir -p "$WORK/demo"
STEPS=(); [ -n "$QUICK" ] && STEPS=(--steps 30 --vq-steps 20 --train-size 64 --held-out 32)
for p in typeA-tiny typeB-tiny typeC-tiny typeD-tiny; do
  case $p in typeA-tiny|typeD-tiny) c=60 ;; typeB-tiny) c=45 ;; *) c=30 ;; esac
  stage "demo-$p" "$(cap $c 30)" node .device/vlmix.mjs demo --presets "$p" --backend "$BACKEND" --out "$WORK/demo/$p" --log plain "${STEPS[@]}"
done
# The same training with TF32 matmuls (vlmix-cuda's default is strict FP32): what the precision does to
# the accuracy and the step time.
stage demo-typeB-tiny-tf32 "$(cap 45 30)" env VLMIX_TF32=1 node .device/vlmix.mjs demo --presets typeB-tiny --backend "$BACKEND" \
  --out "$WORK/demo/typeB-tiny-tf32" --log plain "${STEPS[@]}"

# Summary (markdown + JSON) and the packed work folder.
node bench/device/summary.mjs "$WORK" "$OUT" || FAILBITS=$(( FAILBITS | (1 << 15) ))
tar -czf "$OUT/results.tar.gz" -C "$WORK" . 2>/dev/null
cp "$STAGES_JSON" "$OUT/stages.jsonl"
echo "== done in $(( $(date +%s) - T0 ))s; failed-stage bits $FAILBITS; summary: $OUT/summary.md"
[ "$FAILBITS" -eq 0 ]
