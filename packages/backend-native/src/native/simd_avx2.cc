// AVX2+FMA build of the SimdOps table. Compile with: -mavx2 -mfma (binding.gyp).
#if defined(__AVX2__) && defined(__FMA__)
#define VLMIX_SIMD_NAME "avx2"
#include "simd_impl.h"

namespace vlmix {
const SimdOps* simd_ops_avx2() { return &kOps; }
}  // namespace vlmix
#else
#include "simd.h"
namespace vlmix {
const SimdOps* simd_ops_avx2() { return nullptr; }
}  // namespace vlmix
#endif
