// Shared helpers of the CPU kernels: element types, parallel splits. No N-API here: kernels are plain
// functions on pointers and sizes (kernels.h); the JS-facing layer is src/glue/napi_glue.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernel_args.h"
#include "plans.h"
#include "threadpool.h"

namespace vlmix {

// Elementwise split: fn(begin, end) over [0, n) in chunks whose boundaries are multiples of 1024
// elements, at least `min_elems` per chunk (tiny tensors stay on the calling thread).
template <class F>
inline void parallel_elems(int64_t n, int64_t min_elems, const F& fn) {
  constexpr int64_t kB = 1024;
  const int64_t nb = (n + kB - 1) / kB;
  parallel_for(nb, std::max<int64_t>(1, min_elems / kB), [&](int64_t b, int64_t e) {
    fn(b * kB, std::min(n, e * kB));
  });
}

// Deterministic chunking for reductions across rows: fixed chunk size, summed in chunk order.
constexpr int64_t kRowChunk = 64;

}  // namespace vlmix
