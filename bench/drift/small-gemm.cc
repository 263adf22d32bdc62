// Many small parallel GEMMs back to back (the shape of a tiny training step's kernels): microseconds per
// call, median of 7 batches. Run with both threads on one CPU (taskset -c 0, VLMIX_NUM_THREADS=2) to see
// what a spinning worker costs the caller it shares a CPU with. Prints one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 128;
  const int calls = argc > 2 ? atoi(argv[2]) : 2000;
  std::vector<float> A(n * n, 0.5f), B(n * n, 0.25f), C(n * n);
  auto gemm = [&] { vlmix::sgemm(false, false, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n); };
  for (int i = 0; i < 100; i++) gemm();
  std::vector<double> us;
  for (int r = 0; r < 7; r++) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; i++) gemm();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  std::sort(us.begin(), us.end());
  printf("{\"n\":%d,\"threads\":%d,\"usPerCall\":%.2f,\"p25\":%.2f,\"p75\":%.2f}\n", n, vlmix::num_threads(), us[3], us[1], us[5]);
  return C[0] > 0 ? 0 : 1;
}
