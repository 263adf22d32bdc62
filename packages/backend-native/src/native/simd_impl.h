// Body of the per-ISA SimdOps tables (see simd.h). Included by simd_base.cc / simd_avx2.cc /
// simd_avx512.cc inside a distinct namespace; written as plain loops over contiguous arrays so the
// compiler vectorises them for the ISA of the including file. No -ffast-math: polynomial
// evaluation order is explicit.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

inline float bits_to_f(int32_t i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}

// exp for float: Cephes expf reduction + degree-5 polynomial (~1 ulp). Below -87.34 (denormal
// results) returns 0; above 88.72 returns inf; NaN propagates.
inline float exp_f(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r) + r + 1.0f;
  int32_t n = (int32_t)fn;
  y = y * bits_to_f((n + 127) << 23);
  y = x > 88.72283935546875f ? INFINITY : y;
  y = x < lo ? 0.0f : y;
  y = x != x ? x : y;
  return y;
}

// tanh: odd polynomial below 0.625 (Cephes tanhf), 1 - 2/(exp(2|x|)+1) above.
inline float tanh_f(float x) {
  float a = std::fabs(x);
  float z = x * x;
  float ps = -5.70498872745e-3f;
  ps = ps * z + 2.06390887954e-2f;
  ps = ps * z - 5.37397155531e-2f;
  ps = ps * z + 1.33314422036e-1f;
  ps = ps * z - 3.33332819422e-1f;
  float small = x + x * z * ps;
  float e = exp_f(2.0f * (a < 9.0f ? a : 9.0f));
  float big = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  return a < 0.625f ? small : big;
}

inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

// erf as tfjs-backend-cpu computes it (Abramowitz & Stegun 7.1.26, |err| < 1.5e-7), in float.
inline float erf_f(float x) {
  const float p = 0.3275911f, a1 = 0.254829592f, a2 = -0.284496736f, a3 = 1.421413741f,
              a4 = -1.453152027f, a5 = 1.061405429f;
  float v = std::fabs(x);
  float t = 1.0f / (1.0f + p * v);
  float q = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t;
  return std::copysign(1.0f - q * exp_f(-v * v), x);
}

constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f,
                kInvSqrt2Pi = 0.3989422804014327f;

void k_exp(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = exp_f(x[i]);
}
void k_tanh(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = tanh_f(x[i]);
}
void k_sigmoid(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = sigmoid_f(x[i]);
}

void k_gelu(const float* x, float* y, int64_t n, bool th) {
  if (th) {
    for (int64_t i = 0; i < n; i++) {
      float v = x[i];
      y[i] = 0.5f * v * (1.f + tanh_f(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      float v = x[i];
      y[i] = 0.5f * v * (1.f + erf_f(v * kInvSqrt2));
    }
  }
}

void k_gelu_grad(const float* dy, const float* x, float* dx, int64_t n, bool th) {
  if (th) {
    for (int64_t i = 0; i < n; i++) {
      float v = x[i];
      float t = tanh_f(kSqrt2OverPi * (v + 0.044715f * v * v * v));
      float g = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * 0.044715f * v * v);
      dx[i] = dy[i] * g;
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      float v = x[i];
      float g = 0.5f * (1.f + erf_f(v * kInvSqrt2)) + v * exp_f(-0.5f * v * v) * kInvSqrt2Pi;
      dx[i] = dy[i] * g;
    }
  }
}

void k_swiglu(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = g[i] / (1.f + exp_f(-g[i])) * u[i];
}

void k_swiglu_grad(const float* dy, const float* g, const float* u, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float s = 1.f / (1.f + exp_f(-g[i]));
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.f + g[i] * (1.f - s));
  }
}

void k_adamw(const float* p, const float* g, const float* m, const float* v, float* po, float* mo,
             float* vo, int64_t n, float decay, float b1, float b2, float step_size, float inv_sqrt_bc2,
             float eps) {
  const float c1 = 1 - b1, c2 = 1 - b2;
  // Outputs may be the inputs (AdamW in place): element i is read before it is written, and no other
  // element is touched, so there is no dependence between iterations (ivdep lets the loop vectorise
  // without the seven-pointer alias checks it otherwise gives up on).
#pragma GCC ivdep
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + c1 * gi;
    float vi = b2 * v[i] + c2 * gi * gi;
    mo[i] = mi;
    vo[i] = vi;
    po[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

constexpr int L = 16;  // lanes of the fixed-order row reductions

float k_row_max(const float* x, int64_t n) {
  float acc[L];
  for (int l = 0; l < L; l++) acc[l] = -INFINITY;
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  for (int l = 0; i + l < n; l++) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  float m = acc[0];
  for (int l = 1; l < L; l++) m = acc[l] > m ? acc[l] : m;
  return m;
}

double k_exp_shift_sum(const float* x, float* y, int64_t n, float m) {
  for (int64_t i = 0; i < n; i++) y[i] = exp_f(x[i] - m);
  double acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += (double)y[i + l];
  for (int l = 0; i + l < n; l++) acc[l] += (double)y[i + l];
  double s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  return s;
}

double k_exp_shift_sum_only(const float* x, int64_t n, float m) {
  double acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += (double)exp_f(x[i + l] - m);
  for (int l = 0; i + l < n; l++) acc[l] += (double)exp_f(x[i + l] - m);
  double s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  return s;
}

// sum over i of f(i) in double, 16 lanes combined in order (so the result never depends on vector width).
template <class F>
inline double lane_sum(int64_t n, const F& f) {
  double acc[L] = {0};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; l++) acc[l] += f(i + l);
  for (int l = 0; i + l < n; l++) acc[l] += f(i + l);
  double s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  return s;
}

double k_row_sum(const float* x, int64_t n) {
  return lane_sum(n, [&](int64_t i) { return (double)x[i]; });
}
double k_row_sq_dev(const float* x, int64_t n, double mean) {
  return lane_sum(n, [&](int64_t i) { double d = x[i] - mean; return d * d; });
}

void k_softmax_grad_row(const float* p, float* dp, int64_t n, float scale) {
  const float d = (float)lane_sum(n, [&](int64_t j) { return (double)p[j] * dp[j]; });
  for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - d) * scale;
}

void k_norm_row_grad(const float* dy, const float* x, const float* gamma, int64_t n, double mean, double rstd,
                     bool rms, float* dx, double* dg, double* db) {
  const double sum_gx = lane_sum(n, [&](int64_t j) { return (double)dy[j] * gamma[j] * ((x[j] - mean) * rstd); });
  const double sum_g = rms ? 0.0 : lane_sum(n, [&](int64_t j) { return (double)dy[j] * gamma[j]; });
  for (int64_t j = 0; j < n; j++) dg[j] += (double)dy[j] * ((x[j] - mean) * rstd);
  if (db) for (int64_t j = 0; j < n; j++) db[j] += dy[j];
  const double mg = sum_g / n, mgx = sum_gx / n;
  for (int64_t j = 0; j < n; j++) {
    const double xhat = (x[j] - mean) * rstd;
    dx[j] = (float)(rstd * ((double)dy[j] * gamma[j] - mg - xhat * mgx));
  }
}

void k_sub2(const float* x, float* y, int64_t n, float m, float ls) {
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - ls;
}
void k_scale(float* y, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) y[i] *= s;
}

template <int N>
void mm_small_n_t(const float* A, int64_t lda, const float* Bt, float* C, int64_t ldc, int64_t M,
                  int64_t K) {
  for (int64_t m = 0; m < M; m++) {
    const float* a = A + m * lda;
    float acc[N][L];
    for (int n = 0; n < N; n++)
      for (int l = 0; l < L; l++) acc[n][l] = 0.f;
    int64_t k = 0;
    for (; k + L <= K; k += L)
      for (int n = 0; n < N; n++)
        for (int l = 0; l < L; l++) acc[n][l] += a[k + l] * Bt[n * K + k + l];
    for (int l = 0; k + l < K; l++)
      for (int n = 0; n < N; n++) acc[n][l] += a[k + l] * Bt[n * K + k + l];
    for (int n = 0; n < N; n++) {
      float s = 0.f;
      for (int l = 0; l < L; l++) s += acc[n][l];
      C[m * ldc + n] = s;
    }
  }
}

void k_mm_small_n(const float* A, int64_t lda, const float* Bt, float* C, int64_t ldc, int64_t M,
                  int64_t N, int64_t K) {
  switch (N) {
    case 1: return mm_small_n_t<1>(A, lda, Bt, C, ldc, M, K);
    case 2: return mm_small_n_t<2>(A, lda, Bt, C, ldc, M, K);
    case 3: return mm_small_n_t<3>(A, lda, Bt, C, ldc, M, K);
    case 4: return mm_small_n_t<4>(A, lda, Bt, C, ldc, M, K);
    case 5: return mm_small_n_t<5>(A, lda, Bt, C, ldc, M, K);
    case 6: return mm_small_n_t<6>(A, lda, Bt, C, ldc, M, K);
    case 7: return mm_small_n_t<7>(A, lda, Bt, C, ldc, M, K);
    default: return mm_small_n_t<8>(A, lda, Bt, C, ldc, M, K);
  }
}

template <int N>
void mm_small_k_t(const float* A, const float* Bt, float* C, int64_t ldc, int64_t M, int64_t Kc) {
  for (int64_t m = 0; m < M; m++) {
    const float* a = A + m * N;
    float* c = C + m * ldc;
    for (int64_t k = 0; k < Kc; k++) {
      float s = a[0] * Bt[k];
      for (int n = 1; n < N; n++) s += a[n] * Bt[n * Kc + k];
      c[k] = s;
    }
  }
}

void k_mm_small_k(const float* A, const float* Bt, float* C, int64_t ldc, int64_t M, int64_t N,
                  int64_t Kc) {
  switch (N) {
    case 1: return mm_small_k_t<1>(A, Bt, C, ldc, M, Kc);
    case 2: return mm_small_k_t<2>(A, Bt, C, ldc, M, Kc);
    case 3: return mm_small_k_t<3>(A, Bt, C, ldc, M, Kc);
    case 4: return mm_small_k_t<4>(A, Bt, C, ldc, M, Kc);
    case 5: return mm_small_k_t<5>(A, Bt, C, ldc, M, Kc);
    case 6: return mm_small_k_t<6>(A, Bt, C, ldc, M, Kc);
    case 7: return mm_small_k_t<7>(A, Bt, C, ldc, M, Kc);
    default: return mm_small_k_t<8>(A, Bt, C, ldc, M, Kc);
  }
}

void k_mm_small_acc(const float* A, int64_t lda, const float* B, float* Acc, int64_t M, int64_t N,
                    int64_t K) {
  for (int64_t m = 0; m < M; m++) {
    const float* a = A + m * lda;
    for (int64_t n = 0; n < N; n++) {
      const float b = B[m * N + n];
      float* acc = Acc + n * K;
      for (int64_t k = 0; k < K; k++) acc[k] += b * a[k];
    }
  }
}

#if defined(__AVX2__)
inline void tr8x8(const uint32_t* s, int64_t lds, uint32_t* d, int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps((const float*)(s + 0 * lds)), r1 = _mm256_loadu_ps((const float*)(s + 1 * lds));
  __m256 r2 = _mm256_loadu_ps((const float*)(s + 2 * lds)), r3 = _mm256_loadu_ps((const float*)(s + 3 * lds));
  __m256 r4 = _mm256_loadu_ps((const float*)(s + 4 * lds)), r5 = _mm256_loadu_ps((const float*)(s + 5 * lds));
  __m256 r6 = _mm256_loadu_ps((const float*)(s + 6 * lds)), r7 = _mm256_loadu_ps((const float*)(s + 7 * lds));
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps((float*)(d + 0 * ldd), _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps((float*)(d + 1 * ldd), _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps((float*)(d + 2 * ldd), _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps((float*)(d + 3 * ldd), _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps((float*)(d + 4 * ldd), _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps((float*)(d + 5 * ldd), _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps((float*)(d + 6 * ldd), _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps((float*)(d + 7 * ldd), _mm256_permute2f128_ps(u3, u7, 0x31));
}
#else
inline void tr8x8(const uint32_t* s, int64_t lds, uint32_t* d, int64_t ldd) {
  uint32_t t[8][8];
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++) t[j][i] = s[i * lds + j];
  for (int j = 0; j < 8; j++)
    for (int i = 0; i < 8; i++) d[j * ldd + i] = t[j][i];
}
#endif

// 32x32 tiles of 8x8 register transposes; scalar edges.
void k_transpose(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd, int64_t rows,
                 int64_t cols) {
  constexpr int64_t T = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += T) {
    const int64_t i1 = i0 + T < rows ? i0 + T : rows;
    for (int64_t j0 = 0; j0 < cols; j0 += T) {
      const int64_t j1 = j0 + T < cols ? j0 + T : cols;
      int64_t i = i0;
      for (; i + 8 <= i1; i += 8) {
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8) tr8x8(src + i * lds + j, lds, dst + j * ldd + i, ldd);
        for (; j < j1; j++)
          for (int64_t ii = i; ii < i + 8; ii++) dst[j * ldd + ii] = src[ii * lds + j];
      }
      for (; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) dst[j * ldd + i] = src[i * lds + j];
    }
  }
}

const vlmix::SimdOps kOps = {
    VLMIX_SIMD_NAME, k_exp, k_tanh, k_sigmoid, k_gelu, k_gelu_grad, k_swiglu, k_swiglu_grad,
    k_adamw, k_row_max, k_exp_shift_sum, k_sub2, k_scale, k_exp_shift_sum_only, k_softmax_grad_row, k_row_sum, k_row_sq_dev,
    k_norm_row_grad, k_mm_small_n, k_mm_small_k, k_mm_small_acc, k_transpose,
};

}  // namespace
