// Internal: the blocking loops shared by the per-ISA GEMM files. Each gemm_<isa>.cc includes this and
// instantiates Macro<MR, NR, Tile> with its own register tile. The template lives in an anonymous
// namespace on purpose: every ISA file gets its own copy compiled with its own flags, so the linker can
// never merge an AVX-512 instantiation into the AVX2 path.
#pragma once
#include <cstdint>

#include "gemm_kernels.h"

namespace vlmix {
namespace gemm {
namespace {

// Tile::run<ROWS>(kc, a, a_stride, packed_b, C, ldc, mr, nr, alpha, beta) computes one mr x nr tile.
template <int MR, int NR, class Tile>
struct Macro {
  // Walks C row strip by row strip: the A micro-panel stays in L1, packed B streams from L2/L3, and C
  // is written as a few sequential streams (this matters when K is small and C traffic dominates).
  static void packed(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* C,
                     int64_t ldc, float alpha, float beta) {
    for (int64_t i = 0; i < mc; i += MR, pa += MR * kc) {
      int mr = mc - i < MR ? (int)(mc - i) : MR;
      for (int64_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        Tile::template run<false>(kc, pa, MR, pb + j * kc, C + i * ldc + j, ldc, mr, nr, alpha, beta);
      }
    }
  }

  // Same, reading op(A) in place (see Kernel::macro_direct): used when A would be used by one B panel
  // only, so packing it cannot pay off. A partial last row strip is packed, since reading MR rows
  // there could run past the end of A.
  static void direct(bool trans, int64_t mc, int64_t nc, int64_t kc, const float* A, int64_t lda,
                     const float* pb, float* C, int64_t ldc, float alpha, float beta) {
    alignas(64) float edge[MR * kMaxKC];
    for (int64_t i = 0; i < mc; i += MR) {
      int mr = mc - i < MR ? (int)(mc - i) : MR;
      const float* a = trans ? A + i : A + i * lda;
      for (int64_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        float* c = C + i * ldc + j;
        const float* b = pb + j * kc;
        if (mr < MR) {
          if (j == 0) pack_a_x86(MR, trans, mr, kc, a, lda, edge);
          Tile::template run<false>(kc, edge, MR, b, c, ldc, mr, nr, alpha, beta);
        } else if (trans) {
          Tile::template run<false>(kc, a, lda, b, c, ldc, mr, nr, alpha, beta);
        } else {
          Tile::template run<true>(kc, a, lda, b, c, ldc, mr, nr, alpha, beta);
        }
      }
    }
  }

  static void pack_a(bool t, int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst) {
    pack_a_x86(MR, t, mc, kc, A, lda, dst);
  }
  static void pack_b(bool t, int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) {
    pack_b_x86(NR, t, kc, nc, B, ldb, dst);
  }

  static constexpr Kernel kernel(const char* name) { return {name, MR, NR, pack_a, pack_b, packed, direct, 1}; }
};

}  // namespace
}  // namespace gemm
}  // namespace vlmix
