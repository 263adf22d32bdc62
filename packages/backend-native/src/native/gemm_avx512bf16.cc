// bf16 GEMM (AVX512-BF16, `vdpbf16ps`): fp32 in and out, op(A) and op(B) rounded to bf16 (nearest even) while
// packing, products summed in fp32: what PyTorch's CPU autocast does for a matmul, keeping fp32 outputs.
// Packed layouts hold pairs of consecutive k: A panel, per k pair, MR 32-bit words (a(i, 2p), a(i, 2p+1));
// B panel, per k pair, NR words (b(2p, j), b(2p+1, j)); an odd last k is paired with zero. Packing converts
// 16 floats per instruction (vcvtneps2bf16 / vcvtne2ps2bf16, nearest even, NaN kept) and puts the words in
// place with vector shuffles (8 x 8 word transposes where k runs are contiguous): scalar word stores made
// packing 40% of a GEMM's time at the small tier's shapes. One vdpbf16ps then adds
// a(i,2p) b(2p,j) + a(i,2p+1) b(2p+1,j) to C(i, j) for 16 columns at once.
// Compile with: -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx2 -mfma
#include "gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace vlmix {
namespace gemm {
namespace {

constexpr int MR = 8, NR = 32;

inline int64_t pairs(int64_t kc) { return (kc + 1) / 2; }

// Transposes the 8 x 8 block of 32-bit words r[0..8) in place: r[j] becomes (r[0][j], ..., r[7][j]).
inline void transpose8x8(__m256i r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps((__m256)r[i], (__m256)r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps((__m256)r[i], (__m256)r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = (__m256i)_mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = (__m256i)_mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// Interleave index: [lo0, hi0, lo1, hi1, ...] from _mm512_cvtne2ps_pbh(hi, lo) = [lo0..lo15, hi0..hi15].
inline __m512i interleave16() {
  alignas(64) static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                               8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  return _mm512_load_si512(idx);
}

// Panels of W values whose k runs are contiguous (value q at X + (i0 + q) * ld): per 8 k pairs, each group of 8
// values converts 16 floats a value and transposes the 8 x 8 pair words into place. Past `width` values and
// past kc, zeros.
template <int W>
void pack_rows(int64_t width, int64_t kc, const float* X, int64_t ld, uint32_t* d) {
  const int64_t kp = pairs(kc);
  for (int64_t p0 = 0; p0 < kp; p0 += 8) {
    const int64_t k0 = 2 * p0, n = kc - k0 < 16 ? kc - k0 : 16;
    const __mmask16 m = n == 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    const int np = kp - p0 < 8 ? (int)(kp - p0) : 8;
    for (int g = 0; g < W; g += 8) {
      __m256i r[8];
      for (int q = 0; q < 8; ++q)
        r[q] = g + q < width ? (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, X + (g + q) * ld + k0)) : _mm256_setzero_si256();
      transpose8x8(r);
      for (int j = 0; j < np; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + (p0 + j) * W + g), r[j]);
    }
  }
}

// Panels of W values that lie contiguously in rows of k (value q of row k at X + k * ld + q): rows 2p and 2p + 1
// convert together and interleave into the pair words. Past `width` values, and the row past an odd kc, zeros.
template <int W>
void pack_cols(int64_t width, int64_t kc, const float* X, int64_t ld, uint32_t* d) {
  const __m512i perm = interleave16();
  const int64_t kp = pairs(kc);
  for (int64_t p = 0; p < kp; ++p) {
    const float* lo = X + (2 * p) * ld;
    const float* hi = 2 * p + 1 < kc ? lo + ld : nullptr;
    for (int j = 0; j < W; j += 16) {
      const int64_t n = width - j;
      const __mmask16 m = n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
      const __m512 l = _mm512_maskz_loadu_ps(m, lo + j);
      const __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi + j) : _mm512_setzero_ps();
      const __m512i v = _mm512_permutexvar_epi16(perm, (__m512i)_mm512_cvtne2ps_pbh(h, l));
      _mm512_mask_storeu_epi32(d + p * W + j, W - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (W - j)) - 1), v);
    }
  }
}

// Packs op(X)[0:n, 0:kc] into panels of W values per k pair; element (i, k) is X[k * ld + i] when kMajor
// (A^T, or B as stored) and X[i * ld + k] otherwise (A as stored, or B^T). Panel values past n are 0.
template <int W>
void pack_panels(bool kMajor, int64_t n, int64_t kc, const float* X, int64_t ld, float* dst) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const int64_t kp = pairs(kc);
  for (int64_t i0 = 0; i0 < n; i0 += W, d += W * kp) {
    const int64_t width = n - i0 < W ? n - i0 : W;
    if (kMajor) pack_cols<W>(width, kc, X + i0, ld, d);
    else pack_rows<W>(width, kc, X + i0 * ld, ld, d);
  }
}

void pack_a(bool t, int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst) { pack_panels<MR>(t, mc, kc, A, lda, dst); }
void pack_b(bool t, int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) { pack_panels<NR>(!t, nc, kc, B, ldb, dst); }

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

constexpr Kernel kBf16 = {"avx512-bf16", MR, NR, pack_a, pack_b, macro, nullptr, 2};

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
