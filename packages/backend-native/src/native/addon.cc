// Module entry: memory API plus registration of every kernel family.
#include "common.h"
#include "gemm.h"

namespace vlmix {
namespace {

// create(typedArray) -> id : copies 4-byte elements (Float32Array / Int32Array).
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t n = ta.ElementLength();
  int32_t id = store_alloc(static_cast<int64_t>(n));
  if (n) {
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    std::memcpy(store_ptr(id), static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset(), n * 4);
  }
  return ret_id(info, id);
}

// createBool(uint8Array) -> id, widening to int32 0/1.
Napi::Value CreateBool(const Napi::CallbackInfo& info) {
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  size_t n = ta.ElementLength();
  int32_t id = store_alloc(static_cast<int64_t>(n));
  const uint8_t* src = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  int32_t* dst = static_cast<int32_t*>(store_ptr(id));
  for (size_t i = 0; i < n; i++) dst[i] = src[i] != 0;
  return ret_id(info, id);
}

// read(id, typedArray): copies into a Float32Array/Int32Array of the same length.
Napi::Value Read(const Napi::CallbackInfo& info) {
  int32_t id = arg_id(info, 0);
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = std::min<size_t>(ta.ElementLength(), static_cast<size_t>(store_nelem(id)));
  if (n) std::memcpy(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), store_ptr(id), n * 4);
  return info.Env().Undefined();
}

Napi::Value ReadBool(const Napi::CallbackInfo& info) {
  int32_t id = arg_id(info, 0);
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  size_t n = std::min<size_t>(ta.ElementLength(), static_cast<size_t>(store_nelem(id)));
  uint8_t* dst = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const int32_t* src = static_cast<const int32_t*>(store_ptr(id));
  for (size_t i = 0; i < n; i++) dst[i] = src[i] != 0;
  return info.Env().Undefined();
}

Napi::Value Alloc(const Napi::CallbackInfo& info) { return ret_id(info, store_alloc(arg_i(info, 0))); }

Napi::Value Free(const Napi::CallbackInfo& info) {
  store_free(arg_id(info, 0));
  return info.Env().Undefined();
}

Napi::Value Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(store_nelem(arg_id(info, 0))));
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(store_bytes())));
  o.Set("peakBytes", Napi::Number::New(info.Env(), static_cast<double>(store_peak())));
  o.Set("buffers", Napi::Number::New(info.Env(), static_cast<double>(store_count())));
  return o;
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  store_reset_peak();
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gemm", Napi::String::New(info.Env(), gemm_impl_name()));
  o.Set("threads", Napi::Number::New(info.Env(), num_threads()));
  return o;
}

}  // namespace
}  // namespace vlmix

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace vlmix;
  def(env, exports, "create", Create);
  def(env, exports, "createBool", CreateBool);
  def(env, exports, "read", Read);
  def(env, exports, "readBool", ReadBool);
  def(env, exports, "alloc", Alloc);
  def(env, exports, "free", Free);
  def(env, exports, "size", Size);
  def(env, exports, "memory", Memory);
  def(env, exports, "resetPeak", ResetPeak);
  def(env, exports, "info", Info);
  init_binary(env, exports);
  init_unary(env, exports);
  init_reduce(env, exports);
  init_shape(env, exports);
  init_gather(env, exports);
  init_matmul(env, exports);
  init_conv(env, exports);
  init_fused_norm(env, exports);
  init_fused_attention(env, exports);
  init_fused_misc(env, exports);
  return exports;
}

NODE_API_MODULE(vlmix_cpu, Init)
