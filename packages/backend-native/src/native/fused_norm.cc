// Fused LayerNorm / RMSNorm over the last axis, forward and backward.
// Parameter gradients are summed per fixed 64-row chunk, then chunks in order: deterministic.
#include "common.h"

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

Napi::Value NormFwd(const Napi::CallbackInfo& info, bool rms) {
  const float* x = arg_f32(info, 0);
  const float* gamma = arg_f32(info, 1);
  const float* beta = rms ? nullptr : arg_f32(info, 2);
  size_t k = rms ? 2 : 3;
  int64_t rows = arg_i(info, k), C = arg_i(info, k + 1);
  double eps = arg_d(info, k + 2);
  int32_t id = store_alloc(rows * C);
  float* y = (float*)store_ptr(id);
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
  return ret_id(info, id);
}

// (dy, x, gamma, rows, C, eps) -> [dx, dgamma, dbeta?]
Napi::Value NormBwd(const Napi::CallbackInfo& info, bool rms) {
  const float* dy = arg_f32(info, 0);
  const float* x = arg_f32(info, 1);
  const float* gamma = arg_f32(info, 2);
  int64_t rows = arg_i(info, 3), C = arg_i(info, 4);
  double eps = arg_d(info, 5);
  int32_t dx_id = store_alloc(rows * C), dg_id = store_alloc(C), db_id = rms ? -1 : store_alloc(C);
  float* dx = (float*)store_ptr(dx_id);
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
  float* dg = (float*)store_ptr(dg_id);
  float* db = rms ? nullptr : (float*)store_ptr(db_id);
  for (int64_t j = 0; j < C; j++) {
    double sg = 0, sb = 0;
    for (int64_t c = 0; c < nchunks; c++) {
      sg += pg[c * C + j];
      if (!rms) sb += pb[c * C + j];
    }
    dg[j] = (float)sg;
    if (db) db[j] = (float)sb;
  }
  if (rms) return ret_ids(info, {dx_id, dg_id});
  return ret_ids(info, {dx_id, dg_id, db_id});
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) { return NormFwd(info, false); }
Napi::Value RmsNorm(const Napi::CallbackInfo& info) { return NormFwd(info, true); }
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) { return NormBwd(info, false); }
Napi::Value RmsNormGrad(const Napi::CallbackInfo& info) { return NormBwd(info, true); }

}  // namespace

void init_fused_norm(Napi::Env env, Napi::Object exports) {
  def(env, exports, "layerNorm", LayerNorm);
  def(env, exports, "layerNormGrad", LayerNormGrad);
  def(env, exports, "rmsNorm", RmsNorm);
  def(env, exports, "rmsNormGrad", RmsNormGrad);
}

}  // namespace vlmix
