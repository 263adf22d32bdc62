// vlmix-cuda device state: probe, one stream, a stream-ordered caching allocator addressed by small
// integer ids (like the CPU addon's store), synchronising reads, and GEMM dispatch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "../native/store_api.h"

namespace vlmix_cuda {

struct Probe {
  bool ok = false;
  std::string reason;  // why not (or a one-line description when ok)
  std::string name;    // device name
  int device = -1, count = 0, major = 0, minor = 0, driver = 0, runtime = 0;
  size_t total_mem = 0;
};

// Runs once; never throws. Selects the device ($VLMIX_CUDA_DEVICE, default 0) and creates the stream.
const Probe& probe();
// Throws "vlmix-cuda unavailable: <reason>" unless probe() succeeded.
void ensure_ready();
cudaStream_t stream();

// Buffers of 4-byte elements (src/native/store_api.h). Allocation and free are stream-ordered: a freed
// block goes to a per-size-class free list and is handed out again for later work on the same stream.
// download() waits for the GPU and throws on CUDA errors or kernel-reported errors; upload() does not.
struct Gpu;  // this addon's device tag
using DeviceStore = vlmix::Store<Gpu>;
// Returns cached blocks to the driver (synchronises).
void store_trim();

// Scratch buffer for a kernel (freed after the launch; stream order keeps it valid).
struct Scratch {
  int32_t id;
  float* p;
  explicit Scratch(int64_t nelem);
  ~Scratch();
};

// Throws if the last launch failed (launch-configuration errors; faults surface at the next sync).
void check_launch(const char* what);
// Waits for all queued work; throws on CUDA errors or kernel-reported errors.
void synchronize();

// Row-major batched SGEMM on the stream: cuBLAS (dlopen'ed) or the built-in kernel.
void gemm(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA,
          const float* B, int64_t strideB, float* C);
bool tf32_enabled();
void set_tf32(bool on);
std::string gemm_impl();

}  // namespace vlmix_cuda
