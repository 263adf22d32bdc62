// Correctness harness: vlmix::sgemm / sgemm_batched against a double-precision
// reference. Exits non-zero on any failure. Prints a checksum of all outputs so
// run.sh can check that results are bit-identical across thread counts.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "../src/native/gemm.h"
#include "../src/native/threadpool.h"

namespace {

std::mt19937_64 rng(12345);
int failures = 0;
int64_t cases = 0;
uint64_t checksum = 1469598103934665603ull;

void fill(std::vector<float>& v) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (auto& x : v) x = d(rng);
}

void hash(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, p + i, 4);
    checksum = (checksum ^ u) * 1099511628211ull;
  }
}

// One GEMM (optionally one slice of a batch) checked element by element.
// C0 is C before the call; Cout after. Padding columns of C must be untouched.
bool check(const char* what, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
           const float* C0, const float* Cout, int64_t ldc) {
  double tol = 1e-5 * std::max(1.0, K / 100.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      float got = Cout[i * ldc + j];
      if (j >= N) {
        if (std::memcmp(&got, &C0[i * ldc + j], 4) != 0) {
          std::printf("FAIL %s: padding C[%ld][%ld] modified\n", what, (long)i, (long)j);
          return false;
        }
        continue;
      }
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = ta ? A[k * lda + i] : A[i * lda + k];
        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
        mag += std::fabs(a * b);
      }
      double ref = alpha * s, refmag = std::fabs(alpha) * mag;
      if (beta != 0.f) {
        ref += (double)beta * C0[i * ldc + j];
        refmag += std::fabs(beta * C0[i * ldc + j]);
      }
      double err = std::fabs(got - ref) / (refmag + 1e-30);
      if (!(err <= tol) && !(std::fabs(got - ref) < 1e-30)) {
        std::printf("FAIL %s ta=%d tb=%d M=%ld N=%ld K=%ld alpha=%g beta=%g: C[%ld][%ld]=%.9g ref=%.9g rel=%.3g\n",
                    what, ta, tb, (long)M, (long)N, (long)K, alpha, beta, (long)i, (long)j, got,
                    ref, err);
        return false;
      }
    }
  }
  return true;
}

void test_one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
              int pad) {
  int64_t arows = ta ? K : M, acols = ta ? M : K;
  int64_t brows = tb ? N : K, bcols = tb ? K : N;
  int64_t lda = acols + pad, ldb = bcols + (pad ? pad + 3 : 0), ldc = N + (pad ? 5 : 0);
  std::vector<float> A(arows * lda), B(brows * ldb), C(M * ldc);
  fill(A);
  fill(B);
  fill(C);
  if (beta == 0.f)  // must be ignored, not multiplied
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = (i + j) % 2 ? NAN : INFINITY;
  std::vector<float> C0 = C;
  vlmix::sgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  ++cases;
  hash(C.data(), (int64_t)C.size());
  if (!check("sgemm", ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C0.data(),
             C.data(), ldc))
    ++failures;
}

void test_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool bcastA, bool bcastB, float alpha, float beta) {
  int64_t arows = ta ? K : M, acols = ta ? M : K;
  int64_t brows = tb ? N : K, bcols = tb ? K : N;
  int64_t lda = acols + 1, ldb = bcols, ldc = N + 2;
  int64_t sA = bcastA ? 0 : arows * lda + 7, sB = bcastB ? 0 : brows * ldb;
  int64_t sC = M * ldc + 3;
  std::vector<float> A(sA * (batch - 1) + arows * lda), B(sB * (batch - 1) + brows * ldb),
      C(sC * batch);
  fill(A);
  fill(B);
  fill(C);
  std::vector<float> C0 = C;
  vlmix::sgemm_batched(ta, tb, batch, M, N, K, alpha, A.data(), lda, sA, B.data(), ldb, sB,
                       beta, C.data(), ldc, sC);
  ++cases;
  hash(C.data(), (int64_t)C.size());
  for (int64_t b = 0; b < batch; ++b) {
    // Gaps between C slices must be untouched too.
    for (int64_t g = M * ldc; g < sC; ++g)
      if (std::memcmp(&C[b * sC + g], &C0[b * sC + g], 4) != 0) {
        std::printf("FAIL batched: gap after slice %ld modified\n", (long)b);
        ++failures;
        return;
      }
    if (!check("batched", ta, tb, M, N, K, alpha, A.data() + b * sA, lda, B.data() + b * sB, ldb,
               beta, C0.data() + b * sC, C.data() + b * sC, ldc)) {
      std::printf("  (batch=%ld slice=%ld bcastA=%d bcastB=%d)\n", (long)batch, (long)b, bcastA,
                  bcastB);
      ++failures;
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::printf("impl=%s threads=%d\n", vlmix::gemm_impl_name(), vlmix::num_threads());
  const int64_t S[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 127, 129, 255, 300};
  const float alphas[] = {1.f, 0.5f, -1.25f};
  const float betas[] = {0.f, 1.f, -0.75f};
  int idx = 0;
  for (int64_t M : S)
    for (int64_t N : S)
      for (int64_t K : S) {
        bool all_trans = M * N * K <= (quick ? 20000 : 300000);
        for (int t = 0; t < 4; ++t) {
          ++idx;
          if (!all_trans && t != idx % 4) continue;
          if (quick && M * N * K > 200000 && idx % 7) continue;
          float alpha = alphas[idx % 3], beta = betas[(idx / 3) % 3];
          test_one(t & 1, t & 2, M, N, K, alpha, beta, idx % 2 ? 0 : (int)(idx % 5) + 1);
        }
      }
  // Shapes that cross several cache blocks (K, M and N blocking).
  const int64_t big[][3] = {{600, 700, 800}, {1030, 257, 513}, {97, 1500, 300}, {2000, 40, 1100}};
  for (auto& s : big)
    for (int t = 0; t < 4; ++t) test_one(t & 1, t & 2, s[0], s[1], s[2], 0.75f, t == 2 ? 0.f : 0.5f, t);
  // Thin K and attention-like batched shapes.
  for (int t = 0; t < 4; ++t) {
    test_one(t & 1, t & 2, 512, 256, 8, 1.f, 0.f, 0);
    test_one(t & 1, t & 2, 300, 190, 16, 1.f, 0.f, 1);
    test_batched(t & 1, t & 2, 5, 33, 17, 9, false, false, 1.f, 0.f);
    test_batched(t & 1, t & 2, 32, 128, 128, 16, false, false, 0.125f, 0.f);
    test_batched(t & 1, t & 2, 12, 64, 64, 32, false, false, 1.f, 0.5f);
    test_batched(t & 1, t & 2, 7, 65, 31, 40, true, false, 1.f, 1.f);
    test_batched(t & 1, t & 2, 6, 20, 300, 129, false, true, -1.f, 0.f);
    test_batched(t & 1, t & 2, 3, 200, 150, 100, true, false, 1.f, 0.f);
    test_batched(t & 1, t & 2, 1, 300, 255, 64, false, false, 1.f, 0.f);
  }
  // Called from inside a parallel_for chunk (as fused kernels do): runs
  // serially there, and must give the same bits as a top-level call.
  {
    const int64_t M = 200, N = 150, K = 300;
    std::vector<float> A(M * K), B(K * N), C1(M * N), C2(2 * M * N);
    fill(A);
    fill(B);
    vlmix::sgemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, C1.data(), N);
    vlmix::parallel_for(2, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        vlmix::sgemm(false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f,
                     C2.data() + i * M * N, N);
    });
    ++cases;
    if (std::memcmp(C1.data(), C2.data(), C1.size() * 4) ||
        std::memcmp(C1.data(), C2.data() + M * N, C1.size() * 4)) {
      std::printf("FAIL nested sgemm differs from top-level call\n");
      ++failures;
    }
  }
  // Degenerate sizes: K == 0 scales C by beta, M or N == 0 is a no-op.
  {
    std::vector<float> C = {1.f, 2.f, 3.f, 4.f};
    vlmix::sgemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, C.data(), 2);
    if (C[0] != 0.5f || C[3] != 2.f) { std::printf("FAIL K=0 beta scale\n"); ++failures; }
    C[0] = NAN;
    vlmix::sgemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.f, C.data(), 2);
    if (C[0] != 0.f) { std::printf("FAIL K=0 beta=0\n"); ++failures; }
    vlmix::sgemm(false, false, 0, 2, 5, 1.f, nullptr, 5, nullptr, 2, 0.f, nullptr, 2);
    ++cases;
  }
  std::printf("%ld cases, %d failures, checksum %016llx\n", (long)cases, failures,
              (unsigned long long)checksum);
  return failures ? 1 : 0;
}
