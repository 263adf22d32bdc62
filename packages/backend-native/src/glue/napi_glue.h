// The one N-API layer of vlmix's native addons (vlmix_cpu.node and vlmix_cuda.node).
//
// Every JS-facing function is written once, below, as a C++ function of typed arguments; it allocates
// its outputs and calls a compute kernel. It is templated over a device policy D (src/native/addon.cc
// for the CPU, src/cuda/addon_cuda.cc for CUDA) that supplies the buffer store and the kernels:
//   its base Store<Device> (src/native/store_api.h)    buffers of 4-byte elements addressed by ids
//   D::binary(...), D::layernorm_forward(...), ...   kernels with the signatures of src/native/kernels.h
//   D::kCaching                                       whether memory() reports allocator-cache fields
// Arguments are unpacked from JS by their C++ types (Js<T>), which also know their TypeScript types:
// each addon exports `signatures` ({layerNorm: "(Id, Id, Id, number, number, number) => Id", ...}) and
// test/addon-interface.test.ts checks them against NativeAddon (src/native.ts) and CudaAddon (src/cuda.ts).
#pragma once
#include <napi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../native/kernel_args.h"
#include "../native/op_codes.h"
#include "../native/plans.h"
#include "../native/store_api.h"

namespace vlmix {
namespace glue {

// ------------------------------------------------------------------ JS values <-> C++ arguments

struct Id { int32_t v; };      // a buffer handle
struct OptId { int32_t v; };   // a buffer handle, or -1 / undefined for none
template <size_t N> using Ids = std::array<Id, N>;
struct TypedArray {            // a JS typed array's elements (borrowed for the call)
  void* data;
  size_t length;
  size_t elem_bytes;
};

struct ArgAt {
  const char* fn;
  size_t index;
};

[[noreturn]] inline void bad_arg(napi_env env, napi_value v, const ArgAt& at, const char* expected) {
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  static const char* names[] = {"undefined", "null", "boolean", "number", "string", "symbol", "object",
                                "function", "external", "bigint"};
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  throw std::invalid_argument(std::string(at.fn) + ": argument " + std::to_string(at.index) + ": expected " +
                              expected + ", got " + (is_array ? "an array" : names[t]));
}

template <class T, class = void> struct Js;

// A JS number read with one of napi_get_value_{double,int64,int32}.
template <class T, napi_status (*Read)(napi_env, napi_value, T*)>
T read_number(napi_env env, napi_value v, const ArgAt& at, const char* expected = "a number") {
  T x;
  if (Read(env, v, &x) != napi_ok) bad_arg(env, v, at, expected);
  return x;
}
inline napi_value make_number(napi_env env, double x) {
  napi_value r;
  napi_create_double(env, x, &r);
  return r;
}

template <> struct Js<double> {
  static double get(napi_env env, napi_value v, const ArgAt& at) { return read_number<double, napi_get_value_double>(env, v, at); }
  static napi_value put(napi_env env, double x) { return make_number(env, x); }
  static std::string ts() { return "number"; }
};

template <> struct Js<int64_t> {
  static int64_t get(napi_env env, napi_value v, const ArgAt& at) { return read_number<int64_t, napi_get_value_int64>(env, v, at); }
  static napi_value put(napi_env env, int64_t x) { return make_number(env, (double)x); }
  static std::string ts() { return "number"; }
};

template <> struct Js<int> {
  static int get(napi_env env, napi_value v, const ArgAt& at) { return read_number<int32_t, napi_get_value_int32>(env, v, at); }
  static std::string ts() { return "number"; }
};

// Truthiness, like JS: callers pass booleans, sometimes undefined for false.
template <> struct Js<bool> {
  static bool get(napi_env env, napi_value v, const ArgAt&) {
    napi_value b;
    bool x = false;
    if (napi_coerce_to_bool(env, v, &b) == napi_ok) napi_get_value_bool(env, b, &x);
    return x;
  }
  static napi_value put(napi_env env, bool x) {
    napi_value r;
    napi_get_boolean(env, x, &r);
    return r;
  }
  static std::string ts() { return "boolean"; }
};

template <> struct Js<Id> {
  static Id get(napi_env env, napi_value v, const ArgAt& at) {
    return {read_number<int32_t, napi_get_value_int32>(env, v, at, "a buffer id (number)")};
  }
  static napi_value put(napi_env env, Id id) { return make_number(env, id.v); }
  static std::string ts() { return "Id"; }
};

template <> struct Js<OptId> {
  static OptId get(napi_env env, napi_value v, const ArgAt& at) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_undefined) return {-1};
    return {Js<Id>::get(env, v, at).v};
  }
  static std::string ts() { return "Id"; }
};

template <> struct Js<std::optional<double>> {
  static std::optional<double> get(napi_env env, napi_value v, const ArgAt& at) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_undefined) return std::nullopt;
    return Js<double>::get(env, v, at);
  }
  static std::string ts() { return "number?"; }
};

template <> struct Js<TypedArray> {
  static TypedArray get(napi_env env, napi_value v, const ArgAt& at) {
    bool ok = false;
    napi_is_typedarray(env, v, &ok);
    if (!ok) bad_arg(env, v, at, "a typed array");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr);  // data: at byteOffset
    size_t eb = (type == napi_int8_array || type == napi_uint8_array || type == napi_uint8_clamped_array) ? 1
                : (type == napi_int16_array || type == napi_uint16_array)                                ? 2
                : (type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array) ? 8
                                                                                                         : 4;
    return {data, length, eb};
  }
  static std::string ts() { return "TypedArray"; }
};

// The length of a JS array argument.
inline uint32_t array_length(napi_env env, napi_value v, const ArgAt& at, const std::string& expected) {
  bool ok = false;
  napi_is_array(env, v, &ok);
  if (!ok) bad_arg(env, v, at, (expected + " (an array)").c_str());
  uint32_t n;
  napi_get_array_length(env, v, &n);
  return n;
}
inline napi_value element(napi_env env, napi_value v, uint32_t k) {
  napi_value e;
  napi_get_element(env, v, k, &e);
  return e;
}

template <class T> struct Js<std::vector<T>> {
  static std::vector<T> get(napi_env env, napi_value v, const ArgAt& at) {
    const uint32_t n = array_length(env, v, at, ts());
    std::vector<T> out;
    out.reserve(n);
    for (uint32_t k = 0; k < n; k++) out.push_back(Js<T>::get(env, element(env, v, k), at));
    return out;
  }
  static napi_value put(napi_env env, const std::vector<T>& xs) {
    napi_value a;
    napi_create_array_with_length(env, xs.size(), &a);
    for (size_t k = 0; k < xs.size(); k++) napi_set_element(env, a, (uint32_t)k, Js<T>::put(env, xs[k]));
    return a;
  }
  static std::string ts() { return Js<T>::ts() + "[]"; }
};

template <size_t N> struct Js<Ids<N>> {
  static Ids<N> get(napi_env env, napi_value v, const ArgAt& at) {
    std::vector<Id> xs = Js<std::vector<Id>>::get(env, v, at);
    if (xs.size() != N) bad_arg(env, v, at, (ts() + " (" + std::to_string(N) + " ids)").c_str());
    Ids<N> r{};
    std::copy(xs.begin(), xs.end(), r.begin());
    return r;
  }
  static napi_value put(napi_env env, const Ids<N>& xs) {
    return Js<std::vector<Id>>::put(env, std::vector<Id>(xs.begin(), xs.end()));
  }
  static std::string ts() {
    std::string s = "[";
    for (size_t k = 0; k < N; k++) s += k ? ", Id" : "Id";
    return s + "]";
  }
};

// A shape, strides or a geometry: at most kMaxDims numbers, kept inline (no allocation).
template <> struct Js<Dims> {
  static Dims get(napi_env env, napi_value v, const ArgAt& at) {
    const uint32_t n = array_length(env, v, at, ts());
    if (n > (uint32_t)kMaxDims) bad_arg(env, v, at, ("at most " + std::to_string(kMaxDims) + " numbers").c_str());
    Dims d;
    for (uint32_t k = 0; k < n; k++) d.push_back(Js<int64_t>::get(env, element(env, v, k), at));
    return d;
  }
  static std::string ts() { return "number[]"; }
};

template <> struct Js<Napi::Value> {
  static napi_value put(napi_env, Napi::Value v) { return v; }
  static std::string ts() { return "object"; }
};

template <> struct Js<void> {
  static std::string ts() { return "void"; }
};

using Ints = std::vector<int64_t>;

// ------------------------------------------------------------------ calling typed functions from JS

template <class R, class... A, size_t... I>
Napi::Value call(R (*f)(A...), const Napi::CallbackInfo& info, [[maybe_unused]] const char* name,
                 std::index_sequence<I...>) {
  napi_env env = info.Env();
  if constexpr (std::is_void_v<R>) {
    f(Js<std::decay_t<A>>::get(env, info[I], ArgAt{name, I})...);
    return info.Env().Undefined();
  } else {
    return Napi::Value(env, Js<R>::put(env, f(Js<std::decay_t<A>>::get(env, info[I], ArgAt{name, I})...)));
  }
}
template <class R, class... A>
Napi::Value call(R (*f)(A...), const Napi::CallbackInfo& info, const char* name) {
  return call(f, info, name, std::index_sequence_for<A...>{});
}
// Functions that build JS objects take the Napi::Env first (not a JS argument).
template <class R, class... A, size_t... I>
Napi::Value call(R (*f)(Napi::Env, A...), const Napi::CallbackInfo& info, [[maybe_unused]] const char* name,
                 std::index_sequence<I...>) {
  napi_env env = info.Env();
  return Napi::Value(env, Js<R>::put(env, f(info.Env(), Js<std::decay_t<A>>::get(env, info[I], ArgAt{name, I})...)));
}
template <class R, class... A>
Napi::Value call(R (*f)(Napi::Env, A...), const Napi::CallbackInfo& info, const char* name) {
  return call(f, info, name, std::index_sequence_for<A...>{});
}

template <class... A> std::string ts_params() {
  std::string s;
  ((s += (s.empty() ? "" : ", ") + Js<std::decay_t<A>>::ts()), ...);
  return s;
}
template <class R, class... A> std::string signature(R (*)(A...)) { return "(" + ts_params<A...>() + ") => " + Js<R>::ts(); }
template <class R, class... A> std::string signature(R (*)(Napi::Env, A...)) {
  return "(" + ts_params<A...>() + ") => " + Js<R>::ts();
}

// The addon's exports: functions (with their signatures), op-code tables and `signatures` itself.
class Module {
 public:
  Module(Napi::Env env, Napi::Object exports) : env_(env), exports_(exports), sigs_(Napi::Object::New(env)) {
    exports_.Set("signatures", sigs_);
    sigs_.Set("signatures", "Record<string, string>");
  }

  template <auto F> void fn(const char* name) {
    exports_.Set(name, Napi::Function::New(
                           env_,
                           [name](const Napi::CallbackInfo& info) -> Napi::Value {
                             try {
                               return call(F, info, name);
                             } catch (const Napi::Error&) {
                               throw;
                             } catch (const std::exception& e) {
                               throw Napi::Error::New(info.Env(), e.what());
                             }
                           },
                           name));
    sigs_.Set(name, signature(F));
  }

  // {name: code} for the codes 0..count-1.
  void table(const char* name, const char* const* names, int count) {
    Napi::Object o = Napi::Object::New(env_);
    for (int i = 0; i < count; i++) o.Set(names[i], i);
    exports_.Set(name, o);
    sigs_.Set(name, "Record<string, number>");
  }

 private:
  Napi::Env env_;
  Napi::Object exports_, sigs_;
};

// ------------------------------------------------------------------ the functions both addons export

inline void check_op(const char* fn, int op, int count) {
  if (op < 0 || op >= count)
    throw std::invalid_argument(std::string(fn) + ": op code " + std::to_string(op) + " is not in [0, " +
                                std::to_string(count) + ")");
}

// geom = [B, Hq, Hkv, Tq, Tk, D, Dv, Bb, Hb, Tb] (bias extents: 1 = broadcast).
inline AttnGeom attn_geom(const Dims& v, double scale, bool causal) {
  if (v.size() != 10) throw std::invalid_argument("attention: geometry needs 10 ints, got " + std::to_string(v.size()));
  AttnGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], (float)scale, causal};
  if (g.Hkv <= 0 || g.Hq % g.Hkv != 0) throw std::invalid_argument("VlmixAttention: Hq must be a multiple of Hkv");
  return g;
}

// geom = tfjs Conv2DInfo as [B, H, W, Cin, KH, KW, Cout, OH, OW, strideH, strideW, padTop, padLeft,
// dilationH, dilationW]; x NHWC, w [KH, KW, Cin, Cout].
inline ConvGeom conv_geom(const Dims& v) {
  if (v.size() != 15) throw std::invalid_argument("conv2d: geometry needs 15 ints, got " + std::to_string(v.size()));
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
}

template <class D>
struct Glue {
  // A new device buffer, freed again unless the function returns it: a throwing kernel leaks nothing.
  class Out {
   public:
    explicit Out(int64_t n) : id_(D::alloc(n)) {}
    ~Out() {
      if (id_ >= 0) D::free(id_);
    }
    Out(Out&& o) noexcept : id_(o.id_) { o.id_ = -1; }
    Out(const Out&) = delete;
    Out& operator=(const Out&) = delete;
    void* raw() const { return D::ptr(id_); }
    float* f32() const { return static_cast<float*>(raw()); }
    uint32_t* u32() const { return static_cast<uint32_t*>(raw()); }
    Id keep() {
      Id r{id_};
      id_ = -1;
      return r;
    }

   private:
    int32_t id_;
  };
  static void* in(Id id) { return D::ptr(id.v); }
  static const float* f32(Id id) { return static_cast<const float*>(in(id)); }
  static const int32_t* i32(Id id) { return static_cast<const int32_t*>(in(id)); }
  static const uint32_t* u32(Id id) { return static_cast<const uint32_t*>(in(id)); }

  // ---- buffers
  // create(values: Float32Array | Int32Array) -> a buffer with a copy of the 4-byte elements.
  static Id create(TypedArray values) {
    if (values.elem_bytes != 4) throw std::invalid_argument("create: expected a Float32Array or Int32Array");
    Out o((int64_t)values.length);
    if (values.length) D::upload(o.raw(), values.data, values.length * 4);
    return o.keep();
  }
  // createBool(values: Uint8Array) -> int32 0/1.
  static Id createBool(TypedArray values) {
    if (values.elem_bytes != 1) throw std::invalid_argument("createBool: expected a Uint8Array");
    const uint8_t* src = static_cast<const uint8_t*>(values.data);
    std::vector<int32_t> wide(values.length);
    for (size_t i = 0; i < values.length; i++) wide[i] = src[i] != 0;
    Out o((int64_t)values.length);
    if (values.length) D::upload(o.raw(), wide.data(), values.length * 4);
    return o.keep();
  }
  // read(id, out): copies min(out.length, size(id)) elements into a Float32Array / Int32Array.
  static void read(Id id, TypedArray out) {
    if (out.elem_bytes != 4) throw std::invalid_argument("read: expected a Float32Array or Int32Array");
    size_t n = std::min<size_t>(out.length, (size_t)D::nelem(id.v));
    if (n) D::download(out.data, in(id), n * 4);
  }
  static void readBool(Id id, TypedArray out) {
    if (out.elem_bytes != 1) throw std::invalid_argument("readBool: expected a Uint8Array");
    size_t n = std::min<size_t>(out.length, (size_t)D::nelem(id.v));
    std::vector<int32_t> wide(n);
    if (n) D::download(wide.data(), in(id), n * 4);
    uint8_t* dst = static_cast<uint8_t*>(out.data);
    for (size_t i = 0; i < n; i++) dst[i] = wide[i] != 0;
  }
  static Id alloc(int64_t n) { return Out(n).keep(); }
  static void free(Id id) { D::free(id.v); }
  static int64_t size(Id id) { return D::nelem(id.v); }
  static Napi::Value memory(Napi::Env env) {
    MemStats m = D::stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", (double)m.bytes);
    o.Set("peakBytes", (double)m.peak);
    o.Set("buffers", (double)m.count);
    if constexpr (D::kCaching) {
      o.Set("cachedBytes", (double)m.cached);
      o.Set("reservedBytes", (double)m.reserved);
    }
    return o;
  }
  static void resetPeak() { D::reset_peak(); }

  // ---- elementwise
  static Id binary(int op, int dtype, Id a, const Dims& as, Id b, const Dims& bs, const Dims& os) {
    check_op("binary", op, opcodes::bin::kCount);
    Out o(prod(os));
    if (prod(os) > 0) D::binary(o.raw(), in(a), in(b), make_bcast({as, bs}, os), op, dtype);
    return o.keep();
  }
  // binaryFlat: both operands and the output have n elements (no broadcasting): no shape arrays to convert.
  static Id binaryFlat(int op, int dtype, Id a, Id b, int64_t n) {
    Dims d;
    d.push_back(n);
    return binary(op, dtype, a, d, b, d, d);
  }
  static Id addN(int dtype, std::vector<Id> ids, int64_t n) {
    std::vector<const void*> xs;
    for (Id id : ids) xs.push_back(in(id));
    Out o(n);
    D::add_n(o.raw(), xs.data(), (int64_t)xs.size(), n, dtype);
    return o.keep();
  }
  static Id select(Id c, Id t, Id e, const Dims& cs, const Dims& ts, const Dims& es, const Dims& os) {
    Out o(prod(os));
    if (prod(os) > 0) D::select(o.raw(), i32(c), in(t), in(e), make_bcast({cs, ts, es}, os));
    return o.keep();
  }
  static Id unary(int op, int dtype, Id x, int64_t n, std::optional<double> alpha, std::optional<double> beta) {
    check_op("unary", op, opcodes::un::kCount);
    Out o(n);
    D::unary(o.raw(), in(x), n, op, dtype, alpha.value_or(0), beta.value_or(0));
    return o.keep();
  }
  static Id cast(Id x, int64_t n, int from, int to, bool toBool) {
    Out o(n);
    D::cast(o.raw(), in(x), n, from, to, toBool);
    return o.keep();
  }
  static Id reduce(int op, int dtype, Id x, int64_t outer, int64_t R, int64_t inner) {
    check_op("reduce", op, opcodes::red::kCount);
    Out o(outer * inner);
    D::reduce(o.raw(), in(x), outer, R, inner, op, dtype);
    return o.keep();
  }
  static Id softmax(Id x, int64_t rows, int64_t cols, bool log) {
    Out o(rows * cols);
    D::softmax(o.f32(), f32(x), rows, cols, log);
    return o.keep();
  }

  // ---- data movement
  // strided(src, offset, strides, shape) -> a contiguous copy of the strided view.
  static Id strided(Id src, int64_t offset, const Dims& strides, const Dims& shape) {
    Out o(prod(shape));
    if (prod(shape) > 0)
      D::copy_strided(o.u32(), 0, u32(src), offset, make_copy_plan(shape, strides, contiguous_strides(shape)));
    return o.keep();
  }
  static void copyInto(Id src, int64_t srcOffset, const Dims& srcStrides, Id dst, int64_t dstOffset,
                       const Dims& dstStrides, const Dims& shape) {
    if (prod(shape) == 0) return;
    D::copy_strided(static_cast<uint32_t*>(in(dst)), dstOffset, u32(src), srcOffset,
                    make_copy_plan(shape, srcStrides, dstStrides));
  }
  // cacheWrite(cache [B, H, S, D], update [B, H, T, D], position (int32 scalar p), B, H, S, T, D): writes update
  // into positions [p, p + T) of the cache's own buffer (a KV cache, VlmixCacheWrite). Returns false, writing
  // nothing, when p + T does not fit.
  static bool cacheWrite(Id cache, Id update, Id position, int64_t B, int64_t H, int64_t S, int64_t T, int64_t Dh) {
    int32_t p = 0;
    D::download(&p, in(position), 4);
    if (p < 0 || p + T > S) return false;
    if (B * H * T * Dh == 0) return true;
    auto dims = [](int64_t a, int64_t b, int64_t c, int64_t d) { Dims x; x.push_back(a); x.push_back(b); x.push_back(c); x.push_back(d); return x; };
    D::copy_strided(static_cast<uint32_t*>(in(cache)), (int64_t)p * Dh, u32(update), 0,
                    make_copy_plan(dims(B, H, T, Dh), dims(H * T * Dh, T * Dh, Dh, 1), dims(H * S * Dh, S * Dh, Dh, 1)));
    return true;
  }
  static Id fill(int dtype, int64_t n, double value) {
    Out o(n);
    D::fill(o.u32(), n, bits_of(dtype, value));
    return o.keep();
  }
  static Id oneHot(Id indices, int64_t n, int64_t depth, double on, double off, int dtype) {
    Out o(n * depth);
    D::one_hot(o.u32(), i32(indices), n, depth, bits_of(dtype, on), bits_of(dtype, off));
    return o.keep();
  }
  static Id gather(Id x, Id indices, int64_t outer, int64_t N, int64_t inner, int64_t M) {
    Out o(outer * M * inner);
    D::gather(o.u32(), u32(x), i32(indices), outer, N, inner, M);
    return o.keep();
  }
  // gatherRows(x [rows, C], rows, idx [n], n, C) -> [n, C]; idx[i] == rows gives a zero row.
  static Id gatherRows(Id x, int64_t rows, Id idx, int64_t n, int64_t C) {
    Out o(n * C);
    D::gather_rows(o.u32(), u32(x), rows, i32(idx), n, C);
    return o.keep();
  }
  static Id segmentSum(Id x, Id ids, int64_t N, int64_t inner, int64_t numSegments, int dtype) {
    Out o(numSegments * inner);
    D::segment_sum(o.raw(), in(x), i32(ids), N, inner, numSegments, dtype);
    return o.keep();
  }

  // ---- matmul
  static Id batchMatMul(Id a, Id b, int64_t batchA, int64_t batchB, int64_t M, int64_t N, int64_t K, bool transA,
                        bool transB) {
    if (batchA != batchB && batchA != 1 && batchB != 1)
      throw std::invalid_argument("batchMatMul: incompatible batch sizes " + std::to_string(batchA) + " and " +
                                  std::to_string(batchB));
    Out o(std::max(batchA, batchB) * M * N);
    D::batch_matmul(o.f32(), f32(a), f32(b), batchA, batchB, M, N, K, transA, transB);
    return o.keep();
  }

  // ---- fused kernels (packages/core/src/ops/kernel-names.ts)
  // linear(x [M, K], w [N, K], bias [N] | -1, M, N, K) -> x @ w^T (+ bias) [M, N]: VlmixLinear in one call
  // (the bias row is added in place, after the GEMM).
  static Id linear(Id x, Id w, OptId bias, int64_t M, int64_t N, int64_t K) {
    Out o(M * N);
    D::batch_matmul(o.f32(), f32(x), f32(w), 1, 1, M, N, K, false, true);
    if (bias.v >= 0 && M * N > 0) {
      Dims mn, n;
      mn.push_back(M);
      mn.push_back(N);
      n.push_back(N);
      D::binary(o.raw(), o.raw(), in(Id{bias.v}), make_bcast({mn, n}, mn), opcodes::bin::kAdd, 0);
    }
    return o.keep();
  }
  // linearGrad(dy [M, N], x [M, K], w [N, K], withBias, M, N, K) -> [dx = dy @ w [M, K], dw = dy^T @ x [N, K],
  // db = column sums of dy [N] (an empty buffer without bias)].
  static Ids<3> linearGrad(Id dy, Id x, Id w, bool withBias, int64_t M, int64_t N, int64_t K) {
    Out dx(M * K), dw(N * K), db(withBias ? N : 0);
    float* pdx = dx.f32();
    float* pdw = dw.f32();
    const float *pdy = f32(dy), *px = f32(x), *pw = f32(w);
    void* pdb = withBias ? db.raw() : nullptr;
    // The two halves may run on two threads: buffers are looked up here, not inside them.
    D::both([&] { D::batch_matmul(pdx, pdy, pw, 1, 1, M, K, N, false, false); },
            [&] {
              D::batch_matmul(pdw, pdy, px, 1, 1, N, K, M, true, false);
              if (pdb) D::reduce(pdb, pdy, 1, M, N, opcodes::red::kSum, 0);
            },
            M * N * K);
    return {dx.keep(), dw.keep(), db.keep()};
  }
  static Id layerNorm(Id x, Id gamma, Id beta, int64_t rows, int64_t C, double eps) {
    Out y(rows * C);
    D::layernorm_forward(y.f32(), f32(x), f32(gamma), f32(beta), rows, C, eps);
    return y.keep();
  }
  static Ids<3> layerNormGrad(Id dy, Id x, Id gamma, int64_t rows, int64_t C, double eps) {
    Out dx(rows * C), dg(C), db(C);
    D::layernorm_backward(dx.f32(), dg.f32(), db.f32(), f32(dy), f32(x), f32(gamma), rows, C, eps);
    return {dx.keep(), dg.keep(), db.keep()};
  }
  static Id rmsNorm(Id x, Id gamma, int64_t rows, int64_t C, double eps) {
    Out y(rows * C);
    D::rmsnorm_forward(y.f32(), f32(x), f32(gamma), rows, C, eps);
    return y.keep();
  }
  static Ids<2> rmsNormGrad(Id dy, Id x, Id gamma, int64_t rows, int64_t C, double eps) {
    Out dx(rows * C), dg(C);
    D::rmsnorm_backward(dx.f32(), dg.f32(), f32(dy), f32(x), f32(gamma), rows, C, eps);
    return {dx.keep(), dg.keep()};
  }
  static const float* bias_of(OptId bias) { return bias.v < 0 ? nullptr : static_cast<const float*>(D::ptr(bias.v)); }
  static Id attention(Id q, Id k, Id v, OptId bias, const Dims& geom, double scale, bool causal) {
    AttnGeom g = attn_geom(geom, scale, causal);
    Out o(g.B * g.Hq * g.Tq * g.Dv);
    D::attention_forward(o.f32(), f32(q), f32(k), f32(v), bias_of(bias), g);
    return o.keep();
  }
  static Ids<3> attentionGrad(Id dy, Id q, Id k, Id v, OptId bias, const Dims& geom, double scale, bool causal) {
    AttnGeom g = attn_geom(geom, scale, causal);
    Out dq(g.B * g.Hq * g.Tq * g.D), dk(g.B * g.Hkv * g.Tk * g.D), dv(g.B * g.Hkv * g.Tk * g.Dv);
    D::attention_backward(dq.f32(), dk.f32(), dv.f32(), f32(dy), f32(q), f32(k), f32(v), bias_of(bias), g);
    return {dq.keep(), dk.keep(), dv.keep()};
  }
  static Id sce(Id logits, Id labels, int64_t N, int64_t V, int64_t ignoreIndex) {
    Out loss(N);
    D::sce_forward(loss.f32(), f32(logits), i32(labels), N, V, ignoreIndex);
    return loss.keep();
  }
  static Id sceGrad(Id dloss, Id logits, Id labels, int64_t N, int64_t V, int64_t ignoreIndex) {
    Out d(N * V);
    D::sce_backward(d.f32(), f32(dloss), f32(logits), i32(labels), N, V, ignoreIndex);
    return d.keep();
  }
  static Id gelu(Id x, int64_t n, bool tanh) {
    Out y(n);
    D::gelu_forward(y.f32(), f32(x), n, tanh);
    return y.keep();
  }
  static Id geluGrad(Id dy, Id x, int64_t n, bool tanh) {
    Out dx(n);
    D::gelu_backward(dx.f32(), f32(dy), f32(x), n, tanh);
    return dx.keep();
  }
  static Id swiglu(Id gate, Id up, int64_t n) {
    Out y(n);
    D::swiglu_forward(y.f32(), f32(gate), f32(up), n);
    return y.keep();
  }
  static Ids<2> swigluGrad(Id dy, Id gate, Id up, int64_t n) {
    Out dg(n), du(n);
    D::swiglu_backward(dg.f32(), du.f32(), f32(dy), f32(gate), f32(up), n);
    return {dg.keep(), du.keep()};
  }
  // adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) -> [param, m, v]
  static Ids<3> adamw(Id p, Id g, Id m, Id v, int64_t n, double lr, double beta1, double beta2, double eps,
                      double weightDecay, double step) {
    Out po(n), mo(n), vo(n);
    AdamWTensor t{f32(p), f32(g), f32(m), f32(v), po.f32(), mo.f32(), vo.f32(), n};
    D::adamw(&t, 1, adamw_hyper(lr, beta1, beta2, eps, weightDecay, step));
    return {po.keep(), mo.keep(), vo.keep()};
  }
  // adamwMulti([[param, grad, m, v], ...], [n, ...], hyper...) -> [[param, m, v], ...]: one kernel call.
  static std::vector<Ids<3>> adamwMulti(std::vector<Ids<4>> groups, Ints sizes, double lr, double beta1,
                                        double beta2, double eps, double weightDecay, double step) {
    if (sizes.size() != groups.size())
      throw std::invalid_argument("adamwMulti: " + std::to_string(groups.size()) + " tensor groups but " +
                                  std::to_string(sizes.size()) + " sizes");
    std::vector<Out> outs;
    outs.reserve(3 * groups.size());
    std::vector<AdamWTensor> ts;
    for (size_t k = 0; k < groups.size(); k++) {
      const auto& gr = groups[k];
      for (int j = 0; j < 3; j++) outs.emplace_back(sizes[k]);
      Out* o = &outs[3 * k];
      ts.push_back({f32(gr[0]), f32(gr[1]), f32(gr[2]), f32(gr[3]), o[0].f32(), o[1].f32(), o[2].f32(), sizes[k]});
    }
    D::adamw(ts.data(), (int64_t)ts.size(), adamw_hyper(lr, beta1, beta2, eps, weightDecay, step));
    std::vector<Ids<3>> res(groups.size());
    for (size_t k = 0; k < groups.size(); k++) res[k] = {outs[3 * k].keep(), outs[3 * k + 1].keep(), outs[3 * k + 2].keep()};
    return res;
  }

  // adamwInPlace([[param, grad, m, v], ...], [n, ...], hyper...): the same step written into param, m and v
  // (elementwise: each element is read before it is written). For owners giving up the old values.
  static void adamwInPlace(std::vector<Ids<4>> groups, Ints sizes, double lr, double beta1, double beta2, double eps,
                           double weightDecay, double step) {
    if (sizes.size() != groups.size())
      throw std::invalid_argument("adamwInPlace: " + std::to_string(groups.size()) + " tensor groups but " +
                                  std::to_string(sizes.size()) + " sizes");
    std::vector<AdamWTensor> ts;
    for (size_t k = 0; k < groups.size(); k++) {
      const auto& gr = groups[k];
      float* pm = static_cast<float*>(in(gr[0]));  // written: the caller gave these buffers up
      float* mm = static_cast<float*>(in(gr[2]));
      float* vm = static_cast<float*>(in(gr[3]));
      ts.push_back({pm, f32(gr[1]), mm, vm, pm, mm, vm, sizes[k]});
    }
    D::adamw(ts.data(), (int64_t)ts.size(), adamw_hyper(lr, beta1, beta2, eps, weightDecay, step));
  }

  // Exports every function above, and the op-code tables.
  static void define(Module& m) {
    m.table("binaryOps", opcodes::bin::kNames, opcodes::bin::kCount);
    m.table("unaryOps", opcodes::un::kNames, opcodes::un::kCount);
    m.table("reduceOps", opcodes::red::kNames, opcodes::red::kCount);
    m.fn<&create>("create");
    m.fn<&createBool>("createBool");
    m.fn<&read>("read");
    m.fn<&readBool>("readBool");
    m.fn<&alloc>("alloc");
    m.fn<&free>("free");
    m.fn<&size>("size");
    m.fn<&memory>("memory");
    m.fn<&resetPeak>("resetPeak");
    m.fn<&binary>("binary");
    m.fn<&binaryFlat>("binaryFlat");
    m.fn<&addN>("addN");
    m.fn<&select>("select");
    m.fn<&unary>("unary");
    m.fn<&cast>("cast");
    m.fn<&reduce>("reduce");
    m.fn<&softmax>("softmax");
    m.fn<&strided>("strided");
    m.fn<&copyInto>("copyInto");
    m.fn<&cacheWrite>("cacheWrite");
    m.fn<&fill>("fill");
    m.fn<&oneHot>("oneHot");
    m.fn<&gather>("gather");
    m.fn<&gatherRows>("gatherRows");
    m.fn<&segmentSum>("segmentSum");
    m.fn<&batchMatMul>("batchMatMul");
    m.fn<&linear>("linear");
    m.fn<&linearGrad>("linearGrad");
    m.fn<&layerNorm>("layerNorm");
    m.fn<&layerNormGrad>("layerNormGrad");
    m.fn<&rmsNorm>("rmsNorm");
    m.fn<&rmsNormGrad>("rmsNormGrad");
    m.fn<&attention>("attention");
    m.fn<&attentionGrad>("attentionGrad");
    m.fn<&sce>("sce");
    m.fn<&sceGrad>("sceGrad");
    m.fn<&gelu>("gelu");
    m.fn<&geluGrad>("geluGrad");
    m.fn<&swiglu>("swiglu");
    m.fn<&swigluGrad>("swigluGrad");
    m.fn<&adamw>("adamw");
    m.fn<&adamwMulti>("adamwMulti");
    m.fn<&adamwInPlace>("adamwInPlace");
  }
};

}  // namespace glue
}  // namespace vlmix
