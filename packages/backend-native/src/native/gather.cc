// Gathers along an axis (GatherV2, VlmixGatherRows) and the adjoint of gather, unsorted segment sum.
#include "common.h"
#include "kernels.h"

namespace vlmix {
namespace {

// out[r] = src row sel(r) (inner elements each), or zeros where sel(r) < 0; rows split over threads.
template <class Sel>
void copy_rows(uint32_t* out, const uint32_t* src, int64_t nrows, int64_t inner, const Sel& sel) {
  parallel_for(nrows, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const int64_t s = sel(r);
      if (s < 0) std::memset(out + r * inner, 0, inner * 4);
      else std::memcpy(out + r * inner, src + s * inner, inner * 4);
    }
  });
}

}  // namespace

void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t N, int64_t inner,
            int64_t M) {
  for (int64_t m = 0; m < M; m++)
    if (idx[m] < 0 || idx[m] >= N)
      throw std::runtime_error("GatherV2: index " + std::to_string(idx[m]) + " is not in [0, " +
                               std::to_string(N) + ")");
  copy_rows(out, x, outer * M, inner, [&](int64_t r) { return (r / M) * N + idx[r % M]; });
}

void gather_rows(uint32_t* out, const uint32_t* x, int64_t rows, const int32_t* idx, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] > rows)
      throw std::runtime_error("VlmixGatherRows: index " + std::to_string(idx[i]) + " at " + std::to_string(i) +
                               " is not in [0, " + std::to_string(rows) + "] (" + std::to_string(rows) +
                               " = the zero row)");
  copy_rows(out, x, n, C, [&](int64_t r) -> int64_t { return idx[r] == rows ? -1 : idx[r]; });
}

// Rows summed in row order (deterministic); columns are split across threads.
void segment_sum(void* out, const void* x, const int32_t* ids, int64_t N, int64_t inner, int64_t S, int dtype) {
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
}

}  // namespace vlmix
