// Fused elementwise/row kernels: softmax cross-entropy, GELU, SwiGLU, AdamW.
#include "common.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {

float sce_row_loss(const float* logits, int64_t V, int32_t label) {
  const SimdOps& sv = simd();
  const float m = sv.row_max(logits, V);
  const double s = sv.exp_shift_sum_only(logits, V, m);
  return (label < 0 || label >= V) ? NAN : (float)(std::log(s) + m - logits[label]);
}

void sce_row_grad(float* d, const float* logits, int64_t V, int32_t label, float scale) {
  const SimdOps& sv = simd();
  const float m = sv.row_max(logits, V);
  sv.scale(d, V, (float)(scale / sv.exp_shift_sum(logits, d, V, m)));
  if (label >= 0 && label < V) d[label] -= scale;
}

// Rows split over threads; max and exp-sum vectorised (simd.h).
void sce_forward(float* loss, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
  parallel_for(N, sce_row_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) loss[i] = lb[i] == ign ? 0.f : sce_row_loss(lg + i * V, V, lb[i]);
  });
}

void sce_backward(float* d, const float* dl, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
  parallel_for(N, sce_row_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      if (lb[i] == ign) std::memset(d + i * V, 0, V * 4);
      else sce_row_grad(d + i * V, lg + i * V, V, lb[i], dl[i]);
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

// All tensors in one parallel region: the concatenated elements split into equal chunks (at least 32768
// elements each), so many small parameters cost one dispatch. Elementwise: any split gives the same bits.
void adamw(const AdamWTensor* ts, int64_t count, const AdamWHyper& h) {
  const SimdOps& s = simd();
  std::vector<int64_t> start(count + 1, 0);  // start[k]: offset of tensor k in the concatenation
  for (int64_t k = 0; k < count; k++) start[k + 1] = start[k] + ts[k].n;
  const int64_t total = start[count];
  parallel_elems(total, 32768, [&](int64_t b, int64_t e) {
    int64_t k = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; b < e; k++) {
      const AdamWTensor& t = ts[k];
      const int64_t i0 = b - start[k], i1 = std::min(e, start[k + 1]) - start[k];
      s.adamw(t.p + i0, t.g + i0, t.m + i0, t.v + i0, t.po + i0, t.mo + i0, t.vo + i0, i1 - i0, h.decay, h.b1,
              h.b2, h.step_size, h.inv_sqrt_bc2, h.eps);
      b = start[k] + i1;
    }
  });
}

}  // namespace vlmix
