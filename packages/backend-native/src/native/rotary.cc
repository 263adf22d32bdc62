// Rotary position embedding (RoPE) as one pass over q or k (VlmixRotary). Compiled for baseline x86-64 like
// the other elementwise kernels: no FMA contraction, so each product is rounded as PyTorch's separate
// x * cos and rotate_half(x) * sin are.
#include "common.h"
#include "kernels.h"

namespace vlmix {

void rotary(float* y, const float* x, const float* cos, const float* sin, int64_t B, int64_t H, int64_t T, int64_t D,
            int64_t R, int64_t Bc, bool interleaved, bool inverse) {
  const int64_t rows = B * H * T;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T, b = r / (H * T);
      const int64_t at = ((Bc == 1 ? 0 : b) * T + t) * R;
      const float* c = cos + at;
      const float* s = sin + at;
      const float* xr = x + r * D;
      float* yr = y + r * D;
      for (int64_t j = 0; j < R; j++) {
        const int64_t a = interleaved ? 2 * j : j, o = interleaved ? a + 1 : j + R;
        const float xa = xr[a], xo = xr[o], sn = inverse ? -s[j] : s[j];
        yr[a] = xa * c[j] - xo * sn;
        yr[o] = xo * c[j] + xa * sn;
      }
      for (int64_t j = 2 * R; j < D; j++) yr[j] = xr[j];
    }
  });
}

}  // namespace vlmix
