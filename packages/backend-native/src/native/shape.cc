// Data movement: one strided-copy primitive serves transpose, slice, strided slice, reverse,
// broadcast, tile, pad, concat and split. Elements are 4 bytes regardless of dtype.
#include "common.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {

void copy_strided(uint32_t* dst, int64_t doff, const uint32_t* src, int64_t soff, const CopyPlan& p) {
  const int64_t* ss = p.strides[0];  // source
  const int64_t* ds = p.strides[1];  // destination
  const int64_t r = p.rank;
  const int64_t L = p.dims[r - 1], sL = ss[r - 1], dL = ds[r - 1];
  int64_t rows = 1;
  for (int64_t d = 0; d < r - 1; d++) rows *= p.dims[d];
  if (rows * L == 0) return;
  if (rows == 1 && sL == 1 && dL == 1) {
    // One contiguous block (the plan collapsed every dim): split it over the threads.
    parallel_elems(L, 16384, [&](int64_t b, int64_t e) { std::memcpy(dst + doff + b, src + soff + b, (e - b) * 4); });
    return;
  }
  // 2-D transpose-like case: tile so both reads and writes stay in cache.
  if (r == 2 && sL != 1 && ss[0] == 1 && dL == 1 && rows >= 32 && L >= 32) {
    // dst[i * dR + j] = src[j * sL + i]: a transpose of the [L, R] source matrix (row stride sL).
    const int64_t R = rows, dR = ds[0];
    const SimdOps& sv = simd();
    const int64_t bi = 64;
    parallel_for((R + bi - 1) / bi, std::max<int64_t>(1, 32768 / (bi * L)), [&](int64_t b, int64_t e) {
      const int64_t i0 = b * bi, i1 = std::min(R, e * bi);
      sv.transpose(src + soff + i0, sL, dst + doff + i0 * dR, dR, L, i1 - i0);
    });
    return;
  }
  parallel_for(rows, std::max<int64_t>(1, 16384 / L), [&](int64_t b, int64_t e) {
    int64_t idx[16] = {0};
    int64_t rem = b;
    for (int64_t d = r - 2; d >= 0; d--) { idx[d] = rem % p.dims[d]; rem /= p.dims[d]; }
    int64_t so = soff, dO = doff;
    for (int64_t d = 0; d < r - 1; d++) { so += idx[d] * ss[d]; dO += idx[d] * ds[d]; }
    for (int64_t row = b; row < e; row++) {
      if (sL == 1 && dL == 1) std::memcpy(dst + dO, src + so, L * 4);
      else if (sL == 0) { uint32_t v = src[so]; for (int64_t j = 0; j < L; j++) dst[dO + j * dL] = v; }
      else for (int64_t j = 0; j < L; j++) dst[dO + j * dL] = src[so + j * sL];
      for (int64_t d = r - 2; d >= 0; d--) {
        idx[d]++; so += ss[d]; dO += ds[d];
        if (idx[d] < p.dims[d]) break;
        so -= ss[d] * p.dims[d]; dO -= ds[d] * p.dims[d]; idx[d] = 0;
      }
    }
  });
}

void fill(uint32_t* out, int64_t n, uint32_t bits) {
  for (int64_t i = 0; i < n; i++) out[i] = bits;
}

void one_hot(uint32_t* o, const int32_t* idx, int64_t n, int64_t depth, uint32_t von, uint32_t voff) {
  for (int64_t i = 0; i < n * depth; i++) o[i] = voff;
  for (int64_t i = 0; i < n; i++)
    if (idx[i] >= 0 && idx[i] < depth) o[i * depth + idx[i]] = von;
}

namespace {

// Source index of output position o for nearest-neighbour resizing, as tfjs-backend-cpu computes it.
inline int64_t nearest_src(int64_t o, double ratio, int64_t in, bool align, bool half) {
  double f = half ? ratio * (o + 0.5) : ratio * o;
  int64_t s = (int64_t)(align ? std::floor(f + 0.5) : std::floor(f));  // Math.round / Math.floor
  s = std::min(in - 1, s);
  if (half) s = std::max<int64_t>(0, s);
  return s;
}

inline double resize_ratio(int64_t in, int64_t out, bool align) {
  double ei = (align && out > 1) ? in - 1 : in, eo = (align && out > 1) ? out - 1 : out;
  return ei / eo;
}

}  // namespace

void resize_nearest(uint32_t* y, const uint32_t* x, int64_t B, int64_t H, int64_t W, int64_t C, int64_t OH,
                    int64_t OW, bool align, bool half) {
  if (B * OH * OW * C == 0) return;
  const double rr = resize_ratio(H, OH, align), cr = resize_ratio(W, OW, align);
  std::vector<int64_t> sc(OW);
  for (int64_t c = 0; c < OW; c++) sc[c] = nearest_src(c, cr, W, align, half);
  parallel_for(B * OH, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, OW * C)), [&](int64_t b, int64_t e) {
    for (int64_t br = b; br < e; br++) {
      const int64_t bi = br / OH, r = br % OH;
      const uint32_t* src = x + (bi * H + nearest_src(r, rr, H, align, half)) * W * C;
      uint32_t* dst = y + br * OW * C;
      for (int64_t c = 0; c < OW; c++) std::memcpy(dst + c * C, src + sc[c] * C, C * 4);
    }
  });
}

// Each dy pixel is added to the input pixel the forward pass read, in dy row-major order.
void resize_nearest_grad(float* dx, const float* dy, int64_t B, int64_t H, int64_t W, int64_t C, int64_t YH,
                         int64_t YW, bool align) {
  if (B * H * W * C == 0) return;
  const double rr = resize_ratio(H, YH, align), cr = resize_ratio(W, YW, align);
  std::vector<int64_t> sc(YW);
  for (int64_t c = 0; c < YW; c++) sc[c] = nearest_src(c, cr, W, align, false);
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; bi++) {
      float* d = dx + bi * H * W * C;
      std::memset(d, 0, H * W * C * 4);
      for (int64_t r = 0; r < YH; r++) {
        float* drow = d + nearest_src(r, rr, H, align, false) * W * C;
        const float* srow = dy + (bi * YH + r) * YW * C;
        for (int64_t c = 0; c < YW; c++) {
          float* dd = drow + sc[c] * C;
          const float* ss = srow + c * C;
          for (int64_t k = 0; k < C; k++) dd[k] += ss[k];
        }
      }
    }
  });
}

}  // namespace vlmix
