// Gather along an axis and its adjoint, unsorted segment sum.
#include "common.h"

namespace vlmix {
namespace {

// gather(x, indices, outer, N, inner, M) -> id : x [outer, N, inner] -> [outer, M, inner].
Napi::Value Gather(const Napi::CallbackInfo& info) {
  const uint32_t* x = (const uint32_t*)store_ptr(arg_id(info, 0));
  const int32_t* idx = arg_i32(info, 1);
  int64_t outer = arg_i(info, 2), N = arg_i(info, 3), inner = arg_i(info, 4), M = arg_i(info, 5);
  for (int64_t m = 0; m < M; m++)
    if (idx[m] < 0 || idx[m] >= N)
      throw std::runtime_error("GatherV2: index " + std::to_string(idx[m]) + " is not in [0, " +
                               std::to_string(N) + ")");
  int32_t id = store_alloc(outer * M * inner);
  uint32_t* out = (uint32_t*)store_ptr(id);
  parallel_for(outer * M, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      int64_t o = r / M, m = r % M;
      std::memcpy(out + r * inner, x + (o * N + idx[m]) * inner, inner * 4);
    }
  });
  return ret_id(info, id);
}

// segmentSum(x, ids, N, inner, numSegments, dtype) -> id : rows summed in row order
// (deterministic); columns are split across threads.
Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  const void* x = store_ptr(arg_id(info, 0));
  const int32_t* ids = arg_i32(info, 1);
  int64_t N = arg_i(info, 2), inner = arg_i(info, 3), S = arg_i(info, 4);
  int dtype = (int)arg_i(info, 5);
  int32_t id = store_alloc(S * inner);
  void* out = store_ptr(id);
  std::memset(out, 0, S * inner * 4);
  parallel_for(inner, 64, [&](int64_t b, int64_t e) {
    for (int64_t n = 0; n < N; n++) {
      int64_t s = ids[n];
      if (s < 0 || s >= S) continue;
      if (dtype == F32) {
        const float* xr = (const float*)x + n * inner;
        float* orow = (float*)out + s * inner;
        for (int64_t j = b; j < e; j++) orow[j] += xr[j];
      } else {
        const uint32_t* xr = (const uint32_t*)x + n * inner;
        uint32_t* orow = (uint32_t*)out + s * inner;
        for (int64_t j = b; j < e; j++) orow[j] += xr[j];
      }
    }
  });
  return ret_id(info, id);
}

}  // namespace

void init_gather(Napi::Env env, Napi::Object exports) {
  def(env, exports, "gather", Gather);
  def(env, exports, "segmentSum", SegmentSum);
}

}  // namespace vlmix
