// Vectorised elementwise / row kernels, compiled once per ISA (simd_base.cc: baseline x86-64 or
// any target; simd_avx2.cc: -mavx2 -mfma; simd_avx512.cc: AVX-512) and chosen at run time.
// Every function works on contiguous float arrays, processes element i with the same instruction
// sequence wherever it lies in the range (so results never depend on how ranges are split), and is
// single-threaded: callers split the work with parallel_for.
// Env VLMIX_SIMD_ISA=avx512|avx2|scalar caps the ISA (for tests).
#pragma once
#include <cstdint>

namespace vlmix {

struct SimdOps {
  const char* name;
  // y = f(x) over n elements (float32 math; ~1-2 ulp polynomial exp/tanh).
  void (*exp)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*gelu)(const float* x, float* y, int64_t n, bool tanh_form);
  void (*gelu_grad)(const float* dy, const float* x, float* dx, int64_t n, bool tanh_form);
  void (*swiglu)(const float* g, const float* u, float* y, int64_t n);
  void (*swiglu_grad)(const float* dy, const float* g, const float* u, float* dg, float* du, int64_t n);
  void (*adamw)(const float* p, const float* g, const float* m, const float* v, float* po, float* mo,
                float* vo, int64_t n, float decay, float b1, float b2, float step_size,
                float inv_sqrt_bc2, float eps);
  // Row helpers (fixed summation order: 16 lanes, combined lane 0..15).
  float (*row_max)(const float* x, int64_t n);
  // y = exp(x - m); returns sum(y) (lanes combined in double).
  double (*exp_shift_sum)(const float* x, float* y, int64_t n, float m);
  // y = (x - m) - ls  (log-softmax tail); y = y * s.
  void (*sub2)(const float* x, float* y, int64_t n, float m, float ls);
  void (*scale)(float* y, int64_t n, float s);
  // sum(exp(x - m)) without storing the terms (cross-entropy forward; lanes combined in double).
  double (*exp_shift_sum_only)(const float* x, int64_t n, float m);
  // Softmax backward of one row, in place: dp = (p * (dp - sum(p * dp))) * scale, the sum in double (lanes as
  // row_sum).
  void (*softmax_grad_row)(const float* p, float* dp, int64_t n, float scale);
  // Row statistics in double, 16 lanes combined in order: sum(x); sum((x - mean)^2).
  double (*row_sum)(const float* x, int64_t n);
  double (*row_sq_dev)(const float* x, int64_t n, double mean);
  // Norm backward of one row (xhat = (x - mean) * rstd, g = dy * gamma):
  //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (mean(g) dropped when rms)
  //   dgamma[j] += dy * xhat, dbeta[j] += dy (dbeta null when rms), in double.
  void (*norm_row_grad)(const float* dy, const float* x, const float* gamma, int64_t n, double mean,
                        double rstd, bool rms, float* dx, double* dgamma, double* dbeta);
  // Small-N products (N <= 8) on contiguous rows, for convolutions with few output channels:
  //   mm_small_n : C[m, 0:N] = A[m, 0:K] . Bt[0:N, 0:K]          (Bt is B transposed, [N, K])
  //   mm_small_k : C[m, 0:Kc] = sum_n A[m, n] * Bt[n, 0:Kc]     (A is [M, N], Bt [N, Kc])
  //   mm_small_acc: Acc[n, 0:K] += sum_m B[m, n] * A[m, 0:K]    (A [M, K] ld lda, B [M, N])
  void (*mm_small_n)(const float* A, int64_t lda, const float* Bt, float* C, int64_t ldc, int64_t M,
                     int64_t N, int64_t K);
  void (*mm_small_k)(const float* A, const float* Bt, float* C, int64_t ldc, int64_t M, int64_t N,
                     int64_t Kc);
  void (*mm_small_acc)(const float* A, int64_t lda, const float* B, float* Acc, int64_t M, int64_t N,
                       int64_t K);
  // dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (4-byte elements).
  void (*transpose)(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd, int64_t rows,
                    int64_t cols);
};

const SimdOps& simd();

// Per-ISA tables (nullptr when that file was compiled for a target without the ISA).
const SimdOps* simd_ops_base();
const SimdOps* simd_ops_avx2();
const SimdOps* simd_ops_avx512();

}  // namespace vlmix
