// vlmix_cuda.node: the CUDA device policy of the N-API glue (src/glue/napi_glue.h) and the functions
// outside the glue (device probe and control, convolutions). Buffers live in device memory; kernel launches
// are asynchronous on one stream, and only read/readBool/synchronize wait for the GPU. The kernels'
// math is in *.cu (kernels.h); this file adapts the glue's kernel calls to those launchers.
#include "../glue/napi_glue.h"
#include "device.h"
#include "kernels.h"

#include <optional>

namespace vlmix_cuda {
namespace {

using vlmix::glue::Id;

// A broadcast or copy plan (copy: strides[0] = source, strides[1] = destination) in the fixed-size
// form the kernels take; the glue builds it as for the CPU.
StridedPlan strided_plan(const vlmix::BcastPlan& b) {
  if (b.rank > kMaxRank) throw std::runtime_error("vlmix-cuda: strided rank > 8 after collapsing");
  StridedPlan p{};
  p.rank = b.rank;
  p.total = b.total;
  for (int d = 0; d < p.rank; d++) {
    p.dims[d] = b.dims[d];
    for (int k = 0; k < 3; k++) p.strides[k][d] = b.strides[k][d];
  }
  return p;
}

// Device buffers (device.cc); kernel calls of the glue -> launchers on the stream, each followed by a
// launch check.
struct Cuda : DeviceStore {
  static constexpr bool kCaching = true;

  static void binary(void* out, const void* a, const void* b, const vlmix::BcastPlan& p, int op, int dtype) {
    launch_binary(stream(), op, dtype, a, b, out, strided_plan(p));
    check_launch("binary");
  }
  static void select(void* out, const int32_t* c, const void* t, const void* e, const vlmix::BcastPlan& p) {
    launch_select(stream(), c, t, e, out, strided_plan(p));
    check_launch("select");
  }
  static void add_n(void* out, const void* const* xs, int64_t count, int64_t n, int dtype) {
    launch_add_n(stream(), dtype, xs, (int)count, out, n);
    check_launch("addN");
  }
  static void unary(void* out, const void* x, int64_t n, int op, int dtype, double alpha, double beta) {
    launch_unary(stream(), op, dtype, x, out, n, alpha, beta);
    check_launch("unary");
  }
  static void cast(void* out, const void* x, int64_t n, int from, int to, bool to_bool) {
    launch_cast(stream(), x, out, n, from, to, to_bool);
    check_launch("cast");
  }
  static void reduce(void* out, const void* x, int64_t outer, int64_t R, int64_t inner, int op, int dtype) {
    launch_reduce(stream(), op, dtype, x, out, outer, R, inner);
    check_launch("reduce");
  }
  static void softmax(float* y, const float* x, int64_t rows, int64_t cols, bool log) {
    launch_softmax(stream(), x, y, rows, cols, log);
    check_launch("softmax");
  }
  static void copy_strided(uint32_t* dst, int64_t doff, const uint32_t* src, int64_t soff, const vlmix::CopyPlan& p) {
    launch_strided_copy(stream(), src, soff, dst, doff, strided_plan(p));
    check_launch("strided copy");
  }
  static void fill(uint32_t* out, int64_t n, uint32_t bits) {
    launch_fill(stream(), out, n, bits);
    check_launch("fill");
  }
  static void one_hot(uint32_t* out, const int32_t* idx, int64_t n, int64_t depth, uint32_t on, uint32_t off) {
    launch_one_hot(stream(), idx, n, depth, on, off, out);
    check_launch("oneHot");
  }
  static void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t N, int64_t inner,
                     int64_t M) {
    launch_gather(stream(), x, idx, out, outer, N, inner, M);
    check_launch("gather");
  }
  // No row-gather kernel of its own: x with a zero row appended ([rows + 1, C]), then the gather kernel.
  static void gather_rows(uint32_t* out, const uint32_t* x, int64_t rows, const int32_t* idx, int64_t n, int64_t C) {
    Scratch padded((rows + 1) * C);
    if (rows * C) cudaMemcpyAsync(padded.p, x, (size_t)(rows * C) * 4, cudaMemcpyDeviceToDevice, stream());
    if (C) cudaMemsetAsync(padded.p + rows * C, 0, (size_t)C * 4, stream());
    launch_gather(stream(), reinterpret_cast<const uint32_t*>(padded.p), idx, out, 1, rows + 1, C, n, kErrGatherRowsIndex);
    check_launch("gatherRows");
  }
  static void segment_sum(void* out, const void* x, const int32_t* ids, int64_t N, int64_t inner, int64_t S,
                          int dtype) {
    if (N > INT32_MAX) throw std::runtime_error("vlmix-cuda: UnsortedSegmentSum over more than 2^31 rows");
    Scratch scratch(segment_sum_scratch_ints(N, S));  // ints in float-sized slots
    launch_segment_sum(stream(), dtype, x, ids, out, N, inner, S, reinterpret_cast<int*>(scratch.p));
    check_launch("segmentSum");
  }
  // The glue's independent pieces of work: in stream order (the GPU runs each kernel on all its cores).
  template <class A, class B>
  static void both(A&& a, B&& b, int64_t) {
    a();
    b();
  }
  static void batch_matmul(float* c, const float* a, const float* b, int64_t ba, int64_t bb, int64_t M, int64_t N,
                           int64_t K, bool ta, bool tb) {
    gemm(ta, tb, std::max(ba, bb), M, N, K, a, ba == 1 ? 0 : M * K, b, bb == 1 ? 0 : K * N, c);
  }
  static void layernorm_forward(float* y, const float* x, const float* gamma, const float* beta, int64_t rows,
                                int64_t C, double eps) {
    launch_norm_fwd(stream(), false, x, gamma, beta, y, rows, C, eps);
    check_launch("norm");
  }
  static void rmsnorm_forward(float* y, const float* x, const float* gamma, int64_t rows, int64_t C, double eps) {
    launch_norm_fwd(stream(), true, x, gamma, nullptr, y, rows, C, eps);
    check_launch("norm");
  }
  static void norm_backward(bool rms, float* dx, float* dg, float* db, const float* dy, const float* x,
                            const float* gamma, int64_t rows, int64_t C, double eps) {
    Scratch scratch(norm_bwd_scratch_floats(rows, C));
    launch_norm_bwd(stream(), rms, dy, x, gamma, dx, dg, db, scratch.p, rows, C, eps);
    check_launch("norm grad");
  }
  static void layernorm_backward(float* dx, float* dg, float* db, const float* dy, const float* x, const float* gamma,
                                 int64_t rows, int64_t C, double eps) {
    norm_backward(false, dx, dg, db, dy, x, gamma, rows, C, eps);
  }
  static void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x, const float* gamma,
                               int64_t rows, int64_t C, double eps) {
    norm_backward(true, dx, dg, nullptr, dy, x, gamma, rows, C, eps);
  }
  static void attention_forward(float* out, const float* q, const float* k, const float* v, const float* bias,
                                const AttnGeom& g) {
    launch_attention(stream(), g, q, k, v, bias, out);
    check_launch("attention");
  }
  static void attention_backward(float* dq, float* dk, float* dv, const float* dy, const float* q, const float* k,
                                 const float* v, const float* bias, const AttnGeom& g) {
    Scratch scratch(2 * g.B * g.Hq * g.Tq + 1);
    launch_attention_grad(stream(), g, dy, q, k, v, bias, dq, dk, dv, scratch.p);
    check_launch("attention grad");
  }
  static void sce_forward(float* loss, const float* lg, const int32_t* lb, int64_t N, int64_t V, int64_t ign) {
    launch_sce(stream(), lg, lb, loss, N, V, ign);
    check_launch("sce");
  }
  static void sce_backward(float* d, const float* dl, const float* lg, const int32_t* lb, int64_t N, int64_t V,
                           int64_t ign) {
    launch_sce_grad(stream(), dl, lg, lb, d, N, V, ign);
    check_launch("sce grad");
  }
  static void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form) {
    launch_gelu(stream(), x, y, n, tanh_form);
    check_launch("gelu");
  }
  static void gelu_backward(float* dx, const float* dy, const float* x, int64_t n, bool tanh_form) {
    launch_gelu_grad(stream(), dy, x, dx, n, tanh_form);
    check_launch("gelu grad");
  }
  static void swiglu_forward(float* y, const float* g, const float* u, int64_t n) {
    launch_swiglu(stream(), g, u, y, n);
    check_launch("swiglu");
  }
  static void swiglu_backward(float* dg, float* du, const float* dy, const float* g, const float* u, int64_t n) {
    launch_swiglu_grad(stream(), dy, g, u, dg, du, n);
    check_launch("swiglu grad");
  }
  static void adamw(const AdamWTensor* ts, int64_t count, const AdamWHyper& h) {
    launch_adamw(stream(), ts, (int)count, h);
    check_launch("adamw");
  }
};

using G = vlmix::glue::Glue<Cuda>;
using vlmix::Dims;

// True when the convolution is a plain matrix product: cols would equal x.
bool conv_is_matmul(const ConvGeom& g) {
  return g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.OH == g.H && g.OW == g.W;
}

// The im2col matrix [rows, KH*KW*Cin] of x: x itself for a plain matrix product, else built in `cols`.
const float* conv_cols(const float* x, const ConvGeom& g, std::optional<Scratch>& cols) {
  if (conv_is_matmul(g)) return x;
  cols.emplace(g.rows() * g.cols());
  launch_im2col(stream(), x, cols->p, g);
  check_launch("conv2d im2col");
  return cols->p;
}

// conv2d(x, w, geom) -> y [B, OH, OW, Cout] = cols [rows, K] x w [K, Cout]
Id Conv2D(Id x, Id w, const Dims& geom) {
  const ConvGeom g = vlmix::glue::conv_geom(geom);
  G::Out y(g.rows() * g.Cout);
  std::optional<Scratch> cols;
  gemm(false, false, 1, g.rows(), g.Cout, g.cols(), conv_cols(G::f32(x), g, cols), 0, G::f32(w), 0, y.f32());
  return y.keep();
}

// conv2dBackpropInput(dy, w, geom) -> dx [B, H, W, Cin]: dcols = dy [rows, Cout] x w^T, then col2im
Id Conv2DBackpropInput(Id dy, Id w, const Dims& geom) {
  const ConvGeom g = vlmix::glue::conv_geom(geom);
  G::Out dx(g.B * g.H * g.W * g.Cin);
  if (conv_is_matmul(g)) {
    gemm(false, true, 1, g.rows(), g.cols(), g.Cout, G::f32(dy), 0, G::f32(w), 0, dx.f32());
  } else {
    Scratch dcols(g.rows() * g.cols());
    gemm(false, true, 1, g.rows(), g.cols(), g.Cout, G::f32(dy), 0, G::f32(w), 0, dcols.p);
    launch_col2im(stream(), dcols.p, dx.f32(), g);
    check_launch("conv2d col2im");
  }
  return dx.keep();
}

// conv2dBackpropFilter(x, dy, geom) -> dw [KH, KW, Cin, Cout] = cols^T x dy
Id Conv2DBackpropFilter(Id x, Id dy, const Dims& geom) {
  const ConvGeom g = vlmix::glue::conv_geom(geom);
  G::Out dw(g.cols() * g.Cout);
  std::optional<Scratch> cols;
  gemm(true, false, 1, g.cols(), g.Cout, g.rows(), conv_cols(G::f32(x), g, cols), 0, G::f32(dy), 0, dw.f32());
  return dw.keep();
}

// device() -> {available, reason, name?, computeCapability?, ...}; never throws.
Napi::Value Device(Napi::Env env) {
  const Probe& p = probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", p.ok);
  o.Set("reason", p.reason);
  o.Set("deviceCount", p.count);
  o.Set("driverVersion", p.driver);
  o.Set("runtimeVersion", p.runtime);
  if (!p.name.empty()) {
    o.Set("name", p.name);
    o.Set("index", p.device);
    o.Set("computeCapability", std::to_string(p.major) + "." + std::to_string(p.minor));
    o.Set("totalMemory", (double)p.total_mem);
  }
  return o;
}

Napi::Value Info(Napi::Env env) {
  ensure_ready();
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemm", gemm_impl());
  o.Set("threads", 0);
  o.Set("tf32", tf32_enabled());
  return o;
}

void SetTf32(bool on) { set_tf32(on); }

}  // namespace
}  // namespace vlmix_cuda

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vlmix_cuda;
  // Nothing here touches the GPU: device() probes on first call, so loading never fails for lack of one.
  vlmix::glue::Module m(env, exports);
  vlmix::glue::Glue<Cuda>::define(m);
  m.fn<&Device>("device");
  m.fn<&Info>("info");
  m.fn<&SetTf32>("setTf32");
  m.fn<&synchronize>("synchronize");
  m.fn<&store_trim>("trim");
  m.fn<&Conv2D>("conv2d");
  m.fn<&Conv2DBackpropInput>("conv2dBackpropInput");
  m.fn<&Conv2DBackpropFilter>("conv2dBackpropFilter");
  return exports;
}

NODE_API_MODULE(vlmix_cuda, Init)
