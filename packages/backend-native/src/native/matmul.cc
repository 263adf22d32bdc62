// Batched matmul on top of sgemm; batch broadcasting is resolved to strides (0 = shared).
#include "common.h"
#include "gemm.h"

namespace vlmix {
namespace {

// batchMatMul(a, b, batchA, batchB, M, N, K, transA, transB) -> id ([max(batchA,batchB), M, N]).
Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  const float* a = arg_f32(info, 0);
  const float* b = arg_f32(info, 1);
  int64_t ba = arg_i(info, 2), bb = arg_i(info, 3), M = arg_i(info, 4), N = arg_i(info, 5), K = arg_i(info, 6);
  bool ta = arg_b(info, 7), tb = arg_b(info, 8);
  if (ba != bb && ba != 1 && bb != 1) throw std::runtime_error("batchMatMul: incompatible batch sizes");
  int64_t batch = std::max(ba, bb);
  int32_t id = store_alloc(batch * M * N);
  float* c = (float*)store_ptr(id);
  if (batch * M * N == 0) return ret_id(info, id);
  if (K == 0) { std::memset(c, 0, batch * M * N * 4); return ret_id(info, id); }
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
  return ret_id(info, id);
}

}  // namespace

void init_matmul(Napi::Env env, Napi::Object exports) { def(env, exports, "batchMatMul", BatchMatMul); }

}  // namespace vlmix
