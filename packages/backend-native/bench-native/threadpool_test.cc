// Thread pool checks (coverage, split determinism, nesting, exceptions,
// concurrent callers) and dispatch latency. Exits non-zero on failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../src/native/threadpool.h"

namespace {

int failures = 0;
#define CHECK(c)                                                  \
  do {                                                            \
    if (!(c)) {                                                   \
      std::printf("FAIL line %d: %s\n", __LINE__, #c);            \
      ++failures;                                                 \
    }                                                             \
  } while (0)

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Every index visited exactly once; chunks contiguous, >= grain, and the
// same boundaries on every call.
void test_coverage() {
  const int64_t ns[] = {1, 2, 3, 7, 64, 1000, 100003};
  const int64_t grains[] = {1, 3, 64, 5000};
  for (int64_t n : ns)
    for (int64_t g : grains) {
      std::vector<std::atomic<int>> hit(n);
      std::vector<std::pair<int64_t, int64_t>> chunks[2];
      std::atomic<int> lock{0};
      for (int rep = 0; rep < 2; ++rep) {
        vlmix::parallel_for(n, g, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hit[i]++;
          while (lock.exchange(1)) {}
          chunks[rep].push_back({b, e});
          lock = 0;
        });
        std::sort(chunks[rep].begin(), chunks[rep].end());
      }
      for (int64_t i = 0; i < n; ++i) CHECK(hit[i] == 2);
      CHECK(chunks[0] == chunks[1]);
      for (auto& c : chunks[0]) CHECK(c.second - c.first >= std::min(g, n));
      CHECK((int64_t)chunks[0].size() == std::max<int64_t>(1, std::min<int64_t>(vlmix::num_threads(), n / g)));
    }
}

void test_nested() {
  std::atomic<int64_t> sum{0};
  vlmix::parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      vlmix::parallel_for(100, 1, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });
  });
  CHECK(sum == 800);
}

void test_exception() {
  bool caught = false;
  try {
    vlmix::parallel_for(100, 1, [&](int64_t b, int64_t) {
      if (b > 0) throw std::runtime_error("boom");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught || vlmix::num_threads() == 1);
  std::atomic<int64_t> sum{0};  // pool still usable afterwards
  vlmix::parallel_for(1000, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  CHECK(sum == 1000);
}

// Several application threads calling at once (e.g. Node worker threads).
void test_concurrent_callers() {
  std::atomic<int64_t> sum{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int r = 0; r < 2000; ++r)
        vlmix::parallel_for(64, 1, [&](int64_t b, int64_t e) { sum += e - b; });
    });
  for (auto& t : ts) t.join();
  CHECK(sum == 4 * 2000 * 64);
}

void bench_latency() {
  auto empty = [](int64_t, int64_t) {};
  const int reps = 200000;
  for (int i = 0; i < 1000; ++i) vlmix::parallel_for(2, 1, empty);
  double t0 = now_us();
  for (int i = 0; i < reps; ++i) vlmix::parallel_for(2, 1, empty);
  double hot = (now_us() - t0) / reps;
  // After an idle pause the workers are asleep; the caller does not wait for
  // them to wake (it runs their chunks), so this stays small too.
  std::vector<double> cold;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    double a = now_us();
    vlmix::parallel_for(2, 1, empty);
    cold.push_back(now_us() - a);
  }
  std::sort(cold.begin(), cold.end());
  std::printf("empty parallel_for: %.3f us (workers spinning), %.2f us median after 5 ms idle\n",
              hot, cold[cold.size() / 2]);
}

}  // namespace

int main() {
  std::printf("threads=%d\n", vlmix::num_threads());
  test_coverage();
  test_nested();
  test_exception();
  test_concurrent_callers();
  bench_latency();
  std::printf("%s\n", failures ? "FAILED" : "threadpool OK");
  return failures ? 1 : 0;
}
