// Run-time choice of the SimdOps table (see simd.h).
#include "simd.h"

#include <cstdlib>
#include <cstring>

namespace vlmix {
namespace {

const SimdOps* pick() {
  const char* cap = std::getenv("VLMIX_SIMD_ISA");
  bool allow512 = !cap || !std::strcmp(cap, "avx512");
  bool allow2 = allow512 || (cap && !std::strcmp(cap, "avx2"));
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (allow512 && simd_ops_avx512() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    return simd_ops_avx512();
  if (allow2 && simd_ops_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return simd_ops_avx2();
#else
  (void)allow512;
  (void)allow2;
#endif
  return simd_ops_base();
}

}  // namespace

const SimdOps& simd() {
  static const SimdOps* ops = pick();
  return *ops;
}

}  // namespace vlmix
