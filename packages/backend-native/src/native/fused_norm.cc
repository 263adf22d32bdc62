// Fused LayerNorm / RMSNorm over the last axis, forward and backward.
// Parameter gradients are summed per fixed 64-row chunk, then chunks in order: deterministic.
#include "common.h"
#include "kernels.h"

namespace vlmix {
namespace {

struct RowStats { double mean, rstd; };

inline RowStats ln_stats(const float* x, int64_t C, double eps, bool rms) {
  double mean = 0;
  if (!rms) {
    for (int64_t j = 0; j < C; j++) mean += x[j];
    mean /= C;
  }
  double var = 0;
  for (int64_t j = 0; j < C; j++) { double d = x[j] - mean; var += d * d; }
  var /= C;
  return {mean, 1.0 / std::sqrt(var + eps)};
}

// beta == nullptr: RMS norm.
void norm_forward(float* y, const float* x, const float* gamma, const float* beta, int64_t rows, int64_t C,
                  double eps) {
  const bool rms = beta == nullptr;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      RowStats s = ln_stats(xr, C, eps, rms);
      float m = (float)s.mean, rs = (float)s.rstd;
      if (rms) for (int64_t j = 0; j < C; j++) yr[j] = xr[j] * rs * gamma[j];
      else for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
    }
  });
}

// db == nullptr: RMS norm.
void norm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* gamma,
                   int64_t rows, int64_t C, double eps) {
  const bool rms = db == nullptr;
  int64_t nchunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<double> pg(nchunks * C, 0.0), pb(rms ? 0 : nchunks * C, 0.0);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> xhat(C);
    for (int64_t c = c0; c < c1; c++) {
      double* g = pg.data() + c * C;
      double* bb = rms ? nullptr : pb.data() + c * C;
      for (int64_t r = c * kRowChunk; r < std::min(rows, (c + 1) * kRowChunk); r++) {
        const float* xr = x + r * C;
        const float* dyr = dy + r * C;
        RowStats s = ln_stats(xr, C, eps, rms);
        double sum_g = 0, sum_gx = 0;
        for (int64_t j = 0; j < C; j++) {
          xhat[j] = (xr[j] - s.mean) * s.rstd;
          double gj = (double)dyr[j] * gamma[j];
          sum_g += gj;
          sum_gx += gj * xhat[j];
          g[j] += (double)dyr[j] * xhat[j];
          if (bb) bb[j] += dyr[j];
        }
        double mg = rms ? 0.0 : sum_g / C, mgx = sum_gx / C;
        float* dxr = dx + r * C;
        for (int64_t j = 0; j < C; j++)
          dxr[j] = (float)(s.rstd * ((double)dyr[j] * gamma[j] - mg - xhat[j] * mgx));
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
