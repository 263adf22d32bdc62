#!/usr/bin/env bash
# Builds the GEMM / thread-pool harness with the addon's compile flags and runs
#   ./run.sh          tests + benchmark vs torch.matmul
#   ./run.sh test     correctness only (exit status != 0 on failure)
#   ./run.sh bench    benchmark only (REPS=n: best of n alternating runs)
#   ./run.sh build    compile only
# Env: BUILD_DIR (default /tmp/vlmix-bench-native), VLMIX_NUM_THREADS,
#      PYTHON (default /usr/bin/python3, needs torch), REPS (bench runs, default 1),
#      KEEP_BLAS_ENV=1 (keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for torch; by default they are unset for
#      the torch process only, as in `pnpm bench`: they pin OpenBLAS to older kernels at half speed).
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
$CXX -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx2 -mfma -c $SRC/gemm_avx512bf16.cc -o "$OUT/gemm_avx512bf16.o"
LIBS="$OUT/threadpool.o $OUT/gemm.o $OUT/gemm_avx2.o $OUT/gemm_avx512.o $OUT/gemm_avx512bf16.o -ldl"
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
  # REPS > 1 alternates full runs of ours and torch and keeps each shape's
  # best median: on a shared machine noise only ever lowers a number.
  threads=${VLMIX_NUM_THREADS:-$(nproc)}
  have_torch=0
  "$PY" -c "import torch" 2>/dev/null && have_torch=1
  torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
  [[ ${KEEP_BLAS_ENV:-0} == 1 ]] && torch_env=(env)
  rm -f "$OUT"/ours.*.txt "$OUT"/torch.*.txt
  for r in $(seq 1 "${REPS:-1}"); do
    "$OUT/gemm_bench" shapes.txt > "$OUT/ours.$r.txt"
    [[ $have_torch == 1 ]] && "${torch_env[@]}" "$PY" torch_bench.py shapes.txt "$threads" > "$OUT/torch.$r.txt"
  done
  best() {  # best GFLOP/s per shape across runs, in shapes.txt order
    awk 'FNR > 2 { k = $1" "$2" "$3; if (!(k in b)) { o[n++] = k } if ($4 > b[k]) b[k] = $4 }
         END { for (i = 0; i < n; i++) print o[i], b[o[i]] }' "$@"
  }
  best "$OUT"/ours.*.txt > "$OUT/ours.txt"
  head -1 "$OUT/ours.1.txt"
  if [[ $have_torch == 1 ]]; then
    best "$OUT"/torch.*.txt > "$OUT/torch.txt"
    head -1 "$OUT/torch.1.txt"
    echo "shape(batch MxNxK ta tb)      vlmix GF/s  torch GF/s   ratio"
    paste -d'|' "$OUT/ours.txt" "$OUT/torch.txt" |
      awk -F'|' '{ split($1, a, " "); split($2, b, " ");
                   printf "%-28s %10.1f %11.1f %7.2f\n", a[1]" "a[2]" "a[3], a[4], b[4], a[4] / b[4] }'
  else
    echo "($PY has no torch: no comparison)"
    awk '{ printf "%-28s %10.1f\n", $1" "$2" "$3, $4 }' "$OUT/ours.txt"
  fi
fi
