// Single-precision GEMM for the native backend.
//
// Build notes for binding.gyp (sources and per-file flags):
//   threadpool.cc    : no extra flags (needs -pthread, which node-gyp adds)
//   gemm.cc          : no extra flags (baseline x86-64; dispatches at run time)
//   gemm_avx2.cc     : -mavx2 -mfma
//   gemm_avx512.cc   : -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma
//   gemm_kernels.h   : internal header shared by the three gemm*.cc files
//   Link with -ldl (gemm.cc may dlopen libopenblas, see VLMIX_GEMM below).
//   Never use -march=native: the addon must run on AVX2-only CPUs.
//   The per-ISA files compile to empty units on non-x86 targets.
//
// Env (read once): VLMIX_GEMM=own|openblas|auto (default auto),
// VLMIX_GEMM_ISA=avx512|avx2|scalar (cap the kernel ISA; for tests),
// VLMIX_NUM_THREADS (see threadpool.h).
#pragma once
#include <cstdint>

namespace vlmix {

// Row-major. op(A) is MxK, op(B) is KxN, C is MxN:
//   C = alpha * op(A) @ op(B) + beta * C
// beta == 0 overwrites C (NaN/Inf already in C are ignored).
// Result bits do not depend on the thread count.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           float* C, int64_t ldc);

// `batch` independent GEMMs; operand i starts at X + i*strideX.
// A stride of 0 broadcasts that operand (strideC must not be 0 when batch > 1).
void sgemm_batched(bool transA, bool transB, int64_t batch, int64_t M, int64_t N,
                   int64_t K, float alpha, const float* A, int64_t lda, int64_t strideA,
                   const float* B, int64_t ldb, int64_t strideB, float beta, float* C,
                   int64_t ldc, int64_t strideC);

// Kernel used for large problems: "avx512", "avx2", "openblas" or "scalar".
const char* gemm_impl_name();
// bf16 matmul precision (AVX512-BF16): blocked GEMMs round op(A), op(B) to bf16 and sum in fp32. Matrix-vector
// shapes and the OpenBLAS route stay fp32. set_gemm_bf16(true) returns false when the CPU lacks it.
bool gemm_bf16_supported();
bool set_gemm_bf16(bool on);
bool gemm_bf16();

}  // namespace vlmix
