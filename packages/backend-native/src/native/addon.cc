// vlmix_cpu.node: the CPU device policy of the N-API glue (src/glue/napi_glue.h) and the functions
// outside the glue (convolutions, nearest-neighbour resize, rotary, the fused LM-head loss, info, the bf16 switch).
#include "../glue/napi_glue.h"
#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "store_api.h"
#include "threadpool.h"

namespace vlmix {
namespace {

using glue::Id;

// Buffers in host memory (store.cc); every kernel is a plain function of kernels.h.
struct Cpu : Store<Host> {
  static constexpr bool kCaching = false;

  static constexpr auto binary = &vlmix::binary;
  static constexpr auto select = &vlmix::select;
  static constexpr auto add_n = &vlmix::add_n;
  static constexpr auto unary = &vlmix::unary;
  static constexpr auto cast = &vlmix::cast;
  static constexpr auto reduce = &vlmix::reduce;
  static constexpr auto softmax = &vlmix::softmax;
  static constexpr auto copy_strided = &vlmix::copy_strided;
  static constexpr auto fill = &vlmix::fill;
  static constexpr auto one_hot = &vlmix::one_hot;
  static constexpr auto gather = &vlmix::gather;
  static constexpr auto gather_rows = &vlmix::gather_rows;
  static constexpr auto segment_sum = &vlmix::segment_sum;
  static constexpr auto batch_matmul = &vlmix::batch_matmul;
  static constexpr auto layernorm_forward = &vlmix::layernorm_forward;
  static constexpr auto layernorm_backward = &vlmix::layernorm_backward;
  static constexpr auto rmsnorm_forward = &vlmix::rmsnorm_forward;
  static constexpr auto rmsnorm_backward = &vlmix::rmsnorm_backward;
  static constexpr auto attention_forward = &vlmix::attention_forward;
  static constexpr auto attention_backward = &vlmix::attention_backward;
  static constexpr auto sce_forward = &vlmix::sce_forward;
  static constexpr auto sce_backward = &vlmix::sce_backward;
  static constexpr auto gelu_forward = &vlmix::gelu_forward;
  static constexpr auto gelu_backward = &vlmix::gelu_backward;
  static constexpr auto swiglu_forward = &vlmix::swiglu_forward;
  static constexpr auto swiglu_backward = &vlmix::swiglu_backward;
  static constexpr auto adamw = &vlmix::adamw;
  // Two independent pieces of work (the two GEMMs of a linear layer's backward pass) of `macs` multiply-adds
  // each. Small ones run side by side, each whole on one thread: splitting a small GEMM over both threads
  // costs more (packing twice, a wake-up per GEMM) than it saves. Each GEMM sums in the same order either
  // way, so the results are the same bits.
  template <class A, class B>
  static void both(A&& a, B&& b, int64_t macs) {
    if (macs > kBothMaxMacs || num_threads() < 2 || in_parallel()) {
      a();
      b();
      return;
    }
    parallel_for(2, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) i == 0 ? a() : b();
    });
  }
  static constexpr int64_t kBothMaxMacs = int64_t(4) << 20;
};
using G = glue::Glue<Cpu>;
using Out = G::Out;

Napi::Value Info(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemm", gemm_impl_name());
  o.Set("threads", num_threads());
  o.Set("bf16Supported", gemm_bf16_supported());
  o.Set("bf16", gemm_bf16());
  return o;
}

// setGemmBf16(on) -> whether the precision is now as asked (false: the CPU has no AVX512-BF16).
bool SetGemmBf16(bool on) { return set_gemm_bf16(on); }

// resizeNearest(x, [B, H, W, C], newH, newW, alignCorners, halfPixelCenters) -> [B, newH, newW, C]
Id ResizeNearest(Id x, const Dims& s, int64_t newH, int64_t newW, bool alignCorners, bool halfPixelCenters) {
  if (s.size() != 4) throw std::invalid_argument("resizeNearest: expected an NHWC shape of 4 ints");
  Out y(s[0] * newH * newW * s[3]);
  resize_nearest(y.u32(), G::u32(x), s[0], s[1], s[2], s[3], newH, newW, alignCorners, halfPixelCenters);
  return y.keep();
}

// resizeNearestGrad(dy, imagesShape [B, H, W, C], dyH, dyW, alignCorners) -> dx [B, H, W, C]
Id ResizeNearestGrad(Id dy, const Dims& s, int64_t dyH, int64_t dyW, bool alignCorners) {
  if (s.size() != 4) throw std::invalid_argument("resizeNearestGrad: expected an NHWC shape of 4 ints");
  Out dx(s[0] * s[1] * s[2] * s[3]);
  resize_nearest_grad(dx.f32(), G::f32(dy), s[0], s[1], s[2], s[3], dyH, dyW, alignCorners);
  return dx.keep();
}

Id Conv2D(Id x, Id w, const Dims& geom) {
  ConvGeom g = glue::conv_geom(geom);
  Out y(g.rows() * g.Cout);
  conv2d(y.f32(), G::f32(x), G::f32(w), g);
  return y.keep();
}

Id Conv2DBackpropInput(Id dy, Id w, const Dims& geom) {
  ConvGeom g = glue::conv_geom(geom);
  Out dx(g.B * g.H * g.W * g.Cin);
  conv2d_backprop_input(dx.f32(), G::f32(dy), G::f32(w), g);
  return dx.keep();
}

Id Conv2DBackpropFilter(Id x, Id dy, const Dims& geom) {
  ConvGeom g = glue::conv_geom(geom);
  Out dw(g.cols() * g.Cout);
  conv2d_backprop_filter(dw.f32(), G::f32(x), G::f32(dy), g);
  return dw.keep();
}

// rotary(x, cos, sin, [B, H, T, D, R, Bc], interleaved, inverse) -> y [B, H, T, D] (VlmixRotary; CPU only:
// vlmix-cuda runs the composite body).
Id Rotary(Id x, Id cos, Id sin, const Dims& g, bool interleaved, bool inverse) {
  if (g.size() != 6) throw std::invalid_argument("rotary: geometry needs 6 ints [B, H, T, D, R, Bc], got " + std::to_string(g.size()));
  if (2 * g[4] > g[3]) throw std::invalid_argument("rotary: 2 * R = " + std::to_string(2 * g[4]) + " exceeds D = " + std::to_string(g[3]));
  Out y(g[0] * g[1] * g[2] * g[3]);
  rotary(y.f32(), G::f32(x), G::f32(cos), G::f32(sin), g[0], g[1], g[2], g[3], g[4], g[5], interleaved, inverse);
  return y.keep();
}

// linearCe(x [N, C], w [V, C], labels [N], N, C, V, ignoreIndex) -> the mean loss [1] (VlmixLinearCrossEntropy;
// CPU only: vlmix-cuda runs the composite body).
Id LinearCe(Id x, Id w, Id labels, int64_t N, int64_t C, int64_t V, int64_t ignoreIndex) {
  Out loss(1);
  loss.f32()[0] = linear_ce_forward(G::f32(x), G::f32(w), G::i32(labels), N, C, V, ignoreIndex);
  return loss.keep();
}

// linearCeGrad(dloss [1], x, w, labels, N, C, V, ignoreIndex) -> [dx [N, C], dw [V, C]].
glue::Ids<2> LinearCeGrad(Id dloss, Id x, Id w, Id labels, int64_t N, int64_t C, int64_t V, int64_t ignoreIndex) {
  Out dx(N * C), dw(V * C);
  linear_ce_backward(dx.f32(), dw.f32(), G::f32(dloss)[0], G::f32(x), G::f32(w), G::i32(labels), N, C, V, ignoreIndex);
  return {dx.keep(), dw.keep()};
}

}  // namespace
}  // namespace vlmix

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vlmix;
  glue::Module m(env, exports);
  G::define(m);
  m.fn<&Info>("info");
  m.fn<&SetGemmBf16>("setGemmBf16");
  m.fn<&ResizeNearest>("resizeNearest");
  m.fn<&ResizeNearestGrad>("resizeNearestGrad");
  m.fn<&Rotary>("rotary");
  m.fn<&LinearCe>("linearCe");
  m.fn<&LinearCeGrad>("linearCeGrad");
  m.fn<&Conv2D>("conv2d");
  m.fn<&Conv2DBackpropInput>("conv2dBackpropInput");
  m.fn<&Conv2DBackpropFilter>("conv2dBackpropFilter");
  return exports;
}

NODE_API_MODULE(vlmix_cpu, Init)
