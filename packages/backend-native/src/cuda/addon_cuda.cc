// N-API entry of vlmix_cuda.node. The JS-facing functions mirror the CPU addon's (src/native.ts
// NativeAddon), with buffers in device memory, so the vlmix-cpu kernel wrappers drive both. Kernel
// launches are asynchronous on one stream; only read/readBool/synchronize wait for the GPU.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../native/bcast_plan.h"
#include "device.h"
#include "kernels.h"

namespace vlmix_cuda {
namespace {

// ------------------------------------------------------------------ argument helpers

int32_t arg_id(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
int64_t arg_i(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
double arg_d(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
bool arg_b(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }
void* arg_ptr(const Napi::CallbackInfo& info, size_t i) { return store_ptr(arg_id(info, i)); }
float* arg_f32(const Napi::CallbackInfo& info, size_t i) { return static_cast<float*>(arg_ptr(info, i)); }
int32_t* arg_i32(const Napi::CallbackInfo& info, size_t i) { return static_cast<int32_t*>(arg_ptr(info, i)); }
float* arg_f32_opt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) return nullptr;
  int32_t id = info[i].As<Napi::Number>().Int32Value();
  return id < 0 ? nullptr : static_cast<float*>(store_ptr(id));
}
std::vector<int64_t> arg_vec(const Napi::CallbackInfo& info, size_t i) {
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> v(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) v[k] = a.Get(k).As<Napi::Number>().Int64Value();
  return v;
}
Napi::Value ret_id(const Napi::CallbackInfo& info, int32_t id) { return Napi::Number::New(info.Env(), id); }
Napi::Value ret_ids(const Napi::CallbackInfo& info, std::initializer_list<int32_t> ids) {
  Napi::Array a = Napi::Array::New(info.Env(), ids.size());
  uint32_t k = 0;
  for (auto id : ids) a.Set(k++, Napi::Number::New(info.Env(), id));
  return a;
}
int64_t prod(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (auto d : s) p *= d;
  return p;
}
// JS ToInt32 of a double.
int32_t to_i32(double d) {
  if (!std::isfinite(d)) return 0;
  d = std::trunc(d);
  double m = std::fmod(d, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}
uint32_t bits_of(int dtype, double v) {
  uint32_t b;
  if (dtype == 0) { float f = (float)v; std::memcpy(&b, &f, 4); }
  else { int32_t k = to_i32(v); std::memcpy(&b, &k, 4); }
  return b;
}

// Broadcast plan: the CPU addon's make_bcast (operands right-aligned against out, dims collapsed), in the
// fixed-size form the kernels take.
StridedPlan bcast_plan(const std::vector<std::vector<int64_t>>& shapes, const std::vector<int64_t>& out) {
  const vlmix::BcastPlan b = vlmix::make_bcast(shapes, out);
  if (b.dims.size() > (size_t)kMaxRank) throw std::runtime_error("vlmix-cuda: broadcast rank > 8 after collapsing");
  StridedPlan p{};
  p.rank = (int)b.dims.size();
  p.total = b.total;
  for (int d = 0; d < p.rank; d++) {
    p.dims[d] = b.dims[d];
    for (size_t k = 0; k < shapes.size(); k++) p.strides[k][d] = b.strides[k][d];
  }
  return p;
}

// Copy plan: strides[0] = source, strides[1] = destination.
StridedPlan copy_plan(const std::vector<int64_t>& shape, const std::vector<int64_t>& ss, const std::vector<int64_t>& ds) {
  std::vector<int64_t> dims, a, b;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!dims.empty() && a.back() == ss[d] * shape[d] && b.back() == ds[d] * shape[d]) {
      dims.back() *= shape[d];
      a.back() = ss[d];
      b.back() = ds[d];
    } else {
      dims.push_back(shape[d]);
      a.push_back(ss[d]);
      b.push_back(ds[d]);
    }
  }
  if (dims.size() > (size_t)kMaxRank) throw std::runtime_error("vlmix-cuda: strided copy rank > 8 after collapsing");
  StridedPlan p{};
  p.rank = (int)dims.size();
  p.total = prod(shape);
  for (int d = 0; d < p.rank; d++) {
    p.dims[d] = dims[d];
    p.strides[0][d] = a[d];
    p.strides[1][d] = b[d];
  }
  if (p.rank == 0) {
    p.rank = 1;
    p.dims[0] = 1;
    p.strides[0][0] = p.strides[1][0] = 1;
  }
  return p;
}

std::vector<int64_t> contiguous(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) { s[i] = acc; acc *= shape[i]; }
  return s;
}

cudaStream_t S() { return stream(); }

// ------------------------------------------------------------------ memory

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t n = ta.ElementLength();
  int32_t id = store_alloc((int64_t)n);
  upload(store_ptr(id), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), n * 4);
  return ret_id(info, id);
}

Napi::Value CreateBool(const Napi::CallbackInfo& info) {
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t n = ta.ElementLength();
  const uint8_t* src = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  std::vector<int32_t> tmp(n);
  for (size_t i = 0; i < n; i++) tmp[i] = src[i] != 0;
  int32_t id = store_alloc((int64_t)n);
  // A pageable-source cudaMemcpyAsync returns once the bytes are staged, so tmp may die afterwards.
  upload(store_ptr(id), tmp.data(), n * 4);
  return ret_id(info, id);
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  int32_t id = arg_id(info, 0);
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = std::min<size_t>(ta.ElementLength(), (size_t)store_nelem(id));
  read_to_host(store_ptr(id), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), n * 4);
  return info.Env().Undefined();
}

Napi::Value ReadBool(const Napi::CallbackInfo& info) {
  int32_t id = arg_id(info, 0);
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = std::min<size_t>(ta.ElementLength(), (size_t)store_nelem(id));
  std::vector<int32_t> tmp(n);
  read_to_host(store_ptr(id), tmp.data(), n * 4);
  uint8_t* dst = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  for (size_t i = 0; i < n; i++) dst[i] = tmp[i] != 0;
  return info.Env().Undefined();
}

Napi::Value Alloc(const Napi::CallbackInfo& info) { return ret_id(info, store_alloc(arg_i(info, 0))); }
Napi::Value Free(const Napi::CallbackInfo& info) {
  store_free(arg_id(info, 0));
  return info.Env().Undefined();
}
Napi::Value Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), (double)store_nelem(arg_id(info, 0)));
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  MemStats m = store_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytes", (double)m.bytes);
  o.Set("peakBytes", (double)m.peak);
  o.Set("buffers", (double)m.count);
  o.Set("cachedBytes", (double)m.cached);
  o.Set("reservedBytes", (double)m.reserved);
  return o;
}
Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  store_reset_peak();
  return info.Env().Undefined();
}
Napi::Value Trim(const Napi::CallbackInfo& info) {
  store_trim();
  return info.Env().Undefined();
}
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  synchronize();
  return info.Env().Undefined();
}

// device() -> {available, reason, name?, computeCapability?, ...}; never throws.
Napi::Value Device(const Napi::CallbackInfo& info) {
  const Probe& p = probe();
  Napi::Env env = info.Env();
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

Napi::Value Info(const Napi::CallbackInfo& info) {
  ensure_ready();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gemm", gemm_impl());
  o.Set("threads", 0);
  o.Set("tf32", tf32_enabled());
  return o;
}

Napi::Value SetTf32(const Napi::CallbackInfo& info) {
  set_tf32(arg_b(info, 0));
  return info.Env().Undefined();
}

// ------------------------------------------------------------------ elementwise

Napi::Value Binary(const Napi::CallbackInfo& info) {
  int op = (int)arg_i(info, 0), dtype = (int)arg_i(info, 1);
  if (op < 0 || op >= kNumBin) throw std::runtime_error("bad binary op");
  void* a = arg_ptr(info, 2);
  auto as = arg_vec(info, 3);
  void* b = arg_ptr(info, 4);
  auto bs = arg_vec(info, 5), os = arg_vec(info, 6);
  int32_t id = store_alloc(prod(os));
  if (prod(os) == 0) return ret_id(info, id);
  launch_binary(S(), op, dtype, a, b, store_ptr(id), bcast_plan({as, bs}, os));
  check_launch("binary");
  return ret_id(info, id);
}

Napi::Value AddN(const Napi::CallbackInfo& info) {
  int dtype = (int)arg_i(info, 0);
  auto ids = arg_vec(info, 1);
  int64_t n = arg_i(info, 2);
  std::vector<const void*> ps;
  for (auto i : ids) ps.push_back(store_ptr((int32_t)i));
  int32_t id = store_alloc(n);
  launch_add_n(S(), dtype, ps.data(), (int)ps.size(), store_ptr(id), n);
  check_launch("addN");
  return ret_id(info, id);
}

Napi::Value Select(const Napi::CallbackInfo& info) {
  const int32_t* c = arg_i32(info, 0);
  void* t = arg_ptr(info, 1);
  void* e = arg_ptr(info, 2);
  auto cs = arg_vec(info, 3), ts = arg_vec(info, 4), es = arg_vec(info, 5), os = arg_vec(info, 6);
  int32_t id = store_alloc(prod(os));
  if (prod(os) == 0) return ret_id(info, id);
  launch_select(S(), c, t, e, store_ptr(id), bcast_plan({cs, ts, es}, os));
  check_launch("select");
  return ret_id(info, id);
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  int op = (int)arg_i(info, 0), dtype = (int)arg_i(info, 1);
  if (op < 0 || op >= kNumUn) throw std::runtime_error("bad unary op");
  void* x = arg_ptr(info, 2);
  int64_t n = arg_i(info, 3);
  double a = info.Length() > 4 ? arg_d(info, 4) : 0, b = info.Length() > 5 ? arg_d(info, 5) : 0;
  int32_t id = store_alloc(n);
  launch_unary(S(), op, dtype, x, store_ptr(id), n, a, b);
  check_launch("unary");
  return ret_id(info, id);
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  void* x = arg_ptr(info, 0);
  int64_t n = arg_i(info, 1);
  int from = (int)arg_i(info, 2), to = (int)arg_i(info, 3);
  bool to_bool = arg_b(info, 4);
  int32_t id = store_alloc(n);
  launch_cast(S(), x, store_ptr(id), n, from, to, to_bool);
  check_launch("cast");
  return ret_id(info, id);
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  int dtype = (int)arg_i(info, 0);
  int64_t n = arg_i(info, 1);
  int32_t id = store_alloc(n);
  launch_fill(S(), store_ptr(id), n, bits_of(dtype, arg_d(info, 2)));
  check_launch("fill");
  return ret_id(info, id);
}

Napi::Value OneHot(const Napi::CallbackInfo& info) {
  const int32_t* idx = arg_i32(info, 0);
  int64_t n = arg_i(info, 1), depth = arg_i(info, 2);
  int dtype = (int)arg_i(info, 5);
  int32_t id = store_alloc(n * depth);
  launch_one_hot(S(), idx, n, depth, bits_of(dtype, arg_d(info, 3)), bits_of(dtype, arg_d(info, 4)), store_ptr(id));
  check_launch("oneHot");
  return ret_id(info, id);
}

Napi::Value Strided(const Napi::CallbackInfo& info) {
  const uint32_t* src = static_cast<const uint32_t*>(arg_ptr(info, 0));
  int64_t soff = arg_i(info, 1);
  auto ss = arg_vec(info, 2), shape = arg_vec(info, 3);
  int32_t id = store_alloc(prod(shape));
  if (prod(shape) == 0) return ret_id(info, id);
  launch_strided_copy(S(), src, soff, static_cast<uint32_t*>(store_ptr(id)), 0, copy_plan(shape, ss, contiguous(shape)));
  check_launch("strided copy");
  return ret_id(info, id);
}

Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  const uint32_t* src = static_cast<const uint32_t*>(arg_ptr(info, 0));
  int64_t soff = arg_i(info, 1);
  auto ss = arg_vec(info, 2);
  uint32_t* dst = static_cast<uint32_t*>(arg_ptr(info, 3));
  int64_t doff = arg_i(info, 4);
  auto ds = arg_vec(info, 5), shape = arg_vec(info, 6);
  if (prod(shape) == 0) return info.Env().Undefined();
  launch_strided_copy(S(), src, soff, dst, doff, copy_plan(shape, ss, ds));
  check_launch("copyInto");
  return info.Env().Undefined();
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  const uint32_t* x = static_cast<const uint32_t*>(arg_ptr(info, 0));
  const int32_t* idx = arg_i32(info, 1);
  int64_t outer = arg_i(info, 2), N = arg_i(info, 3), inner = arg_i(info, 4), M = arg_i(info, 5);
  int32_t id = store_alloc(outer * M * inner);
  launch_gather(S(), x, idx, static_cast<uint32_t*>(store_ptr(id)), outer, N, inner, M);
  check_launch("gather");
  return ret_id(info, id);
}

Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  void* x = arg_ptr(info, 0);
  const int32_t* ids = arg_i32(info, 1);
  int64_t N = arg_i(info, 2), inner = arg_i(info, 3), Sg = arg_i(info, 4);
  int dtype = (int)arg_i(info, 5);
  int32_t id = store_alloc(Sg * inner);
  if (Sg * inner) cudaMemsetAsync(store_ptr(id), 0, (size_t)(Sg * inner) * 4, S());
  launch_segment_sum(S(), dtype, x, ids, store_ptr(id), N, inner, Sg);
  check_launch("segmentSum");
  return ret_id(info, id);
}

// ------------------------------------------------------------------ reductions, matmul

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  int op = (int)arg_i(info, 0), dtype = (int)arg_i(info, 1);
  if (op < 0 || op >= kNumRed) throw std::runtime_error("bad reduce op");
  void* x = arg_ptr(info, 2);
  int64_t outer = arg_i(info, 3), R = arg_i(info, 4), inner = arg_i(info, 5);
  int32_t id = store_alloc(outer * inner);
  launch_reduce(S(), op, dtype, x, store_ptr(id), outer, R, inner);
  check_launch("reduce");
  return ret_id(info, id);
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  int64_t rows = arg_i(info, 1), cols = arg_i(info, 2);
  int32_t id = store_alloc(rows * cols);
  launch_softmax(S(), x, static_cast<float*>(store_ptr(id)), rows, cols, arg_b(info, 3));
  check_launch("softmax");
  return ret_id(info, id);
}

Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  const float* a = arg_f32(info, 0);
  const float* b = arg_f32(info, 1);
  int64_t ba = arg_i(info, 2), bb = arg_i(info, 3), M = arg_i(info, 4), N = arg_i(info, 5), K = arg_i(info, 6);
  bool ta = arg_b(info, 7), tb = arg_b(info, 8);
  if (ba != bb && ba != 1 && bb != 1) throw std::runtime_error("batchMatMul: incompatible batch sizes");
  int64_t batch = std::max(ba, bb);
  int32_t id = store_alloc(batch * M * N);
  gemm(ta, tb, batch, M, N, K, a, ba == 1 ? 0 : M * K, b, bb == 1 ? 0 : K * N, static_cast<float*>(store_ptr(id)));
  return ret_id(info, id);
}

// ------------------------------------------------------------------ fused

Napi::Value NormFwd(const Napi::CallbackInfo& info, bool rms) {
  const float* x = arg_f32(info, 0);
  const float* gamma = arg_f32(info, 1);
  const float* beta = rms ? nullptr : arg_f32(info, 2);
  size_t k = rms ? 2 : 3;
  int64_t rows = arg_i(info, k), C = arg_i(info, k + 1);
  int32_t id = store_alloc(rows * C);
  launch_norm_fwd(S(), rms, x, gamma, beta, static_cast<float*>(store_ptr(id)), rows, C, arg_d(info, k + 2));
  check_launch("norm");
  return ret_id(info, id);
}

Napi::Value NormBwd(const Napi::CallbackInfo& info, bool rms) {
  const float* dy = arg_f32(info, 0);
  const float* x = arg_f32(info, 1);
  const float* gamma = arg_f32(info, 2);
  int64_t rows = arg_i(info, 3), C = arg_i(info, 4);
  double eps = arg_d(info, 5);
  int32_t dx = store_alloc(rows * C), dg = store_alloc(C), db = rms ? -1 : store_alloc(C);
  {
    Scratch scratch(norm_bwd_scratch_floats(rows, C));
    launch_norm_bwd(S(), rms, dy, x, gamma, static_cast<float*>(store_ptr(dx)), static_cast<float*>(store_ptr(dg)),
                    rms ? nullptr : static_cast<float*>(store_ptr(db)), scratch.p, rows, C, eps);
    check_launch("norm grad");
  }
  if (rms) return ret_ids(info, {dx, dg});
  return ret_ids(info, {dx, dg, db});
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) { return NormFwd(info, false); }
Napi::Value RmsNorm(const Napi::CallbackInfo& info) { return NormFwd(info, true); }
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) { return NormBwd(info, false); }
Napi::Value RmsNormGrad(const Napi::CallbackInfo& info) { return NormBwd(info, true); }

AttnGeom read_geom(const Napi::CallbackInfo& info, size_t i) {
  auto v = arg_vec(info, i);
  if (v.size() != 10) throw std::runtime_error("attention geometry needs 10 ints");
  AttnGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], (float)arg_d(info, i + 1), arg_b(info, i + 2)};
  if (g.Hkv <= 0 || g.Hq % g.Hkv != 0) throw std::runtime_error("VlmixAttention: Hq must be a multiple of Hkv");
  return g;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  const float* q = arg_f32(info, 0);
  const float* k = arg_f32(info, 1);
  const float* v = arg_f32(info, 2);
  const float* bias = arg_f32_opt(info, 3);
  AttnGeom g = read_geom(info, 4);
  int32_t id = store_alloc(g.B * g.Hq * g.Tq * g.Dv);
  launch_attention(S(), g, q, k, v, bias, static_cast<float*>(store_ptr(id)));
  check_launch("attention");
  return ret_id(info, id);
}

Napi::Value AttentionGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* q = arg_f32(info, 1);
  const float* k = arg_f32(info, 2);
  const float* v = arg_f32(info, 3);
  const float* bias = arg_f32_opt(info, 4);
  AttnGeom g = read_geom(info, 5);
  int32_t dq = store_alloc(g.B * g.Hq * g.Tq * g.D), dk = store_alloc(g.B * g.Hkv * g.Tk * g.D),
          dv = store_alloc(g.B * g.Hkv * g.Tk * g.Dv);
  {
    Scratch scratch(2 * g.B * g.Hq * g.Tq + 1);
    launch_attention_grad(S(), g, dy, q, k, v, bias, static_cast<float*>(store_ptr(dq)),
                          static_cast<float*>(store_ptr(dk)), static_cast<float*>(store_ptr(dv)), scratch.p);
    check_launch("attention grad");
  }
  return ret_ids(info, {dq, dk, dv});
}

Napi::Value Sce(const Napi::CallbackInfo& info) {
  const float* lg = arg_f32(info, 0);
  const int32_t* lb = arg_i32(info, 1);
  int64_t N = arg_i(info, 2), V = arg_i(info, 3), ign = arg_i(info, 4);
  int32_t id = store_alloc(N);
  launch_sce(S(), lg, lb, static_cast<float*>(store_ptr(id)), N, V, ign);
  check_launch("sce");
  return ret_id(info, id);
}

Napi::Value SceGrad(const Napi::CallbackInfo& info) {
  const float* dl = arg_f32(info, 0);
  const float* lg = arg_f32(info, 1);
  const int32_t* lb = arg_i32(info, 2);
  int64_t N = arg_i(info, 3), V = arg_i(info, 4), ign = arg_i(info, 5);
  int32_t id = store_alloc(N * V);
  launch_sce_grad(S(), dl, lg, lb, static_cast<float*>(store_ptr(id)), N, V, ign);
  check_launch("sce grad");
  return ret_id(info, id);
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  int64_t n = arg_i(info, 1);
  int32_t id = store_alloc(n);
  launch_gelu(S(), x, static_cast<float*>(store_ptr(id)), n, arg_b(info, 2));
  check_launch("gelu");
  return ret_id(info, id);
}

Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* x = arg_f32(info, 1);
  int64_t n = arg_i(info, 2);
  int32_t id = store_alloc(n);
  launch_gelu_grad(S(), dy, x, static_cast<float*>(store_ptr(id)), n, arg_b(info, 3));
  check_launch("gelu grad");
  return ret_id(info, id);
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const float* g = arg_f32(info, 0);
  const float* u = arg_f32(info, 1);
  int64_t n = arg_i(info, 2);
  int32_t id = store_alloc(n);
  launch_swiglu(S(), g, u, static_cast<float*>(store_ptr(id)), n);
  check_launch("swiglu");
  return ret_id(info, id);
}

Napi::Value SwigluGrad(const Napi::CallbackInfo& info) {
  const float* dy = arg_f32(info, 0);
  const float* g = arg_f32(info, 1);
  const float* u = arg_f32(info, 2);
  int64_t n = arg_i(info, 3);
  int32_t a = store_alloc(n), b = store_alloc(n);
  launch_swiglu_grad(S(), dy, g, u, static_cast<float*>(store_ptr(a)), static_cast<float*>(store_ptr(b)), n);
  check_launch("swiglu grad");
  return ret_ids(info, {a, b});
}

AdamWHyper adamw_hyper(const Napi::CallbackInfo& info, size_t i) {
  double lr = arg_d(info, i), b1 = arg_d(info, i + 1), b2 = arg_d(info, i + 2), eps = arg_d(info, i + 3),
         wd = arg_d(info, i + 4), step = arg_d(info, i + 5);
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  return AdamWHyper{(float)(1 - lr * wd), (float)b1, (float)b2, (float)(lr / bc1), (float)(1 / std::sqrt(bc2)),
                    (float)eps};
}

// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) -> [param, m, v]
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  int64_t n = arg_i(info, 4);
  AdamWTensor t{arg_f32(info, 0), arg_f32(info, 1), arg_f32(info, 2), arg_f32(info, 3), nullptr, nullptr, nullptr, n};
  int32_t pid = store_alloc(n), mid = store_alloc(n), vid = store_alloc(n);
  t.po = static_cast<float*>(store_ptr(pid));
  t.mo = static_cast<float*>(store_ptr(mid));
  t.vo = static_cast<float*>(store_ptr(vid));
  launch_adamw(S(), &t, 1, adamw_hyper(info, 5));
  check_launch("adamw");
  return ret_ids(info, {pid, mid, vid});
}

// adamwMulti([[param, grad, m, v], ...], [n, ...], lr, beta1, beta2, eps, weightDecay, step)
//   -> [[param, m, v], ...]: one launch per 32 tensors.
Napi::Value AdamWMulti(const Napi::CallbackInfo& info) {
  Napi::Array groups = info[0].As<Napi::Array>();
  auto ns = arg_vec(info, 1);
  if (ns.size() != groups.Length()) throw std::runtime_error("adamwMulti: sizes and tensors differ in length");
  std::vector<AdamWTensor> ts;
  std::vector<int32_t> outs;
  for (uint32_t k = 0; k < groups.Length(); k++) {
    Napi::Array g = groups.Get(k).As<Napi::Array>();
    auto ptr = [&](uint32_t j) { return static_cast<float*>(store_ptr(g.Get(j).As<Napi::Number>().Int32Value())); };
    AdamWTensor t{ptr(0), ptr(1), ptr(2), ptr(3), nullptr, nullptr, nullptr, ns[k]};
    int32_t p = store_alloc(ns[k]), m = store_alloc(ns[k]), v = store_alloc(ns[k]);
    t.po = static_cast<float*>(store_ptr(p));
    t.mo = static_cast<float*>(store_ptr(m));
    t.vo = static_cast<float*>(store_ptr(v));
    ts.push_back(t);
    outs.insert(outs.end(), {p, m, v});
  }
  launch_adamw(S(), ts.data(), (int)ts.size(), adamw_hyper(info, 2));
  check_launch("adamw (multi-tensor)");
  Napi::Array res = Napi::Array::New(info.Env(), ts.size());
  for (size_t k = 0; k < ts.size(); k++) {
    Napi::Array r = Napi::Array::New(info.Env(), 3);
    for (uint32_t j = 0; j < 3; j++) r.Set(j, outs[3 * k + j]);
    res.Set((uint32_t)k, r);
  }
  return res;
}

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
void def(Napi::Env env, Napi::Object exports, const char* name, Fn fn) {
  exports.Set(name, Napi::Function::New(
                        env,
                        [fn](const Napi::CallbackInfo& info) -> Napi::Value {
                          try {
                            return fn(info);
                          } catch (const Napi::Error&) {
                            throw;
                          } catch (const std::exception& e) {
                            throw Napi::Error::New(info.Env(), e.what());
                          }
                        },
                        name));
}

Napi::Object table(Napi::Env env, const char* const* names, int n) {
  Napi::Object o = Napi::Object::New(env);
  for (int i = 0; i < n; i++) o.Set(names[i], i);
  return o;
}

}  // namespace
}  // namespace vlmix_cuda

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vlmix_cuda;
  // Nothing here touches the GPU: device() probes on first call, so loading never fails for lack of one.
  exports.Set("binaryOps", table(env, kBinNames, kNumBin));
  exports.Set("unaryOps", table(env, kUnNames, kNumUn));
  exports.Set("reduceOps", table(env, kRedNames, kNumRed));
  const std::pair<const char*, Fn> fns[] = {
      {"device", Device}, {"info", Info}, {"setTf32", SetTf32}, {"synchronize", Synchronize}, {"trim", Trim},
      {"create", Create}, {"createBool", CreateBool}, {"read", Read}, {"readBool", ReadBool}, {"alloc", Alloc},
      {"free", Free}, {"size", Size}, {"memory", Memory}, {"resetPeak", ResetPeak},
      {"binary", Binary}, {"addN", AddN}, {"select", Select}, {"unary", Unary}, {"cast", Cast}, {"fill", Fill},
      {"oneHot", OneHot}, {"strided", Strided}, {"copyInto", CopyInto}, {"gather", Gather},
      {"segmentSum", SegmentSum}, {"reduce", Reduce}, {"softmax", Softmax}, {"batchMatMul", BatchMatMul},
      {"layerNorm", LayerNorm}, {"layerNormGrad", LayerNormGrad}, {"rmsNorm", RmsNorm},
      {"rmsNormGrad", RmsNormGrad}, {"attention", Attention}, {"attentionGrad", AttentionGrad}, {"sce", Sce},
      {"sceGrad", SceGrad}, {"gelu", Gelu}, {"geluGrad", GeluGrad}, {"swiglu", Swiglu},
      {"swigluGrad", SwigluGrad}, {"adamw", AdamW}, {"adamwMulti", AdamWMulti},
  };
  for (const auto& f : fns) def(env, exports, f.first, f.second);
  return exports;
}

NODE_API_MODULE(vlmix_cuda, Init)
