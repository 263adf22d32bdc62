#!/usr/bin/env bash
# Drift experiments of issue 16 (see README.md here). Builds gemm-drift.cc and small-gemm.cc against the
# native GEMM and thread pool (no Node), then:
#   run.sh processes [N]   N fresh processes of a 1024^3 GEMM, each followed by the same matmul in PyTorch
#                          (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset): run-to-run spread of both, same windows
#   run.sh colocated [N]   N rounds of 128^3 GEMMs: both threads on one CPU (taskset -c 0), free, 1 thread
# REV=<git revision> builds that revision's native sources instead of the work tree (A/B across a change),
# e.g. REV=da247d9 bench/drift/run.sh colocated 5. One JSON line per measurement on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${TMPDIR:-/tmp}/vlmix-drift-${REV:-worktree}
mkdir -p "$out/src"
for f in threadpool.cc threadpool.h gemm.cc gemm.h gemm_avx2.cc gemm_avx512.cc gemm_kernels.h gemm_macro.h; do
  if [ -n "${REV:-}" ]; then git -C "$root" show "$REV:packages/backend-native/src/native/$f" > "$out/src/$f"
  else cp "$root/packages/backend-native/src/native/$f" "$out/src/$f"; fi
done
fl="-O3 -std=c++17 -fno-math-errno -fno-trapping-math -pthread -I$out/src"
g++ $fl -c "$out/src/threadpool.cc" -o "$out/threadpool.o"
g++ $fl -c "$out/src/gemm.cc" -o "$out/gemm.o"
g++ $fl -mavx2 -mfma -c "$out/src/gemm_avx2.cc" -o "$out/gemm_avx2.o"
g++ $fl -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -c "$out/src/gemm_avx512.cc" -o "$out/gemm_avx512.o"
objs="$out/threadpool.o $out/gemm.o $out/gemm_avx2.o $out/gemm_avx512.o"
g++ $fl "$here/gemm-drift.cc" $objs -ldl -o "$out/gemm-drift"
g++ $fl "$here/small-gemm.cc" $objs -ldl -o "$out/small-gemm"

py=${VLMIX_TORCH_PYTHON:-/usr/bin/python3}
torch_mm='import json, os, time, torch
torch.set_num_threads(int(os.environ.get("T", "2")))
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(2): torch.matmul(a, b)
ts = []
for _ in range(30):
    s = time.perf_counter(); torch.matmul(a, b); ts.append((time.perf_counter() - s) * 1000)
ts.sort()
print(json.dumps({"torch": True, "median": round(ts[15], 3), "p25": round(ts[7], 3), "p75": round(ts[22], 3)}))'

case "${1:-processes}" in
  processes)
    for i in $(seq 1 "${2:-10}"); do
      echo "{\"round\":$i,\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
      "$out/gemm-drift" 1024 30
      if "$py" -c 'import torch' 2>/dev/null; then env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 "$py" -c "$torch_mm"; fi
    done ;;
  colocated)
    for i in $(seq 1 "${2:-5}"); do
      echo "{\"round\":$i,\"case\":\"one-cpu\"} $(VLMIX_NUM_THREADS=2 taskset -c 0 "$out/small-gemm" 128 1000)"
      echo "{\"round\":$i,\"case\":\"free\"} $("$out/small-gemm" 128 2000)"
      echo "{\"round\":$i,\"case\":\"1-thread\"} $(VLMIX_NUM_THREADS=1 "$out/small-gemm" 128 1000)"
    done ;;
  *) echo "usage: $0 processes|colocated [N]" >&2; exit 2 ;;
esac
