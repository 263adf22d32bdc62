// Reductions over a contiguous axis block: x viewed as [outer, R, inner] -> [outer, inner].
// Each output is accumulated in double (in index order; rows summed along a contiguous axis in the SIMD lane order),
// so results never depend on threading.
#include "common.h"
#include "kernels.h"
#include "op_codes.h"
#include "simd.h"

namespace vlmix {
namespace {

using namespace opcodes::red;

template <class T>
void reduce_t(int op, const T* x, void* out, int64_t outer, int64_t R, int64_t inner) {
  parallel_for(outer * inner, inner == 1 ? std::max<int64_t>(1, 8192 / std::max<int64_t>(R, 1)) : 256,
               [&](int64_t b, int64_t e) {
    std::vector<double> acc;
    std::vector<int64_t> arg;
    for (int64_t o = b; o < e;) {
      int64_t oi = o / inner, j0 = o % inner, j1 = std::min(inner, j0 + (e - o));
      int64_t w = j1 - j0;
      const T* base = x + oi * R * inner + j0;
      acc.assign(w, 0.0);
      arg.assign(w, 0);
      if (op == kSum || op == kMean) {
        for (int64_t r = 0; r < R; r++) {
          const T* row = base + r * inner;
          for (int64_t j = 0; j < w; j++) acc[j] += row[j];
        }
        if (op == kMean) for (int64_t j = 0; j < w; j++) acc[j] = (float)acc[j] / (float)R;
      } else if (op == kProd) {
        for (int64_t j = 0; j < w; j++) acc[j] = 1.0;
        for (int64_t r = 0; r < R; r++)
          for (int64_t j = 0; j < w; j++) acc[j] *= base[r * inner + j];
      } else if (op == kAll || op == kAny) {
        for (int64_t j = 0; j < w; j++) acc[j] = op == kAll ? 1 : 0;
        for (int64_t r = 0; r < R; r++)
          for (int64_t j = 0; j < w; j++) {
            bool v = base[r * inner + j] != 0;
            acc[j] = op == kAll ? (acc[j] != 0 && v) : (acc[j] != 0 || v);
          }
      } else if (R > 0) {
        bool mx = op == kMax || op == kArgMax;
        bool isarg = op == kArgMax || op == kArgMin;
        for (int64_t j = 0; j < w; j++) acc[j] = base[j];
        for (int64_t r = 1; r < R; r++) {
          const T* row = base + r * inner;
          for (int64_t j = 0; j < w; j++) {
            double v = row[j];
            bool better = mx ? v > acc[j] : v < acc[j];
            if (!isarg && std::isnan(v)) better = true;  // tfjs max/min propagate NaN
            if (better) { acc[j] = v; arg[j] = r; }
          }
        }
      } else {
        // Empty reduction: identity like tfjs (-inf for max, +inf for min).
        for (int64_t j = 0; j < w; j++) acc[j] = op == kMax ? -INFINITY : INFINITY;
      }
      if (op == kArgMax || op == kArgMin) {
        for (int64_t j = 0; j < w; j++) ((int32_t*)out)[o + j] = (int32_t)arg[j];
      } else if (std::is_same<T, float>::value) {
        for (int64_t j = 0; j < w; j++) ((float*)out)[o + j] = (float)acc[j];
      } else {
        for (int64_t j = 0; j < w; j++) ((int32_t*)out)[o + j] = to_i32(acc[j]);
      }
      o += w;
    }
  });
}

}  // namespace

void reduce(void* out, const void* x, int64_t outer, int64_t R, int64_t inner, int op, int dtype) {
  if (outer * inner == 0) return;
  if (dtype == F32 && inner == 1 && (op == kSum || op == kMean)) {
    // Sums along contiguous rows: the vectorised double lane sum (simd.h); the generic loop below would
    // chain one double add per element (about 1.3 ns each).
    const SimdOps& sv = simd();
    const float* xf = (const float*)x;
    float* o = (float*)out;
    parallel_for(outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) {
        const double sum = sv.row_sum(xf + r * R, R);
        o[r] = op == kMean ? (float)sum / (float)R : (float)sum;
      }
    });
    return;
  }
  if (dtype == F32) reduce_t<float>(op, (const float*)x, out, outer, R, inner);
  else reduce_t<int32_t>(op, (const int32_t*)x, out, outer, R, inner);
}

void softmax(float* y, const float* x, int64_t rows, int64_t cols, bool log) {
  const SimdOps& sv = simd();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float m = sv.row_max(xr, cols);
      double s = sv.exp_shift_sum(xr, yr, cols, m);
      if (log) sv.sub2(xr, yr, cols, m, (float)std::log(s));
      else sv.scale(yr, cols, (float)(1.0 / s));
    }
  });
}

}  // namespace vlmix
