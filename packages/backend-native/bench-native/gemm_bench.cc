// GFLOP/s of vlmix::sgemm / sgemm_batched on the shapes in shapes.txt
// (median of timed samples after warm-up). Usage: gemm_bench [shapes.txt]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../src/native/gemm.h"
#include "../src/native/threadpool.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call of f: median (or, with BENCH_STAT=min, the best) of
// samples of n calls each, n sized to ~5 ms. The best is useful for tuning
// on a shared machine, where noise only ever slows a sample down.
template <class F>
double time_median(F f) {
  static const bool use_min = getenv("BENCH_STAT") && std::string(getenv("BENCH_STAT")) == "min";
  for (int i = 0; i < 3; ++i) f();
  double t0 = now_s();
  f();
  double one = std::max(now_s() - t0, 1e-7);
  int n = std::max(1, (int)(0.005 / one));
  int samples = one > 0.05 ? 5 : 15;
  std::vector<double> ts;
  for (int s = 0; s < samples; ++s) {
    double a = now_s();
    for (int i = 0; i < n; ++i) f();
    ts.push_back((now_s() - a) / n);
  }
  std::sort(ts.begin(), ts.end());
  return use_min ? ts[0] : ts[ts.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "shapes.txt";
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", path);
    return 2;
  }
  std::printf("# vlmix sgemm impl=%s threads=%d\n", vlmix::gemm_impl_name(), vlmix::num_threads());
  std::printf("%-28s %10s %10s\n", "shape(batch MxNxK ta tb)", "GFLOP/s", "us/call");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    int64_t b, M, N, K;
    int ta, tb;
    if (!(ss >> b >> M >> N >> K >> ta >> tb)) continue;
    std::vector<float> A(b * M * K), B(b * K * N), C(b * M * N);
    for (auto& x : A) x = d(rng);
    for (auto& x : B) x = d(rng);
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    double t = time_median([&] {
      if (b == 1)
        vlmix::sgemm(ta, tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), N);
      else
        vlmix::sgemm_batched(ta, tb, b, M, N, K, 1.f, A.data(), lda, M * K, B.data(), ldb, K * N,
                             0.f, C.data(), N, M * N);
    });
    char name[64];
    std::snprintf(name, sizeof name, "%ld %ldx%ldx%ld %d%d", (long)b, (long)M, (long)N, (long)K,
                  ta, tb);
    std::printf("%-28s %10.1f %10.2f\n", name, 2.0 * b * M * N * K / t * 1e-9, t * 1e6);
    std::fflush(stdout);
  }
  return 0;
}
