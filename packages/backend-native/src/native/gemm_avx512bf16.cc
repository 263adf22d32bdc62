// bf16 GEMM (AVX512-BF16, `vdpbf16ps`): fp32 in and out, op(A) and op(B) rounded to bf16 (nearest even) while
// packing, products summed in fp32: what PyTorch's CPU autocast does for a matmul, keeping fp32 outputs.
// Packed layouts hold pairs of consecutive k: A panel, per k pair, MR 32-bit words (a(i, 2p), a(i, 2p+1));
// B panel, per k pair, NR words (b(2p, j), b(2p+1, j)); an odd last k is paired with zero. One vdpbf16ps
// then adds a(i,2p) b(2p,j) + a(i,2p+1) b(2p+1,j) to C(i, j) for 16 columns at once.
// Compile with: -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx2 -mfma
#include <cstring>

#include "gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace vlmix {
namespace gemm {
namespace {

constexpr int MR = 8, NR = 32;

// Round to nearest even (NaN kept a NaN).
inline uint16_t bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline uint32_t pair(float lo, float hi) { return uint32_t(bf16(lo)) | (uint32_t(bf16(hi)) << 16); }

inline int64_t pairs(int64_t kc) { return (kc + 1) / 2; }

void pack_a(bool t, int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const int64_t kp = pairs(kc);
  auto at = [&](int64_t r, int64_t k) { return r < mc && k < kc ? (t ? A[k * lda + r] : A[r * lda + k]) : 0.f; };
  for (int64_t i0 = 0; i0 < mc; i0 += MR, d += MR * kp)
    for (int64_t p = 0; p < kp; ++p)
      for (int i = 0; i < MR; ++i) d[p * MR + i] = pair(at(i0 + i, 2 * p), at(i0 + i, 2 * p + 1));
}

void pack_b(bool t, int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const int64_t kp = pairs(kc);
  auto at = [&](int64_t k, int64_t c) { return c < nc && k < kc ? (t ? B[c * ldb + k] : B[k * ldb + c]) : 0.f; };
  for (int64_t j0 = 0; j0 < nc; j0 += NR, d += NR * kp)
    for (int64_t p = 0; p < kp; ++p)
      for (int j = 0; j < NR; ++j) d[p * NR + j] = pair(at(2 * p, j0 + j), at(2 * p + 1, j0 + j));
}

// One MR x (16*NV) tile of C from an A panel and a B panel (kp k pairs each).
template <int NV>
void micro(int64_t kp, const uint32_t* pa, const uint32_t* pb, float* C, int64_t ldc, int mr, int nr, float alpha,
           float beta) {
  __m512 c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p, pa += MR, pb += NR) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(pb + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(pa[i]));
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, b[v]);
    }
  }
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) {
    const int n = nr - 16 * v;
    m[v] = n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < mr; ++i) {
    float* r = C + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512 x = _mm512_mul_ps(va, c[i][v]);
      if (beta != 0.f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v], r + 16 * v), x);
      _mm512_mask_storeu_ps(r + 16 * v, m[v], x);
    }
  }
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* C, int64_t ldc, float alpha,
           float beta) {
  const int64_t kp = pairs(kc);
  const uint32_t* a = reinterpret_cast<const uint32_t*>(pa);
  const uint32_t* b = reinterpret_cast<const uint32_t*>(pb);
  for (int64_t i = 0; i < mc; i += MR, a += MR * kp) {
    const int mr = mc - i < MR ? (int)(mc - i) : MR;
    for (int64_t j = 0; j < nc; j += NR) {
      const int nr = nc - j < NR ? (int)(nc - j) : NR;
      if (nr > 16) micro<2>(kp, a, b + j * kp, C + i * ldc + j, ldc, mr, nr, alpha, beta);
      else micro<1>(kp, a, b + j * kp, C + i * ldc + j, ldc, mr, nr, alpha, beta);
    }
  }
}

constexpr Kernel kBf16 = {"avx512-bf16", MR, NR, pack_a, pack_b, macro, nullptr};

}  // namespace

const Kernel* kernel_avx512bf16() { return &kBf16; }

}  // namespace gemm
}  // namespace vlmix

#else

namespace vlmix {
namespace gemm {
const Kernel* kernel_avx512bf16() { return nullptr; }
}  // namespace gemm
}  // namespace vlmix

#endif
