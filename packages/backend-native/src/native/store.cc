// Host tensor memory: 64-byte aligned buffers addressed by small integer ids. The members of
// store_api.h's Store, defined here for this addon's one device and instantiated for Host below.
#include "store_api.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
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
}  // namespace

template <class D>
int32_t Store<D>::alloc(int64_t nelem) {
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

template <class D>
void* Store<D>::ptr(int32_t id) { return slot(id).p; }
template <class D>
int64_t Store<D>::nelem(int32_t id) { return slot(id).n; }

template <class D>
void Store<D>::free(int32_t id) {
  Slot& s = slot(id);
  std::free(s.p);
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
