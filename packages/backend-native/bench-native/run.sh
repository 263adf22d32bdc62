#!/usr/bin/env bash
# Builds the GEMM / thread-pool harness with the addon's compile flags and runs
#   ./run.sh          tests + benchmark vs torch.matmul
#   ./run.sh test     correctness only (exit status != 0 on failure)
#   ./run.sh bench    benchmark only
# Env: BUILD_DIR (default /tmp/vlmix-bench-native), VLMIX_NUM_THREADS,
#      PYTHON (default /usr/bin/python3, needs torch), BENCH_STAT=min.
set -euo pipefail
cd "$(dirname "$0")"
SRC=../src/native
OUT=${BUILD_DIR:-/tmp/vlmix-bench-native}
PY=${PYTHON:-/usr/bin/python3}
mode=${1:-all}
mkdir -p "$OUT"

# Same flags as binding.gyp (never -march=native; ISA flags only per file).
CXX="${CXX:-g++} -std=c++17 -O3 -fPIC -fno-math-errno -fno-trapping-math -pthread -Wall -Wextra"
$CXX -c $SRC/threadpool.cc -o "$OUT/threadpool.o"
$CXX -c $SRC/gemm.cc -o "$OUT/gemm.o"
$CXX -mavx2 -mfma -c $SRC/gemm_avx2.cc -o "$OUT/gemm_avx2.o"
$CXX -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -c $SRC/gemm_avx512.cc -o "$OUT/gemm_avx512.o"
LIBS="$OUT/threadpool.o $OUT/gemm.o $OUT/gemm_avx2.o $OUT/gemm_avx512.o -ldl"
$CXX threadpool_test.cc "$OUT/threadpool.o" -o "$OUT/threadpool_test"
$CXX gemm_test.cc $LIBS -o "$OUT/gemm_test"
$CXX gemm_bench.cc $LIBS -o "$OUT/gemm_bench"

if [[ $mode == all || $mode == test ]]; then
  "$OUT/threadpool_test"
  # Results must be bit-identical for any thread count (checksum line).
  for isa in avx512 avx2 scalar; do
    if [[ $isa == avx512 ]] && ! grep -q avx512f /proc/cpuinfo; then continue; fi
    sums=""
    for t in 1 2 3; do
      line=$(VLMIX_GEMM=own VLMIX_GEMM_ISA=$isa VLMIX_NUM_THREADS=$t "$OUT/gemm_test" \
             $([[ $isa == avx512 ]] || echo --quick) | tail -1)
      echo "$isa threads=$t: $line"
      sums="$sums ${line##* }"
    done
    [[ $(echo $sums | tr ' ' '\n' | sort -u | wc -l) == 1 ]] || { echo "FAIL: $isa results depend on thread count"; exit 1; }
  done
  if VLMIX_GEMM=openblas "$OUT/gemm_test" --quick | head -1 | grep -q openblas; then
    echo "openblas: $(VLMIX_GEMM=openblas "$OUT/gemm_test" --quick | tail -1)"
  fi
  echo "all tests passed"
fi

if [[ $mode == all || $mode == bench ]]; then
  threads=${VLMIX_NUM_THREADS:-$(nproc)}
  "$OUT/gemm_bench" shapes.txt | tee "$OUT/ours.txt"
  if "$PY" -c "import torch" 2>/dev/null; then
    "$PY" torch_bench.py shapes.txt "$threads" | tee "$OUT/torch.txt"
    echo
    echo "shape(batch MxNxK ta tb)      vlmix GF/s  torch GF/s   ratio"
    paste -d'|' <(tail -n +3 "$OUT/ours.txt") <(tail -n +3 "$OUT/torch.txt") |
      awk -F'|' '{ n = split($1, a, " "); split($2, b, " ");
                   printf "%-28s %10s %11s %7.2f\n", a[1]" "a[2]" "a[3], a[4], b[4], a[4] / b[4] }'
  else
    echo "($PY has no torch: skipping the comparison)"
  fi
fi
