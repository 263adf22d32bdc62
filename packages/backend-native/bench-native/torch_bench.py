# torch.matmul GFLOP/s on shapes.txt (same timing scheme as gemm_bench.cc).
import os, sys, time, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench", "reference"))
from common import blas_info  # noqa: E402 (the bench's probe of the BLAS torch really uses)

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
blas = blas_info()
pins = ", ".join(f"{k}={blas['env'][k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                 if blas["env"][k] is not None) or "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset"
print(f"# torch {torch.__version__} threads={torch.get_num_threads()} blas core={blas['corename']} "
      f"blas threads={blas['threads']} ({pins})")
print(f"{'shape(batch MxNxK ta tb)':<28} {'GFLOP/s':>10} {'us/call':>10}")

def median_time(f):
    for _ in range(3): f()
    t0 = time.perf_counter(); f(); one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(0.005 / one)); samples = 5 if one > 0.05 else 15
    ts = []
    for _ in range(samples):
        a = time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter() - a) / n)
    ts.sort(); return ts[len(ts) // 2]

for line in open(sys.argv[1] if len(sys.argv) > 1 else "shapes.txt"):
    if not line.strip() or line.startswith("#"): continue
    b, M, N, K, ta, tb = map(int, line.split())
    # Stored layouts match gemm_bench.cc; transposes are views, as in backprop.
    A = torch.rand(b, K, M) * 2 - 1 if ta else torch.rand(b, M, K) * 2 - 1
    B = torch.rand(b, N, K) * 2 - 1 if tb else torch.rand(b, K, N) * 2 - 1
    a = A.transpose(1, 2) if ta else A
    bb = B.transpose(1, 2) if tb else B
    if b == 1: a, bb = a[0], bb[0]
    out = torch.empty(b, M, N) if b > 1 else torch.empty(M, N)
    t = median_time(lambda: torch.matmul(a, bb, out=out))
    print(f"{f'{b} {M}x{N}x{K} {ta}{tb}':<28} {2*b*M*N*K/t*1e-9:>10.1f} {t*1e6:>10.2f}", flush=True)
