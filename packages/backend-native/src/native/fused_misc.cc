// Fused elementwise/row kernels: softmax cross-entropy, GELU, SwiGLU, AdamW.
#include "common.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {

// Rows split over threads; each row's max and exp-sum vectorised (simd.h).
void sce_forward(float* loss, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
  const SimdOps& sv = simd();
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      if (lb[i] == ign) { loss[i] = 0; continue; }
      const float* r = lg + i * V;
      const float m = sv.row_max(r, V);
      const double s = sv.exp_shift_sum_only(r, V, m);
      loss[i] = (lb[i] < 0 || lb[i] >= V) ? NAN : (float)(std::log(s) + m - r[lb[i]]);
    }
  });
}

void sce_backward(float* d, const float* dl, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
  const SimdOps& sv = simd();
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      float* dr = d + i * V;
      if (lb[i] == ign) { std::memset(dr, 0, V * 4); continue; }
      const float* r = lg + i * V;
      const float m = sv.row_max(r, V);
      const double s = sv.exp_shift_sum(r, dr, V, m);
      sv.scale(dr, V, (float)(dl[i] / s));
      if (lb[i] >= 0 && lb[i] < V) dr[lb[i]] -= dl[i];
    }
  });
}

// GELU and SwiGLU: vectorised (simd.h), split in 1024-element-aligned chunks.
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form) {
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.gelu(x + b, y + b, e - b, tanh_form); });
}

void gelu_backward(float* dx, const float* dy, const float* x, int64_t n, bool tanh_form) {
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.gelu_grad(dy + b, x + b, dx + b, e - b, tanh_form); });
}

void swiglu_forward(float* y, const float* g, const float* u, int64_t n) {
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) { s.swiglu(g + b, u + b, y + b, e - b); });
}

void swiglu_backward(float* dg, float* du, const float* dy, const float* g, const float* u, int64_t n) {
  const SimdOps& s = simd();
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) {
    s.swiglu_grad(dy + b, g + b, u + b, dg + b, du + b, e - b);
  });
}

void adamw(const AdamWTensor* ts, int64_t count, const AdamWHyper& h) {
  const SimdOps& s = simd();
  for (int64_t k = 0; k < count; k++) {
    const AdamWTensor& t = ts[k];
    parallel_elems(t.n, 32768, [&](int64_t b, int64_t e) {
      s.adamw(t.p + b, t.g + b, t.m + b, t.v + b, t.po + b, t.mo + b, t.vo + b, e - b, h.decay, h.b1, h.b2,
              h.step_size, h.inv_sqrt_bc2, h.eps);
    });
  }
}

}  // namespace vlmix
