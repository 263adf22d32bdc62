// NHWC Conv2D and its two gradients via im2col / col2im + sgemm.
#include "common.h"
#include "gemm.h"

namespace vlmix {
namespace {

struct ConvGeom {
  int64_t B, H, W, Cin, KH, KW, Cout, OH, OW, sh, sw, pt, pl, dh, dw;
  int64_t rows() const { return B * OH * OW; }
  int64_t cols() const { return KH * KW * Cin; }
};

ConvGeom geom(const Napi::CallbackInfo& info, size_t i) {
  auto v = arg_vec(info, i);
  if (v.size() != 15) throw std::runtime_error("conv geometry needs 15 ints");
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
}

// cols[(b,oh,ow), (kh,kw,c)] = x[b, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c] (0 outside).
std::vector<float> im2col(const float* x, const ConvGeom& g) {
  std::vector<float> cols(g.rows() * g.cols());
  parallel_for(g.rows(), 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      int64_t bi = r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
      float* dst = cols.data() + r * g.cols();
      for (int64_t kh = 0; kh < g.KH; kh++) {
        int64_t ih = oh * g.sh - g.pt + kh * g.dh;
        for (int64_t kw = 0; kw < g.KW; kw++) {
          int64_t iw = ow * g.sw - g.pl + kw * g.dw;
          float* d = dst + (kh * g.KW + kw) * g.Cin;
          if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) std::memset(d, 0, g.Cin * 4);
          else std::memcpy(d, x + ((bi * g.H + ih) * g.W + iw) * g.Cin, g.Cin * 4);
        }
      }
    }
  });
  return cols;
}

// conv2d(x, w, geom) -> id : w is [KH, KW, Cin, Cout] = [cols, Cout].
Napi::Value Conv2D(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  const float* w = arg_f32(info, 1);
  ConvGeom g = geom(info, 2);
  int32_t id = store_alloc(g.rows() * g.Cout);
  float* y = (float*)store_ptr(id);
  if (g.rows() * g.Cout == 0) return ret_id(info, id);
  if (g.cols() == 0) { std::memset(y, 0, g.rows() * g.Cout * 4); return ret_id(info, id); }
  bool direct = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                g.OH == g.H && g.OW == g.W;
  if (direct) {
    sgemm(false, false, g.rows(), g.Cout, g.cols(), 1.f, x, g.cols(), w, g.Cout, 0.f, y, g.Cout);
  } else {
    auto cols = im2col(x, g);
    sgemm(false, false, g.rows(), g.Cout, g.cols(), 1.f, cols.data(), g.cols(), w, g.Cout, 0.f, y, g.Cout);
  }
  return ret_id(info, id);
}

// conv2dBackpropInput(dy, w, geom) -> dx [B, H, W, Cin].
Napi::Value Conv2DBackpropInput(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* w = arg_f32(info, 1);
  ConvGeom g = geom(info, 2);
  int32_t id = store_alloc(g.B * g.H * g.W * g.Cin);
  float* dx = (float*)store_ptr(id);
  std::memset(dx, 0, g.B * g.H * g.W * g.Cin * 4);
  if (g.rows() * g.cols() == 0 || g.Cout == 0) return ret_id(info, id);
  std::vector<float> dcols(g.rows() * g.cols());
  sgemm(false, true, g.rows(), g.cols(), g.Cout, 1.f, dy, g.Cout, w, g.Cout, 0.f, dcols.data(), g.cols());
  // col2im: images are independent, and within one image the scatter order is fixed.
  parallel_for(g.B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; bi++)
      for (int64_t oh = 0; oh < g.OH; oh++)
        for (int64_t ow = 0; ow < g.OW; ow++) {
          const float* src = dcols.data() + ((bi * g.OH + oh) * g.OW + ow) * g.cols();
          for (int64_t kh = 0; kh < g.KH; kh++) {
            int64_t ih = oh * g.sh - g.pt + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kw = 0; kw < g.KW; kw++) {
              int64_t iw = ow * g.sw - g.pl + kw * g.dw;
              if (iw < 0 || iw >= g.W) continue;
              float* d = dx + ((bi * g.H + ih) * g.W + iw) * g.Cin;
              const float* s = src + (kh * g.KW + kw) * g.Cin;
              for (int64_t c = 0; c < g.Cin; c++) d[c] += s[c];
            }
          }
        }
  });
  return ret_id(info, id);
}

// conv2dBackpropFilter(x, dy, geom) -> dw [KH, KW, Cin, Cout].
Napi::Value Conv2DBackpropFilter(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  const float* dy = arg_f32(info, 1);
  ConvGeom g = geom(info, 2);
  int32_t id = store_alloc(g.cols() * g.Cout);
  float* dw = (float*)store_ptr(id);
  if (g.cols() * g.Cout == 0) return ret_id(info, id);
  if (g.rows() == 0) { std::memset(dw, 0, g.cols() * g.Cout * 4); return ret_id(info, id); }
  auto cols = im2col(x, g);
  sgemm(true, false, g.cols(), g.Cout, g.rows(), 1.f, cols.data(), g.cols(), dy, g.Cout, 0.f, dw, g.Cout);
  return ret_id(info, id);
}

}  // namespace

void init_conv(Napi::Env env, Napi::Object exports) {
  def(env, exports, "conv2d", Conv2D);
  def(env, exports, "conv2dBackpropInput", Conv2DBackpropInput);
  def(env, exports, "conv2dBackpropFilter", Conv2DBackpropFilter);
}

}  // namespace vlmix
