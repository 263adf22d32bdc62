// Native tensor memory: 64-byte aligned buffers addressed by small integer ids.
#include <cstdlib>

#include "common.h"

namespace vlmix {
namespace {
struct Slot {
  void* p = nullptr;
  int64_t n = 0;
};
std::vector<Slot> g_slots(1);  // id 0 unused so that 0 is never a valid handle
std::vector<int32_t> g_free;
int64_t g_bytes = 0, g_peak = 0, g_count = 0;
}  // namespace

int32_t store_alloc(int64_t nelem) {
  if (nelem < 0) throw std::runtime_error("negative allocation");
  size_t bytes = static_cast<size_t>(nelem) * 4;
  size_t rounded = ((bytes + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::runtime_error("vlmix-cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
  int32_t id;
  if (!g_free.empty()) {
    id = g_free.back();
    g_free.pop_back();
  } else {
    id = static_cast<int32_t>(g_slots.size());
    g_slots.emplace_back();
  }
  g_slots[id] = {p, nelem};
  g_bytes += nelem * 4;
  g_count++;
  if (g_bytes > g_peak) g_peak = g_bytes;
  return id;
}

static Slot& slot(int32_t id) {
  if (id <= 0 || id >= static_cast<int32_t>(g_slots.size()) || !g_slots[id].p)
    throw std::runtime_error("vlmix-cpu: invalid buffer id " + std::to_string(id));
  return g_slots[id];
}

void* store_ptr(int32_t id) { return slot(id).p; }
int64_t store_nelem(int32_t id) { return slot(id).n; }

void store_free(int32_t id) {
  Slot& s = slot(id);
  std::free(s.p);
  g_bytes -= s.n * 4;
  g_count--;
  s = Slot{};
  g_free.push_back(id);
}

int64_t store_bytes() { return g_bytes; }
int64_t store_peak() { return g_peak; }
int64_t store_count() { return g_count; }
void store_reset_peak() { g_peak = g_bytes; }

std::vector<int64_t> arg_vec(const Napi::CallbackInfo& info, size_t i) {
  Napi::Array a = info[i].As<Napi::Array>();
  uint32_t n = a.Length();
  std::vector<int64_t> v(n);
  for (uint32_t k = 0; k < n; k++) v[k] = a.Get(k).As<Napi::Number>().Int64Value();
  return v;
}

Napi::Value ret_ids(const Napi::CallbackInfo& info, std::initializer_list<int32_t> ids) {
  Napi::Array a = Napi::Array::New(info.Env(), ids.size());
  uint32_t k = 0;
  for (auto id : ids) a.Set(k++, Napi::Number::New(info.Env(), id));
  return a;
}

void def(Napi::Env env, Napi::Object exports, const char* name, NativeFn fn) {
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

}  // namespace vlmix
