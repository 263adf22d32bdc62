// Shared helpers for the vlmix-cpu addon: buffer store, argument access, registration.
#pragma once
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "threadpool.h"

namespace vlmix {

// Every element is 4 bytes; bool is stored as int32 0/1 so shape ops never care about dtype.
enum DType : int { F32 = 0, I32 = 1 };

int32_t store_alloc(int64_t nelem);
void* store_ptr(int32_t id);
int64_t store_nelem(int32_t id);
void store_free(int32_t id);
int64_t store_bytes();
int64_t store_peak();
int64_t store_count();
void store_reset_peak();

inline int32_t arg_id(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}
inline int64_t arg_i(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int64Value();
}
inline double arg_d(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().DoubleValue();
}
inline bool arg_b(const Napi::CallbackInfo& info, size_t i) {
  return info[i].ToBoolean().Value();
}
inline float* arg_f32(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<float*>(store_ptr(arg_id(info, i)));
}
inline int32_t* arg_i32(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int32_t*>(store_ptr(arg_id(info, i)));
}
// Optional buffer argument: -1 or undefined means absent.
inline float* arg_f32_opt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) return nullptr;
  int32_t id = info[i].As<Napi::Number>().Int32Value();
  return id < 0 ? nullptr : static_cast<float*>(store_ptr(id));
}
std::vector<int64_t> arg_vec(const Napi::CallbackInfo& info, size_t i);

inline Napi::Value ret_id(const Napi::CallbackInfo& info, int32_t id) {
  return Napi::Number::New(info.Env(), id);
}
Napi::Value ret_ids(const Napi::CallbackInfo& info, std::initializer_list<int32_t> ids);

inline int64_t prod(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (auto d : s) p *= d;
  return p;
}

// JS ToInt32 semantics (what an Int32Array store does to a double).
inline int32_t to_i32(double d) {
  if (!std::isfinite(d)) return 0;
  d = std::trunc(d);
  double m = std::fmod(d, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
void def(Napi::Env env, Napi::Object exports, const char* name, NativeFn fn);

// Elementwise split: fn(begin, end) over [0, n) in chunks whose boundaries are multiples of 1024
// elements, at least `min_elems` per chunk (tiny tensors stay on the calling thread).
template <class F>
inline void parallel_elems(int64_t n, int64_t min_elems, const F& fn) {
  constexpr int64_t kB = 1024;
  const int64_t nb = (n + kB - 1) / kB;
  parallel_for(nb, std::max<int64_t>(1, min_elems / kB), [&](int64_t b, int64_t e) {
    fn(b * kB, std::min(n, e * kB));
  });
}

// Deterministic chunking for reductions across rows: fixed chunk size, summed in chunk order.
constexpr int64_t kRowChunk = 64;

void init_binary(Napi::Env env, Napi::Object exports);
void init_unary(Napi::Env env, Napi::Object exports);
void init_reduce(Napi::Env env, Napi::Object exports);
void init_shape(Napi::Env env, Napi::Object exports);
void init_gather(Napi::Env env, Napi::Object exports);
void init_matmul(Napi::Env env, Napi::Object exports);
void init_conv(Napi::Env env, Napi::Object exports);
void init_fused_norm(Napi::Env env, Napi::Object exports);
void init_fused_attention(Napi::Env env, Napi::Object exports);
void init_fused_misc(Napi::Env env, Napi::Object exports);

}  // namespace vlmix
