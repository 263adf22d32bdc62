// Persistent worker pool used by the native kernels (GEMM and friends).
// Workers spin for VLMIX_SPIN_US (default 200) microseconds after each job,
// so back-to-back kernels dispatch in under a microsecond, then sleep. A worker
// that finds itself on the caller's CPU sleeps at once instead of holding it.
#pragma once
#include <cstdint>
#include <functional>

namespace vlmix {

// Pool size, including the calling thread: env VLMIX_NUM_THREADS, else the
// number of CPUs this process may run on. Always >= 1. Read once.
int num_threads();

// Runs fn over [0, n) split into contiguous chunks of at least `grain` items
// (c = max(1, min(num_threads(), n / grain)) chunks, boundaries i*n/c). The
// calling thread participates; returns when every chunk is done. The split depends
// only on (n, grain, num_threads()); which thread runs a chunk does not matter.
// Calls made from inside a chunk (or while another thread owns the pool) run
// the same chunks serially on the calling thread, so nesting cannot deadlock.
// An exception thrown by fn is rethrown in the caller after all chunks end.
void parallel_for(int64_t n, int64_t grain,
                  const std::function<void(int64_t begin, int64_t end)>& fn);

// True while the calling thread is running a parallel_for chunk, i.e. a
// nested parallel_for would run serially (lets callers pick a serial plan).
bool in_parallel();

}  // namespace vlmix
