// Batched matmul on top of sgemm; batch broadcasting is resolved to strides (0 = shared).
#include "common.h"
#include "gemm.h"
#include "kernels.h"

namespace vlmix {

void batch_matmul(float* c, const float* a, const float* b, int64_t ba, int64_t bb, int64_t M, int64_t N,
                  int64_t K, bool ta, bool tb) {
  const int64_t batch = std::max(ba, bb);
  if (batch * M * N == 0) return;
  if (K == 0) { std::memset(c, 0, batch * M * N * 4); return; }
  int64_t lda = ta ? M : K, ldb = tb ? K : N;
  if (bb == 1 && !ta && batch > 1) {
    // Shared right operand: one tall GEMM is faster than many small ones.
    sgemm(false, tb, batch * M, N, K, 1.f, a, lda, b, ldb, 0.f, c, N);
  } else if (batch == 1) {
    sgemm(ta, tb, M, N, K, 1.f, a, lda, b, ldb, 0.f, c, N);
  } else {
    sgemm_batched(ta, tb, batch, M, N, K, 1.f, a, lda, ba == 1 ? 0 : M * K, b, ldb, bb == 1 ? 0 : K * N,
                  0.f, c, N, M * N);
  }
}

}  // namespace vlmix
