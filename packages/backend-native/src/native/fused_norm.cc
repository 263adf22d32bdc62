// Fused LayerNorm / RMSNorm over the last axis, forward and backward; rows split over threads, the
// per-row work vectorised (simd.h). Parameter gradients are summed per fixed 64-row chunk, then chunks
// in order: deterministic.
#include "common.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {
namespace {

struct RowStats { double mean, rstd; };

// Mean (0 for RMS) and 1 / sqrt(var + eps) of a row, in double (simd.h lane sums).
inline RowStats row_stats(const SimdOps& sv, const float* x, int64_t C, double eps, bool rms) {
  const double mean = rms ? 0.0 : sv.row_sum(x, C) / C;
  const double var = sv.row_sq_dev(x, C, mean) / C;
  return {mean, 1.0 / std::sqrt(var + eps)};
}

// beta == nullptr: RMS norm.
void norm_forward(float* y, const float* x, const float* gamma, const float* beta, int64_t rows, int64_t C,
                  double eps) {
  const SimdOps& sv = simd();
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      RowStats s = row_stats(sv, xr, C, eps, beta == nullptr);
      const float m = (float)s.mean, rs = (float)s.rstd;
      // Here, not in the per-ISA tables: those may fuse the multiply-add (FMA), which changes the bits.
      if (!beta) for (int64_t j = 0; j < C; j++) yr[j] = xr[j] * rs * gamma[j];
      else for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
    }
  });
}

// db == nullptr: RMS norm. Parameter gradients are summed per fixed 64-row chunk, then chunks in order.
void norm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* gamma,
                   int64_t rows, int64_t C, double eps) {
  const bool rms = db == nullptr;
  const SimdOps& sv = simd();
  int64_t nchunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<double> pg(nchunks * C, 0.0), pb(rms ? 0 : nchunks * C, 0.0);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double* g = pg.data() + c * C;
      double* bb = rms ? nullptr : pb.data() + c * C;
      for (int64_t r = c * kRowChunk; r < std::min(rows, (c + 1) * kRowChunk); r++) {
        RowStats s = row_stats(sv, x + r * C, C, eps, rms);
        sv.norm_row_grad(dy + r * C, x + r * C, gamma, C, s.mean, s.rstd, rms, dx + r * C, g, bb);
      }
    }
  });
  for (int64_t j = 0; j < C; j++) {
    double sg = 0, sb = 0;
    for (int64_t c = 0; c < nchunks; c++) {
      sg += pg[c * C + j];
      if (!rms) sb += pb[c * C + j];
    }
    dg[j] = (float)sg;
    if (db) db[j] = (float)sb;
  }
}

}  // namespace

void layernorm_forward(float* y, const float* x, const float* gamma, const float* beta, int64_t rows, int64_t C,
                       double eps) {
  norm_forward(y, x, gamma, beta, rows, C, eps);
}
void rmsnorm_forward(float* y, const float* x, const float* gamma, int64_t rows, int64_t C, double eps) {
  norm_forward(y, x, gamma, nullptr, rows, C, eps);
}
void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                        int64_t rows, int64_t C, double eps) {
  norm_backward(dx, dgamma, dbeta, dy, x, gamma, rows, C, eps);
}
void rmsnorm_backward(float* dx, float* dgamma, const float* dy, const float* x, const float* gamma, int64_t rows,
                      int64_t C, double eps) {
  norm_backward(dx, dgamma, nullptr, dy, x, gamma, rows, C, eps);
}

}  // namespace vlmix
