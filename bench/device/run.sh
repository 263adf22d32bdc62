#!/usr/bin/env bash
# The one command a GPU session runs on the device machine (see bench/device/README.md):
#   run(carry: [".device"], command: "bash bench/device/run.sh")
# Builds nothing: it uses the bundle and addons prepared on the build machine in .device/
# (node bench/device/bundle.mjs). Writes logs and JSON under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/bench/out/device}
mkdir -p "$OUT"
for f in .device/env.sh .device/node.xz .device/parity.mjs .device/vlmix_cuda.node; do
  if [ ! -s "$f" ]; then
    echo "missing $f: run /work/shared/tools/device-prep and node bench/device/bundle.mjs first, carry [\".device\"]" | tee "$OUT/error.txt"
    exit 3
  fi
done
# shellcheck disable=SC1091
source .device/env.sh

{
  echo "== nvidia-smi"; nvidia-smi 2>&1
  echo "== node $(node --version)"
  echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "== cuBLAS candidates"; ls -1 $(echo "${LD_LIBRARY_PATH:-}" | tr ':' ' ') 2>/dev/null | grep -E '^libcublas(Lt)?\.so' | sort -u
} 2>&1 | tee "$OUT/env.txt"

rc=0
# 1) The full backend-native suites (op parity, fused kernels, CUDA checks) on vlmix-cuda and vlmix-cpu
#    vs tfjs 'cpu'; matmuls in FP32 (TF32 is checked separately inside test/cuda.test.ts).
echo "== parity (cuBLAS)"
export VLMIX_EXPERIMENTAL_CUDA=1
OUT="$OUT" timeout 300 node .device/parity.mjs 2>&1 | tee "$OUT/parity.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 2 ]; then echo "== no usable GPU (see above); nothing else to run"; exit 2; fi

# 2) The vlmix-cuda suites again with the built-in GEMM kernel (the fallback when cuBLAS is missing).
echo "== parity (built-in GEMM, vlmix-cuda only)"
mkdir -p "$OUT/builtin-gemm"
OUT="$OUT/builtin-gemm" VLMIX_CUDA_GEMM=builtin VLMIX_DEVICE_FILTER='vlmix-cuda' timeout 120 node .device/parity.mjs \
  > "$OUT/builtin-gemm/parity.log" 2>&1
rc2=$?
tail -n 3 "$OUT/builtin-gemm/parity.log"

# 3) Memory checking of the vlmix-cuda kernels, when the toolkit's compute-sanitizer is present.
if command -v compute-sanitizer >/dev/null 2>&1; then
  echo "== compute-sanitizer memcheck (vlmix-cuda fused kernels)"
  mkdir -p "$OUT/memcheck"
  OUT="$OUT/memcheck" VLMIX_DEVICE_FILTER='fused kernels on vlmix-cuda|vlmix-cuda on the device' timeout 150 \
    compute-sanitizer --tool memcheck --print-limit 20 node .device/parity.mjs > "$OUT/memcheck/memcheck.log" 2>&1
  echo "memcheck exit $? (log: memcheck/memcheck.log)"; grep -E "ERROR SUMMARY|Invalid" "$OUT/memcheck/memcheck.log" | head -5
else
  echo "== compute-sanitizer not found; memcheck skipped" | tee "$OUT/memcheck-skipped.txt"
fi

echo "== exit: parity $rc, builtin-gemm $rc2"
[ "$rc" -eq 0 ] && [ "$rc2" -eq 0 ]
