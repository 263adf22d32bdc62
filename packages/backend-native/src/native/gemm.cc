// GEMM front end: picks a kernel at run time, blocks the problem for the caches
// (BLIS loop order jc -> pc -> ic, packed panels in thread-local buffers) and
// splits C into one rectangle per thread. Each C element is always summed in
// the same order (fixed K blocking, same micro-kernel), so results are
// bit-identical for any thread count. Compiled for baseline x86-64.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gemm_kernels.h"
#include "threadpool.h"

#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#define VLMIX_HAVE_DLOPEN 1
#endif

namespace vlmix {
namespace {

using gemm::Kernel;

// ---------------------------------------------------------------------------
// Portable fallback kernel (no SIMD intrinsics; the compiler vectorises the
// inner loops for the baseline ISA). Used off x86 or on pre-AVX2 CPUs.
namespace scalar {
constexpr int MR = 4, NR = 8;

void pack_a(bool t, int64_t mc, int64_t kc, const float* A, int64_t lda, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc)
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) {
        int64_t r = i0 + i;
        dst[k * MR + i] = r < mc ? (t ? A[k * lda + r] : A[r * lda + k]) : 0.f;
      }
}

void pack_b(bool t, int64_t kc, int64_t nc, const float* B, int64_t ldb, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc)
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) {
        int64_t c = j0 + j;
        dst[k * NR + j] = c < nc ? (t ? B[c * ldb + k] : B[k * ldb + c]) : 0.f;
      }
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* C,
           int64_t ldc, float alpha, float beta) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR)
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
      const float* a = pa + (i0 / MR) * MR * kc;
      const float* b = pb + (j0 / NR) * NR * kc;
      float acc[MR][NR] = {};
      for (int64_t k = 0; k < kc; ++k)
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < NR; ++j) acc[i][j] += a[k * MR + i] * b[k * NR + j];
      for (int i = 0; i < MR && i0 + i < mc; ++i)
        for (int j = 0; j < NR && j0 + j < nc; ++j) {
          float& c = C[(i0 + i) * ldc + j0 + j];
          c = beta == 0.f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c;
        }
    }
}

const Kernel kKernel = {"scalar", MR, NR, pack_a, pack_b, macro, nullptr, 1};
}  // namespace scalar

// ---------------------------------------------------------------------------
// Optional OpenBLAS (dlopen'ed, never linked).
using cblas_sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int,
                                const float*, int, float, float*, int);
cblas_sgemm_fn g_cblas = nullptr;

void try_load_openblas() {
#ifdef VLMIX_HAVE_DLOPEN
  const char* names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};
  for (const char* n : names) {
    void* h = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    auto f = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
    if (!f) continue;
    // Keep OpenBLAS's own pool the same size as ours.
    if (auto set = (void (*)(int))dlsym(h, "openblas_set_num_threads")) set(num_threads());
    g_cblas = f;
    return;
  }
#endif
}

struct Impl {
  const Kernel* k = &scalar::kKernel;
  // The bf16 kernel when the CPU has AVX512-BF16 (used while the precision is bf16).
  const Kernel* bf16 = nullptr;
  bool openblas = false;  // route large problems to cblas_sgemm
  const char* name = "scalar";
};

std::atomic<bool> g_bf16{false};

const Impl& impl() {
  static const Impl im = [] {
    Impl r;
#if defined(__x86_64__)
    // VLMIX_GEMM_ISA=avx2|scalar caps the ISA (for testing the fallbacks).
    const char* cap = std::getenv("VLMIX_GEMM_ISA");
    const bool allow512 = !cap || std::strcmp(cap, "avx512") == 0;
    const bool allow2 = allow512 || std::strcmp(cap, "avx2") == 0;
    __builtin_cpu_init();
    if (allow512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && gemm::kernel_avx512())
      r.k = gemm::kernel_avx512();
    else if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             gemm::kernel_avx2())
      r.k = gemm::kernel_avx2();
    if (r.k == gemm::kernel_avx512() && __builtin_cpu_supports("avx512bf16")) r.bf16 = gemm::kernel_avx512bf16();
#endif
    r.name = r.k->name;
    // own: always our kernels. openblas: cblas_sgemm when it can be loaded.
    // auto (default): our kernels, which beat OpenBLAS 0.3.21 by ~1.8x on
    // the measured shapes (bench-native/RESULTS.md), unless all we have is
    // the portable fallback (no AVX2, or not x86).
    const char* mode = std::getenv("VLMIX_GEMM");
    const bool is_auto = !mode || std::strcmp(mode, "auto") == 0;
    if ((mode && std::strcmp(mode, "openblas") == 0) || (is_auto && r.k == &scalar::kKernel)) {
      try_load_openblas();
      if (g_cblas) {
        r.openblas = true;
        r.name = "openblas";
      }
    }
    return r;
  }();
  return im;
}

// ---------------------------------------------------------------------------
// Thread-local, 64-byte aligned, grow-only packing buffers.
struct PackBuf {
  float* p = nullptr;
  size_t cap = 0;
  ~PackBuf() { release(); }
  void release() {
    if (p) ::operator delete(p, std::align_val_t(64));
    p = nullptr;
    cap = 0;
  }
  float* get(size_t n) {
    if (n > cap) {
      release();
      p = static_cast<float*>(::operator new(n * sizeof(float), std::align_val_t(64)));
      cap = n;
    }
    return p;
  }
};
thread_local PackBuf tl_pack_a, tl_pack_b;

// Cache blocking (the macro-kernels walk C row strip by row strip): an
// MR x KC A micro-panel stays in L1 while the KC x NC packed B panel (256 KiB)
// stays in L2; MC only bounds the packed A buffer. On Zen5 (1 MiB L2), NC 256
// beat 1024 by 2-17% on one thread (1024^3: 200 vs 173-196 GFLOP/s) and 0-10%
// on two, bf16 alike; 128 and 384 were slower. MC 120..480 was flat; KC 256 beat 192.
constexpr int64_t KC_MAX = gemm::kMaxKC, MC_MAX = 240, NC_MAX = 256;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
// Splits n into equal-ish blocks of at most `max`, each a multiple of `q`.
inline int64_t block_size(int64_t n, int64_t max, int64_t q) {
  return round_up(ceil_div(n, ceil_div(n, max)), q);
}

struct Args {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  // Addresses of op(A)(i, k) and op(B)(k, j).
  const float* a_at(int64_t i, int64_t k) const { return ta ? A + k * lda + i : A + i * lda + k; }
  const float* b_at(int64_t k, int64_t j) const { return tb ? B + j * ldb + k : B + k * ldb + j; }
};

// Blocked GEMM for C[m0:m1, n0:n1] on the calling thread. Loop order pc -> jc: a K block of op(A) is packed
// once (up to MS_MAX rows) and used for every N block, where packing it per N block repacked it N / NC times
// (8 times for an 8192-wide head). Each C element still adds the K blocks in order: the bits do not change.
constexpr int64_t MS_MAX = 4096;

void blocked(const Kernel& kr, const Args& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t M = m1 - m0, N = n1 - n0, K = g.K;
  const int64_t kcb = block_size(K, KC_MAX, 8);
  const int64_t ncb = block_size(N, NC_MAX, kr.nr);
  const int64_t slots = ceil_div(kcb, kr.kgroup);  // packed 4-byte slots per row of a K block
  float* pb = tl_pack_b.get(size_t(ncb * kcb));
  // One B panel per N block: packed A would be read once, so read A in place.
  if (kr.macro_direct && ncb <= kr.nr) {
    const int64_t mcb = block_size(M, MC_MAX, kr.mr);
    for (int64_t jc = 0; jc < N; jc += ncb) {
      const int64_t nc = N - jc < ncb ? N - jc : ncb;
      for (int64_t pc = 0; pc < K; pc += kcb) {
        const int64_t kc = K - pc < kcb ? K - pc : kcb;
        kr.pack_b(g.tb, kc, nc, g.b_at(pc, n0 + jc), g.ldb, pb);
        const float beta = pc == 0 ? g.beta : 1.f;  // later K blocks accumulate
        for (int64_t ic = 0; ic < M; ic += mcb) {
          const int64_t mc = M - ic < mcb ? M - ic : mcb;
          kr.macro_direct(g.ta, mc, nc, kc, g.a_at(m0 + ic, pc), g.lda, pb, g.C + (m0 + ic) * g.ldc + n0 + jc, g.ldc,
                          g.alpha, beta);
        }
      }
    }
    return;
  }
  for (int64_t ms = 0; ms < M; ms += MS_MAX) {
    const int64_t mc = M - ms < MS_MAX ? M - ms : MS_MAX;
    float* pa = tl_pack_a.get(size_t(round_up(mc, kr.mr) * slots));
    for (int64_t pc = 0; pc < K; pc += kcb) {
      const int64_t kc = K - pc < kcb ? K - pc : kcb;
      kr.pack_a(g.ta, mc, kc, g.a_at(m0 + ms, pc), g.lda, pa);
      const float beta = pc == 0 ? g.beta : 1.f;  // later K blocks accumulate
      for (int64_t jc = 0; jc < N; jc += ncb) {
        const int64_t nc = N - jc < ncb ? N - jc : ncb;
        kr.pack_b(g.tb, kc, nc, g.b_at(pc, n0 + jc), g.ldb, pb);
        kr.macro(mc, nc, kc, pa, pb, g.C + (m0 + ms) * g.ldc + n0 + jc, g.ldc, g.alpha, beta);
      }
    }
  }
}

// Unblocked loops for matrix-vector shapes, where packing would cost more
// than it saves. Computes C[m0:m1, n0:n1].
void simple(const Args& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t K = g.K;
  if (!g.tb && g.N > 1) {  // C row += a_ik * B row k: contiguous, vectorises
    for (int64_t i = m0; i < m1; ++i) {
      float* c = g.C + i * g.ldc;
      if (g.beta == 0.f) std::memset(c + n0, 0, size_t(n1 - n0) * sizeof(float));
      else if (g.beta != 1.f)
        for (int64_t j = n0; j < n1; ++j) c[j] *= g.beta;
      for (int64_t k = 0; k < K; ++k) {
        const float a = g.alpha * *g.a_at(i, k);
        const float* b = g.B + k * g.ldb;
        for (int64_t j = n0; j < n1; ++j) c[j] += a * b[j];
      }
    }
    return;
  }
  // Dot products of op(A) rows with op(B) columns; 8 partial sums vectorise.
  const int64_t sa = g.ta ? g.lda : 1, sb = g.tb ? 1 : g.ldb;
  for (int64_t i = m0; i < m1; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      const float* a = g.a_at(i, 0);
      const float* b = g.b_at(0, j);
      float acc[8] = {};
      int64_t k = 0;
      if (sa == 1 && sb == 1)
        for (; k + 8 <= K; k += 8)
          for (int l = 0; l < 8; ++l) acc[l] += a[k + l] * b[k + l];
      for (; k < K; ++k) acc[k & 7] += a[k * sa] * b[k * sb];
      const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      float& c = g.C[i * g.ldc + j];
      c = g.beta == 0.f ? g.alpha * s : g.alpha * s + g.beta * c;
    }
}

// C = beta * C (alpha == 0 or K == 0: A and B are not read).
void scale_c(const Args& g) {
  for (int64_t i = 0; i < g.M; ++i) {
    float* c = g.C + i * g.ldc;
    if (g.beta == 0.f) std::memset(c, 0, size_t(g.N) * sizeof(float));
    else if (g.beta != 1.f)
      for (int64_t j = 0; j < g.N; ++j) c[j] *= g.beta;
  }
}

// Below this many multiply-adds one thread is faster than waking another
// (measured: 48^3 already gains from 2 threads, 32^3 loses).
constexpr int64_t PARALLEL_MACS = 64 * 1024;

// Chooses a tm x tn grid of C rectangles (tm * tn <= nt) minimising the
// per-thread cost: padded micro-tile work plus packing work.
void choose_grid(const Kernel& kr, int64_t M, int64_t N, int64_t K, int nt, int* tm, int* tn) {
  const int64_t mt = ceil_div(M, kr.mr), ntl = ceil_div(N, kr.nr);
  double best = 1e300;
  *tm = *tn = 1;
  for (int a = 1; a <= nt; ++a) {
    const int b = nt / a;
    if (a > mt || b > ntl) continue;
    const int64_t bm = ceil_div(mt, a) * kr.mr, bn = ceil_div(ntl, b) * kr.nr;
    // Packing one element costs roughly as much as 4 multiply-adds; each
    // thread packs its rows of A and its columns of B once.
    const double cost = double(K) * (double(bm) * double(bn) + 4.0 * double(bm + bn));
    if (cost < best * 0.999) {
      best = cost;
      *tm = a;
      *tn = b;
    }
  }
}

void run(const Args& g, bool allow_parallel) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0 || g.alpha == 0.f) return scale_c(g);
  const Impl& im = impl();
  const int64_t macs = g.M * g.N * g.K;
  if (g.M == 1 || g.N == 1) {
    // Matrix-vector shapes are memory-bound: split the long side, no packing.
    // (Everything else packs, even 4x4x4: measured faster than plain loops.)
    if (allow_parallel && macs >= PARALLEL_MACS && !in_parallel()) {
      if (g.M >= g.N) parallel_for(g.M, 1, [&](int64_t b, int64_t e) { simple(g, b, e, 0, g.N); });
      else parallel_for(g.N, 64, [&](int64_t b, int64_t e) { simple(g, 0, g.M, b, e); });
    } else {
      simple(g, 0, g.M, 0, g.N);
    }
    return;
  }
  if (im.openblas && g.M <= INT32_MAX && g.N <= INT32_MAX && g.K <= INT32_MAX &&
      g.lda <= INT32_MAX && g.ldb <= INT32_MAX && g.ldc <= INT32_MAX) {
    g_cblas(101 /*RowMajor*/, g.ta ? 112 : 111, g.tb ? 112 : 111, (int)g.M, (int)g.N, (int)g.K,
            g.alpha, g.A, (int)g.lda, g.B, (int)g.ldb, g.beta, g.C, (int)g.ldc);
    return;
  }
  const Kernel& kr = g_bf16.load(std::memory_order_relaxed) && im.bf16 ? *im.bf16 : *im.k;
  // Inside another parallel_for, chunks would run serially: plan for one thread.
  const int nt = allow_parallel && macs >= PARALLEL_MACS && !in_parallel() ? num_threads() : 1;
  int tm = 1, tn = 1;
  if (nt > 1) choose_grid(kr, g.M, g.N, g.K, nt, &tm, &tn);
  if (tm * tn == 1) return blocked(kr, g, 0, g.M, 0, g.N);
  // Rectangle boundaries fall on micro-tile multiples.
  const int64_t mt = ceil_div(g.M, kr.mr), ntl = ceil_div(g.N, kr.nr);
  parallel_for(tm * tn, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t ti = t / tn, tj = t % tn;
      int64_t m0 = std::min(g.M, mt * ti / tm * kr.mr), m1 = std::min(g.M, mt * (ti + 1) / tm * kr.mr);
      int64_t n0 = std::min(g.N, ntl * tj / tn * kr.nr), n1 = std::min(g.N, ntl * (tj + 1) / tn * kr.nr);
      if (m1 > m0 && n1 > n0) blocked(kr, g, m0, m1, n0, n1);
    }
  });
}

}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  run(Args{transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc}, true);
}

void sgemm_batched(bool transA, bool transB, int64_t batch, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* A, int64_t lda, int64_t strideA, const float* B,
                   int64_t ldb, int64_t strideB, float beta, float* C, int64_t ldc,
                   int64_t strideC) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  // Shared B and A, C rows evenly spaced across the batch: one tall GEMM.
  if (batch == 1 || (strideB == 0 && !transA && strideA == M * lda && strideC == M * ldc)) {
    return run(Args{transA, transB, M * batch, N, K, alpha, A, lda, B, ldb, beta, C, ldc}, true);
  }
  auto item = [&](int64_t i, bool par) {
    run(Args{transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
             C + i * strideC, ldc},
        par);
  };
  const int nt = num_threads();
  const int64_t macs = M * N * K;
  // Many small items: whole items per thread. Few big ones: split each item.
  const bool per_item = batch >= nt && (batch % nt == 0 || batch >= 4 * nt || macs < (1 << 22));
  // (OpenBLAS threads itself; calling it from our workers would oversubscribe.)
  if (nt > 1 && per_item && macs * batch >= PARALLEL_MACS && !impl().openblas && !in_parallel()) {
    parallel_for(batch, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) item(i, false);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) item(i, true);
  }
}

const char* gemm_impl_name() { return impl().name; }

bool gemm_bf16_supported() { return impl().bf16 != nullptr; }

bool set_gemm_bf16(bool on) {
  if (on && !impl().bf16) return false;
  g_bf16.store(on);
  return true;
}

bool gemm_bf16() { return g_bf16.load(); }

}  // namespace vlmix
