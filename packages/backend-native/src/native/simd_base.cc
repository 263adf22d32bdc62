// Baseline build of the SimdOps table (no ISA flags): the fallback on any CPU.
#define VLMIX_SIMD_NAME "scalar"
#include "simd_impl.h"

namespace vlmix {
const SimdOps* simd_ops_base() { return &kOps; }
}  // namespace vlmix
