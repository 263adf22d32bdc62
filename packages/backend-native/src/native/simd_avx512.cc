// AVX-512 build of the SimdOps table. Compile with:
//   -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mprefer-vector-width=512
#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define VLMIX_SIMD_NAME "avx512"
#include "simd_impl.h"

namespace vlmix {
const SimdOps* simd_ops_avx512() { return &kOps; }
}  // namespace vlmix
#else
#include "simd.h"
namespace vlmix {
const SimdOps* simd_ops_avx512() { return nullptr; }
}  // namespace vlmix
#endif
