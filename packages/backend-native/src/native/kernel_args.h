// Plain argument types of the compute kernels, shared by the CPU kernels (src/native) and the CUDA
// launchers (src/cuda): no N-API and no containers, so g++ and nvcc both take this header.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace vlmix {

// Every element is 4 bytes; bool is stored as int32 0/1 so shape ops never care about dtype.
enum DType : int { F32 = 0, I32 = 1 };

// JS ToInt32 semantics (what an Int32Array store does to a double).
inline int32_t to_i32(double d) {
  if (!std::isfinite(d)) return 0;
  d = std::trunc(d);
  double m = std::fmod(d, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

// The 4 bytes that storing `v` as `dtype` writes (a Float32Array or Int32Array element).
inline uint32_t bits_of(int dtype, double v) {
  uint32_t b;
  if (dtype == F32) { float f = (float)v; std::memcpy(&b, &f, 4); }
  else { int32_t k = to_i32(v); std::memcpy(&b, &k, 4); }
  return b;
}

// Attention geometry: q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], bias [Bb, Hb, Tb, Tk]
// (each of Bb, Hb, Tb is 1 = broadcast or the full extent).
struct AttnGeom {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv, Bb, Hb, Tb;
  float scale;
  bool causal;
};

// NHWC convolution geometry (tfjs Conv2DInfo): x [B, H, W, Cin], w [KH, KW, Cin, Cout], y [B, OH, OW, Cout].
struct ConvGeom {
  int64_t B, H, W, Cin, KH, KW, Cout, OH, OW, sh, sw, pt, pl, dh, dw;
  int64_t rows() const { return B * OH * OW; }
  int64_t cols() const { return KH * KW * Cin; }
};

// One AdamW step's constants, as float32 (bias corrections folded in; see kernel-names.ts AdamW).
struct AdamWHyper {
  float decay, b1, b2, step_size, inv_sqrt_bc2, eps;
};
inline AdamWHyper adamw_hyper(double lr, double b1, double b2, double eps, double weight_decay, double step) {
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  return AdamWHyper{(float)(1 - lr * weight_decay), (float)b1, (float)b2, (float)(lr / bc1),
                    (float)(1 / std::sqrt(bc2)), (float)eps};
}

// One parameter tensor of a (multi-tensor) AdamW step: inputs p, g, m, v and outputs po, mo, vo.
struct AdamWTensor {
  const float* p;
  const float* g;
  const float* m;
  const float* v;
  float* po;
  float* mo;
  float* vo;
  int64_t n;
};

}  // namespace vlmix
