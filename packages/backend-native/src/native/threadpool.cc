// Persistent thread pool: workers spin briefly after each job (so back-to-back
// kernels dispatch in well under 2 us), then sleep on a condition variable; a
// worker on the caller's CPU sleeps at once.
// Chunks are claimed dynamically from an atomic word, so a worker that is slow
// to wake never delays the caller: the caller simply runs that chunk itself.
#include "threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VLMIX_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define VLMIX_PAUSE() __asm__ __volatile__("yield")
#else
#define VLMIX_PAUSE() ((void)0)
#endif

namespace vlmix {
namespace {

int detect_threads() {
  if (const char* s = std::getenv("VLMIX_NUM_THREADS")) {
    int v = std::atoi(s);
    if (v >= 1) return v > 256 ? 256 : v;
  }
  int n = (int)std::thread::hardware_concurrency();
#if defined(__linux__)
  // Respect cgroup/taskset CPU limits (containers often report more CPUs).
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int a = CPU_COUNT(&set);
    if (a >= 1 && (n < 1 || a < n)) n = a;
  }
#endif
  return n < 1 ? 1 : (n > 256 ? 256 : n);
}

// Spin this long after the last job before sleeping; env VLMIX_SPIN_US.
int64_t spin_ns() {
  if (const char* s = std::getenv("VLMIX_SPIN_US")) return (int64_t)std::atoll(s) * 1000;
  return 200 * 1000;
}

// Job word layout: generation (32 bits) | chunk count (16) | next chunk (16).
// Packing them together lets a late worker claim a chunk with one CAS that
// also proves the job it read is still the current one.
constexpr uint64_t kNextMask = 0xffff;
inline uint64_t nchunks_of(uint64_t w) { return (w >> 16) & 0xffff; }
inline uint64_t next_of(uint64_t w) { return w & kNextMask; }

thread_local bool tl_inside = false;  // true while running a chunk

// The CPU the calling thread runs on (-2 where unknown, which never matches the caller's -1).
inline int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -2;
#endif
}

// Start of chunk c of nc over [0, n): floor(n * c / nc) without overflow.
inline int64_t chunk_begin(int64_t n, int64_t c, int64_t nc) {
  return n / nc * c + n % nc * c / nc;
}

struct Pool {
  int nthreads;
  int64_t spin;
  std::atomic<uint64_t> job{0};
  std::atomic<int64_t> done{0};
  std::atomic<int> sleepers{0};
  std::mutex sleep_mu;
  std::condition_variable sleep_cv;
  std::mutex owner_mu;  // one dispatching caller at a time
  std::atomic<int> caller_cpu{-1};  // CPU the caller posted the last job from

  // Current job; written only while no chunk of the previous job is running.
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0;
  std::mutex err_mu;
  std::exception_ptr err;

  explicit Pool(int nt) : nthreads(nt), spin(spin_ns()) {
    for (int i = 1; i < nt; ++i) std::thread([this] { worker(); }).detach();
  }

  // Runs chunk c of the job that `w` belongs to.
  void run_chunk(uint64_t w, uint64_t c) {
    uint64_t nc = nchunks_of(w);
    tl_inside = true;
    try {
      (*fn)(chunk_begin(n, (int64_t)c, (int64_t)nc), chunk_begin(n, (int64_t)c + 1, (int64_t)nc));
    } catch (...) {
      std::lock_guard<std::mutex> g(err_mu);
      if (!err) err = std::current_exception();
    }
    tl_inside = false;
    done.fetch_add(1, std::memory_order_release);
  }

  // Claims and runs chunks until none is left; returns the last word seen.
  uint64_t drain(uint64_t w) {
    while (next_of(w) < nchunks_of(w)) {
      if (job.compare_exchange_weak(w, w + 1, std::memory_order_acquire,
                                    std::memory_order_acquire)) {
        run_chunk(w, next_of(w));
        w = job.load(std::memory_order_acquire);
      }
    }
    return w;
  }

  void worker() {
    uint64_t seen = job.load(std::memory_order_acquire);
    for (;;) {
      seen = drain(seen);
      // Spin for a while: the next kernel usually follows within microseconds. But a worker that
      // finds itself on the CPU the caller posted from (the scheduler does that under load, and keeps
      // it so for a whole run) goes to sleep at once: spinning there holds the CPU the caller needs to
      // dispatch the next kernel, and the next wake-up lets the kernel place it on an idle CPU.
      // Both threads pinned to one CPU, 128^3 GEMMs: 43 us per call spinning, 23 us with a yielding
      // spin on a quiet machine (1 thread 21 us); on a loaded one (load 12) the yielding spin lost
      // the CPU to other processes (70-115 us) where sleeping took 30-34 us (spinning 44-130).
      auto t0 = std::chrono::steady_clock::now();
      uint64_t w;
      for (int it = 0;; ++it) {
        w = job.load(std::memory_order_acquire);
        if (w != seen) break;
        VLMIX_PAUSE();
        const bool on_caller_cpu = (it & 63) == 63 && current_cpu() == caller_cpu.load(std::memory_order_relaxed);
        if (on_caller_cpu || ((it & 255) == 255 &&
                              std::chrono::steady_clock::now() - t0 > std::chrono::nanoseconds(spin))) {
          std::unique_lock<std::mutex> lk(sleep_mu);
          sleepers.fetch_add(1, std::memory_order_seq_cst);
          sleep_cv.wait(lk, [&] { return job.load(std::memory_order_seq_cst) != seen; });
          sleepers.fetch_sub(1, std::memory_order_relaxed);
          w = job.load(std::memory_order_acquire);
          break;
        }
      }
      seen = w;
    }
  }

  void run(int64_t n_, int64_t nchunks, const std::function<void(int64_t, int64_t)>& f) {
    caller_cpu.store(current_cpu(), std::memory_order_relaxed);
    fn = &f;
    n = n_;
    err = nullptr;
    done.store(0, std::memory_order_relaxed);
    uint64_t gen = (job.load(std::memory_order_relaxed) >> 32) + 1;
    uint64_t w = (gen << 32) | ((uint64_t)nchunks << 16);
    job.store(w, std::memory_order_seq_cst);
    // Pairs with the seq_cst increment in worker(): either the sleeper sees
    // the new job before waiting, or we see it counted and notify.
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> g(sleep_mu); }
      sleep_cv.notify_all();
    }
    drain(w);
    for (int it = 0; done.load(std::memory_order_acquire) < nchunks; ++it) {
      if (it < 4096) VLMIX_PAUSE();
      else std::this_thread::yield();  // a worker holding a chunk was descheduled
    }
    if (err) {
      std::exception_ptr e = err;
      err = nullptr;
      std::rethrow_exception(e);
    }
  }
};

// Created on first use and intentionally never destroyed: workers are detached
// and only touch this heap object, so process exit needs no join.
Pool& pool() {
  static Pool* p = new Pool(detect_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().nthreads; }

bool in_parallel() { return tl_inside; }

void parallel_for(int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = pool();
  int64_t nc = n / grain;
  if (nc > p.nthreads) nc = p.nthreads;
  if (nc <= 1) {
    fn(0, n);
    return;
  }
  auto serial = [&] {
    for (int64_t c = 0; c < nc; ++c)
      fn(chunk_begin(n, c, nc), chunk_begin(n, c + 1, nc));
  };
  if (tl_inside) return serial();
  std::unique_lock<std::mutex> own(p.owner_mu, std::try_to_lock);
  if (!own.owns_lock()) return serial();  // another thread is using the pool
  p.run(n, nc, fn);
}

}  // namespace vlmix
