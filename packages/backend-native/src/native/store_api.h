// The buffer store of a device, declared once for both: buffers of 4-byte elements addressed by small
// integer ids (0 is never valid), allocated and freed on the JS thread only. src/native/store.cc
// defines Store<Host> (64-byte aligned host memory); src/cuda/device.cc defines the CUDA one
// (stream-ordered device memory). A device policy of the N-API glue derives from its store.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vlmix {

struct MemStats {
  int64_t bytes, peak, count, cached, reserved;  // cached / reserved: allocator caches (0 on the host)
};

template <class Device>
struct Store {
  static int32_t alloc(int64_t nelem);
  static void* ptr(int32_t id);
  static int64_t nelem(int32_t id);
  static void free(int32_t id);
  static void upload(void* dst, const void* host_src, size_t bytes);   // host memory -> a buffer
  static void download(void* host_dst, const void* src, size_t bytes); // a buffer -> host memory
  static MemStats stats();
  static void reset_peak();
};

struct Host;  // the CPU addon's device tag

}  // namespace vlmix
