// Fused elementwise/row kernels: softmax cross-entropy, GELU, SwiGLU, AdamW.
#include "common.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {

// Rows split over threads; the forward's max and exp-sum vectorised (simd.h).
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

// The backward's exp and sum are the softmax kernel's (vectorised), as the forward's.
void sce_backward(float* d, const float* dl, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
  const SimdOps& sv = simd();
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      float* dr = d + i * V;
      if (lb[i] == ign) { std::memset(dr, 0, V * 4); continue; }
      const float* r = lg + i * V;
      const float m = sv.row_max(r, V);
      sv.scale(dr, V, (float)(dl[i] / sv.exp_shift_sum(r, dr, V, m)));
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
