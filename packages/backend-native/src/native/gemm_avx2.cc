// AVX2+FMA GEMM pieces: operand packing (shared with the AVX-512 kernel) and
// 6 x 16 micro-kernels. Compile with: -mavx2 -mfma
#include "gemm_kernels.h"
#include "gemm_macro.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cmath>

namespace vlmix {
namespace gemm {
namespace {

// Transposes an 8x8 block: src[r] points at 8 floats of row r; on return
// out[c] holds column c (element r = src[r][c]).
inline void transpose8(const float* const src[8], __m256 out[8]) {
  __m256 r0 = _mm256_loadu_ps(src[0]), r1 = _mm256_loadu_ps(src[1]);
  __m256 r2 = _mm256_loadu_ps(src[2]), r3 = _mm256_loadu_ps(src[3]);
  __m256 r4 = _mm256_loadu_ps(src[4]), r5 = _mm256_loadu_ps(src[5]);
  __m256 r6 = _mm256_loadu_ps(src[6]), r7 = _mm256_loadu_ps(src[7]);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  out[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  out[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  out[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  out[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  out[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  out[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  out[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  out[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

inline __m256i lane_mask(int n) {  // first n of 8 lanes set
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Stores the first n (1..8) lanes. Avoids vmaskmovps stores, which are
// microcoded and slow on AMD cores.
inline void store_n(float* d, __m256 v, int n) {
  if (n == 8) return _mm256_storeu_ps(d, v);
  __m128 x = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(d, x);
    d += 4;
    n -= 4;
    x = _mm256_extractf128_ps(v, 1);
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(d), x);
    d += 2;
    n -= 2;
    x = _mm_movehl_ps(x, x);
  }
  if (n == 1) _mm_store_ss(d, x);
}

alignas(64) const float kZeros[16] = {};

// Gathers w "rows" of a strided source into panels: dst[k*w_pad + r] =
// src[r*ld + k] for r < nrows, k < kc; rows nrows..w_pad-1 are zero.
// Used for A (not transposed) and B (transposed), where each packed k-slice
// needs values from `w_pad` different rows of the source.
void pack_strided(int64_t nrows, int w_pad, int64_t kc, const float* src, int64_t ld,
                  float* dst) {
  int64_t k8 = kc & ~int64_t(7);
  for (int g = 0; g < w_pad; g += 8) {  // groups of 8 rows
    int w = w_pad - g < 8 ? w_pad - g : 8;
    const float* rows[8];
    int64_t stride[8];
    for (int r = 0; r < 8; ++r) {
      bool valid = r < w && g + r < nrows;
      rows[r] = valid ? src + (g + r) * ld : kZeros;
      stride[r] = valid ? 8 : 0;
    }
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 col[8];
      transpose8(rows, col);
      for (int c = 0; c < 8; ++c) store_n(dst + (k + c) * w_pad + g, col[c], w);
      for (int r = 0; r < 8; ++r) rows[r] += stride[r];
    }
    for (int64_t k = k8; k < kc; ++k)
      for (int r = 0; r < w; ++r)
        dst[k * w_pad + g + r] = g + r < nrows ? src[(g + r) * ld + k] : 0.f;
  }
}

// Copies contiguous runs: dst[k*w_pad + j] = src[k*ld + j] for j < ncols,
// zero for ncols <= j < w_pad. Used for A (transposed) and B (not transposed).
void pack_contig(int64_t ncols, int w_pad, int64_t kc, const float* src, int64_t ld, float* dst) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + k * ld;
    float* d = dst + k * w_pad;
    for (int j = 0; j < w_pad; j += 8) {
      int w = w_pad - j < 8 ? w_pad - j : 8;
      int64_t n = ncols - j;
      int nv = n <= 0 ? 0 : (n >= w ? w : (int)n);
      if (nv == 8) {
        _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
      } else {  // masked lanes read nothing, so no access past the source row
        store_n(d + j, _mm256_maskload_ps(s + j, lane_mask(nv)), w);
      }
    }
  }
}

}  // namespace

namespace {

// Packs the panels of a source whose packed k-slices are contiguous in
// memory (A^T, B). Goes 8 source rows at a time across all panels, so the
// source is read as 8 sequential streams instead of one row per cache line
// (page-strided reads were ~10% of a 1024^3 GEMM).
void pack_contig_panels(int w, int64_t kc, int64_t n, const float* src, int64_t ld, float* dst) {
  for (int64_t k = 0; k < kc; k += 8) {
    const int64_t kb = kc - k < 8 ? kc - k : 8;
    float* d = dst + k * w;
    for (int64_t j = 0; j < n; j += w, d += w * kc)
      pack_contig(n - j < w ? n - j : w, w, kb, src + k * ld + j, ld, d);
  }
}

}  // namespace

void pack_a_x86(int mr, bool trans, int64_t mc, int64_t kc, const float* A, int64_t lda,
                float* dst) {
  if (trans) return pack_contig_panels(mr, kc, mc, A, lda, dst);
  for (int64_t i = 0; i < mc; i += mr, dst += mr * kc)
    pack_strided(mc - i < mr ? mc - i : mr, mr, kc, A + i * lda, lda, dst);
}

void pack_b_x86(int nr, bool trans, int64_t kc, int64_t nc, const float* B, int64_t ldb,
                float* dst) {
  if (!trans) return pack_contig_panels(nr, kc, nc, B, ldb, dst);
  for (int64_t j = 0; j < nc; j += nr, dst += nr * kc)
    pack_strided(nc - j < nr ? nc - j : nr, nr, kc, B + j * ldb, ldb, dst);
}

namespace {

constexpr int MR = 6, NR = 16;  // 12 ymm accumulators, the usual AVX2 shape

// One MR x NR tile of C; A addressing as in the AVX-512 kernel: element
// (i, k) at pa[i + k*as], or with ROWS at pa[i*as + k]. Rows >= mr /
// cols >= nr are computed (on padding) but not stored.
template <bool ROWS>
void micro(int64_t kc, const float* pa, int64_t as, const float* pb, float* C, int64_t ldc,
           int mr, int nr, float alpha, float beta) {
  if (kc >= 64)  // fetch the C tile early (see the AVX-512 kernel)
    for (int i = 0; i < mr; ++i) _mm_prefetch((const char*)(C + i * ldc), _MM_HINT_T0);
  __m256 c[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, pb += NR) {
    __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      __m256 a = _mm256_broadcast_ss(ROWS ? pa + i * as : pa + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
    pa += ROWS ? 1 : as;
  }
  // Fully unrolled with constant indices so the accumulators stay in
  // registers (a runtime-indexed loop made GCC spill them every k step).
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  alignas(32) float t[NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    float* r = C + i * ldc;
    __m256 x0 = _mm256_mul_ps(va, c[i][0]), x1 = _mm256_mul_ps(va, c[i][1]);
    if (nr == NR) {
      if (beta != 0.f) {
        x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r), x0);
        x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r + 8), x1);
      }
      _mm256_storeu_ps(r, x0);
      _mm256_storeu_ps(r + 8, x1);
    } else {  // column edge: finish in a buffer, copy the valid part
      _mm256_store_ps(t, x0);
      _mm256_store_ps(t + 8, x1);
      // std::fma keeps edge rounding identical to the vector path.
      for (int j = 0; j < nr; ++j) r[j] = beta == 0.f ? t[j] : std::fma(beta, r[j], t[j]);
    }
  }
}

struct Tile {
  template <bool ROWS>
  static void run(int64_t kc, const float* pa, int64_t as, const float* pb, float* C, int64_t ldc, int mr,
                  int nr, float alpha, float beta) {
    micro<ROWS>(kc, pa, as, pb, C, ldc, mr, nr, alpha, beta);
  }
};

constexpr Kernel kAvx2 = Macro<MR, NR, Tile>::kernel("avx2");

}  // namespace

const Kernel* kernel_avx2() { return &kAvx2; }

}  // namespace gemm
}  // namespace vlmix

#else  // non-x86: no AVX2 kernel

namespace vlmix {
namespace gemm {
const Kernel* kernel_avx2() { return nullptr; }
}  // namespace gemm
}  // namespace vlmix

#endif
