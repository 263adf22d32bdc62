// Host tensor memory: 64-byte aligned buffers addressed by small integer ids. The members of
// store_api.h's Store, defined here for this addon's one device and instantiated for Host below.
#include "store_api.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace vlmix {
namespace {
struct Slot {
  void* p = nullptr;
  int64_t n = 0;
};
std::vector<Slot> g_slots(1);  // id 0 unused so that 0 is never a valid handle
std::vector<int32_t> g_free;
int64_t g_bytes = 0, g_peak = 0, g_count = 0;

// Freed large buffers are kept for reuse, by size class: a fresh large allocation is fresh pages from the
// kernel (glibc mmaps it), and touching them costs more than many kernels themselves (AdamW over 1 M floats:
// 2.9 ms with fresh pages, 1.2 ms reusing). Size classes are 8 steps per power of two (at most 1/8 wasted).
// VLMIX_CPU_CACHE_MB caps the cached bytes (default 1024; 0 turns the cache off).
constexpr size_t kCacheMin = 64 << 10;
std::unordered_map<size_t, std::vector<void*>> g_cache;
size_t g_cached = 0;

size_t cache_cap() {
  static const size_t cap = [] {
    const char* v = std::getenv("VLMIX_CPU_CACHE_MB");
    return static_cast<size_t>(v && *v ? std::strtoull(v, nullptr, 10) : 1024) << 20;
  }();
  return cap;
}

size_t size_class(size_t bytes) {
  if (bytes < kCacheMin) return ((bytes + 63) / 64) * 64;
  size_t top = 1;
  while (top < bytes) top <<= 1;
  const size_t step = top / 16;  // classes between top/2 and top
  return ((bytes + step - 1) / step) * step;
}
}  // namespace

template <class D>
int32_t Store<D>::alloc(int64_t nelem) {
  if (nelem < 0) throw std::runtime_error("negative allocation");
  size_t bytes = static_cast<size_t>(nelem) * 4;
  size_t rounded = size_class(bytes);
  if (rounded == 0) rounded = 64;
  void* p = nullptr;
  if (rounded >= kCacheMin) {
    auto it = g_cache.find(rounded);
    if (it != g_cache.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      g_cached -= rounded;
    }
  }
  if (!p) p = std::aligned_alloc(64, rounded);
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

template <class D>
void* Store<D>::ptr(int32_t id) { return slot(id).p; }
template <class D>
int64_t Store<D>::nelem(int32_t id) { return slot(id).n; }

template <class D>
void Store<D>::free(int32_t id) {
  Slot& s = slot(id);
  const size_t rounded = size_class(static_cast<size_t>(s.n) * 4);
  if (rounded >= kCacheMin && g_cached + rounded <= cache_cap()) {
    g_cache[rounded].push_back(s.p);
    g_cached += rounded;
  } else {
    std::free(s.p);
  }
  g_bytes -= s.n * 4;
  g_count--;
  s = Slot{};
  g_free.push_back(id);
}

template <class D>
void Store<D>::upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <class D>
void Store<D>::download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
template <class D>
MemStats Store<D>::stats() { return {g_bytes, g_peak, g_count, 0, 0}; }
template <class D>
void Store<D>::reset_peak() { g_peak = g_bytes; }

template struct Store<Host>;

}  // namespace vlmix
