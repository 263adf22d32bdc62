// Native tensor memory: 64-byte aligned buffers addressed by small integer ids.
#include "store.h"

#include <cstdlib>
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

}  // namespace vlmix
