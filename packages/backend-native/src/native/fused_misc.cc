// Fused elementwise/row kernels: softmax cross-entropy, GELU, SwiGLU, AdamW.
#include "common.h"
#include "simd.h"

namespace vlmix {
namespace {

// sce(logits, labels, N, V, ignoreIndex) -> loss [N]
Napi::Value Sce(const Napi::CallbackInfo& info) {
  const float* lg = arg_f32(info, 0);
  const int32_t* lb = arg_i32(info, 1);
  int64_t N = arg_i(info, 2), V = arg_i(info, 3);
  int64_t ign = arg_i(info, 4);
  int32_t id = store_alloc(N);
  float* loss = (float*)store_ptr(id);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      if (lb[i] == ign) { loss[i] = 0; continue; }
      const float* r = lg + i * V;
      float m = -INFINITY;
      for (int64_t j = 0; j < V; j++) m = r[j] > m ? r[j] : m;
      double s = 0;
      for (int64_t j = 0; j < V; j++) s += std::exp((double)r[j] - m);
      loss[i] = (lb[i] < 0 || lb[i] >= V) ? NAN : (float)(std::log(s) + m - r[lb[i]]);
    }
  });
  return ret_id(info, id);
}

// sceGrad(dloss, logits, labels, N, V, ignoreIndex) -> dlogits [N, V]
Napi::Value SceGrad(const Napi::CallbackInfo& info) {
  const float* dl = arg_f32(info, 0);
  const float* lg = arg_f32(info, 1);
  const int32_t* lb = arg_i32(info, 2);
  int64_t N = arg_i(info, 3), V = arg_i(info, 4);
  int64_t ign = arg_i(info, 5);
  int32_t id = store_alloc(N * V);
  float* d = (float*)store_ptr(id);
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      float* dr = d + i * V;
      if (lb[i] == ign) { std::memset(dr, 0, V * 4); continue; }
      const float* r = lg + i * V;
      float m = -INFINITY;
      for (int64_t j = 0; j < V; j++) m = r[j] > m ? r[j] : m;
      double s = 0;
      for (int64_t j = 0; j < V; j++) { dr[j] = std::exp(r[j] - m); s += dr[j]; }
      float sc = (float)(dl[i] / s);
      for (int64_t j = 0; j < V; j++) dr[j] *= sc;
      if (lb[i] >= 0 && lb[i] < V) dr[lb[i]] -= dl[i];
    }
  });
  return ret_id(info, id);
}

// gelu(x, n, tanhForm) -> y ; geluGrad(dy, x, n, tanhForm) -> dx  (vectorised, simd.h)
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  int64_t n = arg_i(info, 1);
  bool th = arg_b(info, 2);
  int32_t id = store_alloc(n);
  float* y = (float*)store_ptr(id);
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.gelu(x + b, y + b, e - b, th); });
  return ret_id(info, id);
}

Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* x = arg_f32(info, 1);
  int64_t n = arg_i(info, 2);
  bool th = arg_b(info, 3);
  int32_t id = store_alloc(n);
  float* dx = (float*)store_ptr(id);
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.gelu_grad(dy + b, x + b, dx + b, e - b, th); });
  return ret_id(info, id);
}

// swiglu(gate, up, n) -> y ; swigluGrad(dy, gate, up, n) -> [dgate, dup]
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const float* g = arg_f32(info, 0);
  const float* u = arg_f32(info, 1);
  int64_t n = arg_i(info, 2);
  int32_t id = store_alloc(n);
  float* y = (float*)store_ptr(id);
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.swiglu(g + b, u + b, y + b, e - b); });
  return ret_id(info, id);
}

Napi::Value SwigluGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* g = arg_f32(info, 1);
  const float* u = arg_f32(info, 2);
  int64_t n = arg_i(info, 3);
  int32_t a = store_alloc(n), bid = store_alloc(n);
  float* dg = (float*)store_ptr(a);
  float* du = (float*)store_ptr(bid);
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) {
    s.swiglu_grad(dy + b, g + b, u + b, dg + b, du + b, e - b);
  });
  return ret_ids(info, {a, bid});
}

// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) -> [param, m, v]
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  const float* p = arg_f32(info, 0);
  const float* g = arg_f32(info, 1);
  const float* m = arg_f32(info, 2);
  const float* v = arg_f32(info, 3);
  int64_t n = arg_i(info, 4);
  double lr = arg_d(info, 5), b1 = arg_d(info, 6), b2 = arg_d(info, 7), eps = arg_d(info, 8),
         wd = arg_d(info, 9), step = arg_d(info, 10);
  int32_t pid = store_alloc(n), mid = store_alloc(n), vid = store_alloc(n);
  float* po = (float*)store_ptr(pid);
  float* mo = (float*)store_ptr(mid);
  float* vo = (float*)store_ptr(vid);
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  const float decay = (float)(1 - lr * wd), fb1 = (float)b1, fb2 = (float)b2;
  const float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1 / std::sqrt(bc2)), feps = (float)eps;
  const SimdOps& s = simd();
  parallel_elems(n, 32768, [&](int64_t b, int64_t e) {
    s.adamw(p + b, g + b, m + b, v + b, po + b, mo + b, vo + b, e - b, decay, fb1, fb2, step_size,
            inv_sqrt_bc2, feps);
  });
  return ret_ids(info, {pid, mid, vid});
}

}  // namespace

void init_fused_misc(Napi::Env env, Napi::Object exports) {
  def(env, exports, "sce", Sce);
  def(env, exports, "sceGrad", SceGrad);
  def(env, exports, "gelu", Gelu);
  def(env, exports, "geluGrad", GeluGrad);
  def(env, exports, "swiglu", Swiglu);
  def(env, exports, "swigluGrad", SwigluGrad);
  def(env, exports, "adamw", AdamW);
}

}  // namespace vlmix
