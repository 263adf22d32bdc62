// Internal: the per-ISA pieces of the blocked GEMM (packing + micro-kernels).
// gemm.cc owns blocking, threading and dispatch; gemm_<isa>.cc provide these.
#pragma once
#include <cstdint>

namespace vlmix {
namespace gemm {

// The driver never passes kc above this (macro_direct keeps a stack buffer).
constexpr int64_t kMaxKC = 256;

struct Kernel {
  const char* name;
  int mr, nr;  // register tile: mr rows of C by nr columns
  // Packs op(A)[0:mc, 0:kc] as ceil(mc/mr) panels; panel p holds, for each k,
  // the mr values op(A)[p*mr + i][k] (zero padded past mc).
  void (*pack_a)(bool trans, int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst);
  // Packs op(B)[0:kc, 0:nc] as ceil(nc/nr) panels; panel p holds, for each k,
  // the nr values op(B)[k][p*nr + j] (zero padded past nc).
  void (*pack_b)(bool trans, int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst);
  // C[0:mc, 0:nc] = alpha * (packed A @ packed B) + beta * C; beta == 0 ignores C.
  void (*macro)(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb,
                float* C, int64_t ldc, float alpha, float beta);
  // Optional (may be null): like macro, but reads op(A)[0:mc, 0:kc] in place
  // (A at (row 0, k 0), leading dimension lda). Used when the N block is a
  // single B panel, so packed A would be read only once.
  void (*macro_direct)(bool transA, int64_t mc, int64_t nc, int64_t kc, const float* A,
                       int64_t lda, const float* pb, float* C, int64_t ldc, float alpha,
                       float beta);
  // k values per packed 4-byte slot (bf16 packs pairs): a packed panel of kc k values holds
  // ceil(kc / kgroup) slots per row, so panel p of a packed operand starts at p * width * that.
  int kgroup = 1;
};

// Generic-width packers (defined in gemm_avx2.cc, AVX2 code): the AVX-512
// kernel reuses them, since packing is memory-bound. Any mr, nr.
void pack_a_x86(int mr, bool trans, int64_t mc, int64_t kc, const float* A, int64_t lda,
                float* dst);
void pack_b_x86(int nr, bool trans, int64_t kc, int64_t nc, const float* B, int64_t ldb,
                float* dst);

// nullptr when the ISA file was compiled for a non-x86 target.
const Kernel* kernel_avx512();
const Kernel* kernel_avx2();
// bf16 products (AVX512-BF16): op(A), op(B) rounded to bf16 while packing, fp32 sums and output.
const Kernel* kernel_avx512bf16();

}  // namespace gemm
}  // namespace vlmix
