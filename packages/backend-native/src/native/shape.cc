// Data movement: one strided-copy primitive serves transpose, slice, strided slice, reverse,
// broadcast, tile, pad, concat and split. Elements are 4 bytes regardless of dtype.
#include "common.h"
#include "simd.h"

namespace vlmix {
namespace {

struct CopyPlan {
  std::vector<int64_t> dims, ss, ds;
};

CopyPlan collapse(const std::vector<int64_t>& shape, const std::vector<int64_t>& ss,
                  const std::vector<int64_t>& ds) {
  CopyPlan p;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!p.dims.empty() && p.ss.back() == ss[d] * shape[d] && p.ds.back() == ds[d] * shape[d]) {
      p.dims.back() *= shape[d];
      p.ss.back() = ss[d];
      p.ds.back() = ds[d];
    } else {
      p.dims.push_back(shape[d]);
      p.ss.push_back(ss[d]);
      p.ds.push_back(ds[d]);
    }
  }
  if (p.dims.empty()) { p.dims = {1}; p.ss = {1}; p.ds = {1}; }
  return p;
}

void copy_strided(const uint32_t* src, int64_t soff, uint32_t* dst, int64_t doff, const CopyPlan& p) {
  const int64_t r = (int64_t)p.dims.size();
  const int64_t L = p.dims[r - 1], sL = p.ss[r - 1], dL = p.ds[r - 1];
  int64_t rows = 1;
  for (int64_t d = 0; d < r - 1; d++) rows *= p.dims[d];
  if (rows * L == 0) return;
  // 2-D transpose-like case: tile so both reads and writes stay in cache.
  if (r == 2 && sL != 1 && p.ss[0] == 1 && dL == 1 && rows >= 32 && L >= 32) {
    // dst[i * dR + j] = src[j * sL + i]: a transpose of the [L, R] source matrix (row stride sL).
    const int64_t R = rows, dR = p.ds[0];
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
    for (int64_t d = 0; d < r - 1; d++) { so += idx[d] * p.ss[d]; dO += idx[d] * p.ds[d]; }
    for (int64_t row = b; row < e; row++) {
      if (sL == 1 && dL == 1) std::memcpy(dst + dO, src + so, L * 4);
      else if (sL == 0) { uint32_t v = src[so]; for (int64_t j = 0; j < L; j++) dst[dO + j * dL] = v; }
      else for (int64_t j = 0; j < L; j++) dst[dO + j * dL] = src[so + j * sL];
      for (int64_t d = r - 2; d >= 0; d--) {
        idx[d]++; so += p.ss[d]; dO += p.ds[d];
        if (idx[d] < p.dims[d]) break;
        so -= p.ss[d] * p.dims[d]; dO -= p.ds[d] * p.dims[d]; idx[d] = 0;
      }
    }
  });
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) { s[i] = acc; acc *= shape[i]; }
  return s;
}

// strided(src, srcOffset, srcStrides, outShape) -> id (contiguous output)
Napi::Value Strided(const Napi::CallbackInfo& info) {
  const uint32_t* src = (const uint32_t*)store_ptr(arg_id(info, 0));
  int64_t soff = arg_i(info, 1);
  auto ss = arg_vec(info, 2), shape = arg_vec(info, 3);
  if (shape.size() > 15) throw std::runtime_error("rank > 15 not supported");
  int32_t id = store_alloc(prod(shape));
  copy_strided(src, soff, (uint32_t*)store_ptr(id), 0, collapse(shape, ss, contiguous_strides(shape)));
  return ret_id(info, id);
}

// copyInto(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape)
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  const uint32_t* src = (const uint32_t*)store_ptr(arg_id(info, 0));
  int64_t soff = arg_i(info, 1);
  auto ss = arg_vec(info, 2);
  uint32_t* dst = (uint32_t*)store_ptr(arg_id(info, 3));
  int64_t doff = arg_i(info, 4);
  auto ds = arg_vec(info, 5), shape = arg_vec(info, 6);
  if (shape.size() > 15) throw std::runtime_error("rank > 15 not supported");
  copy_strided(src, soff, dst, doff, collapse(shape, ss, ds));
  return info.Env().Undefined();
}

// fill(dtype, n, value) -> id
Napi::Value Fill(const Napi::CallbackInfo& info) {
  int dtype = (int)arg_i(info, 0);
  int64_t n = arg_i(info, 1);
  double v = arg_d(info, 2);
  int32_t id = store_alloc(n);
  void* out = store_ptr(id);
  if (dtype == F32) { float f = (float)v; float* o = (float*)out; for (int64_t i = 0; i < n; i++) o[i] = f; }
  else { int32_t k = to_i32(v); int32_t* o = (int32_t*)out; for (int64_t i = 0; i < n; i++) o[i] = k; }
  return ret_id(info, id);
}

// oneHot(indices, n, depth, on, off, dtype) -> id
Napi::Value OneHot(const Napi::CallbackInfo& info) {
  const int32_t* idx = arg_i32(info, 0);
  int64_t n = arg_i(info, 1), depth = arg_i(info, 2);
  double on = arg_d(info, 3), off = arg_d(info, 4);
  int dtype = (int)arg_i(info, 5);
  int32_t id = store_alloc(n * depth);
  uint32_t von, voff;
  if (dtype == F32) { float a = (float)on, b = (float)off; std::memcpy(&von, &a, 4); std::memcpy(&voff, &b, 4); }
  else { int32_t a = to_i32(on), b = to_i32(off); std::memcpy(&von, &a, 4); std::memcpy(&voff, &b, 4); }
  uint32_t* o = (uint32_t*)store_ptr(id);
  for (int64_t i = 0; i < n * depth; i++) o[i] = voff;
  for (int64_t i = 0; i < n; i++)
    if (idx[i] >= 0 && idx[i] < depth) o[i * depth + idx[i]] = von;
  return ret_id(info, id);
}

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

// resizeNearest(x, [B, H, W, C], newH, newW, alignCorners, halfPixelCenters) -> id (NHWC)
Napi::Value ResizeNearest(const Napi::CallbackInfo& info) {
  const uint32_t* x = (const uint32_t*)store_ptr(arg_id(info, 0));
  auto s = arg_vec(info, 1);
  const int64_t B = s[0], H = s[1], W = s[2], C = s[3], OH = arg_i(info, 2), OW = arg_i(info, 3);
  const bool align = arg_b(info, 4), half = arg_b(info, 5);
  int32_t id = store_alloc(B * OH * OW * C);
  uint32_t* y = (uint32_t*)store_ptr(id);
  if (B * OH * OW * C == 0) return ret_id(info, id);
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
  return ret_id(info, id);
}

// resizeNearestGrad(dy, [B, H, W, C], yH, yW, alignCorners) -> dx [B, H, W, C] (float32):
// each dy pixel is added to the input pixel the forward pass read, in dy row-major order.
Napi::Value ResizeNearestGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  auto s = arg_vec(info, 1);
  const int64_t B = s[0], H = s[1], W = s[2], C = s[3], YH = arg_i(info, 2), YW = arg_i(info, 3);
  const bool align = arg_b(info, 4);
  int32_t id = store_alloc(B * H * W * C);
  float* dx = (float*)store_ptr(id);
  if (B * H * W * C == 0) return ret_id(info, id);
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
  return ret_id(info, id);
}

}  // namespace

void init_shape(Napi::Env env, Napi::Object exports) {
  def(env, exports, "strided", Strided);
  def(env, exports, "copyInto", CopyInto);
  def(env, exports, "fill", Fill);
  def(env, exports, "oneHot", OneHot);
  def(env, exports, "resizeNearest", ResizeNearest);
  def(env, exports, "resizeNearestGrad", ResizeNearestGrad);
}

}  // namespace vlmix
