// vlmix-cuda device state (see device.h).
#include "device.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <vector>

#include "cublas_dl.h"
#include "kernels.h"

namespace vlmix_cuda {
namespace {

Probe g_probe;
bool g_probed = false;
cudaStream_t g_stream = nullptr;
int* g_err_dev = nullptr;   // device error flags (kernels atomicOr into it)
int* g_err_host = nullptr;  // pinned copy target
bool g_tf32 = false;  // strict FP32 by default, as PyTorch; TF32 cost the demo accuracy on an H200

std::string cuda_err(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void do_probe() {
  Probe& p = g_probe;
  // Without libcuda the runtime cannot work at all; say so plainly.
  void* drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!drv) {
    const char* e = dlerror();
    p.reason = std::string("no CUDA driver (libcuda.so.1 cannot be loaded: ") + (e ? e : "not found") + ")";
    return;
  }
  cudaRuntimeGetVersion(&p.runtime);
  cudaDriverGetVersion(&p.driver);
  cudaError_t e = cudaGetDeviceCount(&p.count);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && p.count == 0)) {
    cudaGetLastError();
    p.count = 0;
    p.reason = "no CUDA device";
    return;
  }
  if (e == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    p.reason = "CUDA driver too old (driver supports CUDA " + std::to_string(p.driver / 1000) + "." +
               std::to_string((p.driver % 1000) / 10) + ", runtime needs " + std::to_string(p.runtime / 1000) + "." +
               std::to_string((p.runtime % 1000) / 10) + ")";
    return;
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    p.reason = "CUDA unavailable (" + cuda_err(e) + ")";
    return;
  }
  const char* dev_env = std::getenv("VLMIX_CUDA_DEVICE");
  p.device = dev_env && *dev_env ? std::atoi(dev_env) : 0;
  if (p.device < 0 || p.device >= p.count) {
    p.reason = "VLMIX_CUDA_DEVICE=" + std::to_string(p.device) + " but only " + std::to_string(p.count) +
               " CUDA device(s)";
    return;
  }
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, p.device);
  if (e != cudaSuccess) { p.reason = "cudaGetDeviceProperties failed (" + cuda_err(e) + ")"; return; }
  p.name = prop.name;
  p.major = prop.major;
  p.minor = prop.minor;
  p.total_mem = prop.totalGlobalMem;
  if (p.major < 8) {
    p.reason = "compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) + " (" + p.name +
               ") is not supported: vlmix-cuda is built for sm_80..sm_90 (+ compute_90 PTX)";
    return;
  }
  if ((e = cudaSetDevice(p.device)) != cudaSuccess ||
      (e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess ||
      (e = cudaMalloc(&g_err_dev, sizeof(int))) != cudaSuccess ||
      (e = cudaMemset(g_err_dev, 0, sizeof(int))) != cudaSuccess ||
      (e = cudaMallocHost(&g_err_host, sizeof(int))) != cudaSuccess) {
    cudaGetLastError();
    p.reason = "CUDA initialisation failed (" + cuda_err(e) + ")";
    return;
  }
  const char* tf = std::getenv("VLMIX_TF32");
  g_tf32 = tf && std::strcmp(tf, "1") == 0;
  p.ok = true;
  p.reason = p.name + " (compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) + ", " +
             std::to_string(p.total_mem >> 20) + " MiB)";
}

// ------------------------------------------------------------------ store

struct Slot {
  void* p = nullptr;
  int64_t n = 0;
  size_t cap = 0;
  bool live = false;
};
std::vector<Slot> g_slots(1);  // id 0 is never valid
std::vector<int32_t> g_free_ids;
std::map<size_t, std::vector<void*>> g_cache;  // size class -> free blocks
int64_t g_bytes = 0, g_peak = 0, g_count = 0, g_cached = 0, g_reserved = 0;

size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes < (1u << 20)) {
    size_t c = 1024;
    while (c < bytes) c <<= 1;
    return c;
  }
  const size_t mb2 = size_t(2) << 20;
  return (bytes + mb2 - 1) / mb2 * mb2;
}

void trim_cache() {
  if (g_cache.empty()) return;
  cudaStreamSynchronize(g_stream);
  for (auto& kv : g_cache)
    for (void* p : kv.second) cudaFree(p);
  g_reserved -= g_cached;
  g_cached = 0;
  g_cache.clear();
}

void* block_alloc(size_t cap) {
  auto it = g_cache.find(cap);
  if (it != g_cache.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    g_cached -= (int64_t)cap;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, cap);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    trim_cache();
    e = cudaMalloc(&p, cap);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error("vlmix-cuda: out of device memory allocating " + std::to_string(cap) + " bytes (" +
                             std::to_string(g_bytes) + " bytes live; " + cuda_err(e) + ")");
  }
  g_reserved += (int64_t)cap;
  return p;
}

Slot& slot(int32_t id) {
  if (id <= 0 || id >= (int32_t)g_slots.size() || !g_slots[id].live)
    throw std::runtime_error("vlmix-cuda: invalid buffer id " + std::to_string(id));
  return g_slots[id];
}

}  // namespace

const Probe& probe() {
  if (!g_probed) {
    g_probed = true;
    try {
      do_probe();
    } catch (const std::exception& e) {
      g_probe.ok = false;
      g_probe.reason = std::string("CUDA probe failed: ") + e.what();
    }
  }
  return g_probe;
}

void ensure_ready() {
  const Probe& p = probe();
  if (!p.ok) throw std::runtime_error("vlmix-cuda unavailable: " + p.reason);
}

cudaStream_t stream() { return g_stream; }
int* device_error_flag() { return g_err_dev; }

void store_trim() {
  if (probe().ok) trim_cache();
}

Scratch::Scratch(int64_t nelem) : id(DeviceStore::alloc(nelem)), p(static_cast<float*>(DeviceStore::ptr(id))) {}
Scratch::~Scratch() { DeviceStore::free(id); }

void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("vlmix-cuda: ") + what + " launch failed (" + cuda_err(e) + ")");
}

void synchronize() {
  ensure_ready();
  cudaError_t e = cudaMemcpyAsync(g_err_host, g_err_dev, sizeof(int), cudaMemcpyDeviceToHost, g_stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(g_stream);
  if (e != cudaSuccess) {
    throw std::runtime_error("vlmix-cuda: CUDA error (" + cuda_err(e) +
                             "); an earlier asynchronous kernel failed and the CUDA context may be unusable");
  }
  int flags = *g_err_host;
  if (flags) {
    cudaMemsetAsync(g_err_dev, 0, sizeof(int), g_stream);
    if (flags & kErrGatherIndex)
      throw std::runtime_error("GatherV2: an index is out of range (detected on the GPU; those rows were zeroed)");
    if (flags & kErrGatherRowsIndex)
      throw std::runtime_error(
          "VlmixGatherRows/VlmixGatherRowsGrad: an index is past the zero row (detected on the GPU; those rows were zeroed)");
    throw std::runtime_error("vlmix-cuda: a kernel reported error flags " + std::to_string(flags));
  }
}

// ------------------------------------------------------------------ GEMM

namespace {
cublasHandle_t g_handle = nullptr;
std::string g_cublas_why;
bool g_cublas_tried = false;

const CublasApi* cublas() {
  if (!g_cublas_tried) {
    g_cublas_tried = true;
    const char* want = std::getenv("VLMIX_CUDA_GEMM");
    if (want && std::strcmp(want, "builtin") == 0) {
      g_cublas_why = "VLMIX_CUDA_GEMM=builtin";
      return nullptr;
    }
    const CublasApi* api = cublas_api(&g_cublas_why);
    if (!api) return nullptr;
    int st = api->create(&g_handle);
    if (st != 0) {
      g_cublas_why = "cublasCreate failed with status " + std::to_string(st);
      g_handle = nullptr;
      return nullptr;
    }
    api->set_stream(g_handle, g_stream);
  }
  return g_handle ? cublas_api(nullptr) : nullptr;
}
}  // namespace

bool tf32_enabled() { return g_tf32; }
void set_tf32(bool on) { g_tf32 = on; }

std::string gemm_impl() {
  if (!probe().ok) return "none";
  const CublasApi* api = cublas();
  if (!api) return "builtin (" + g_cublas_why + ")";
  int ver = 0;
  api->get_version(g_handle, &ver);
  return "cublas " + std::to_string(ver) + " (" + cublas_library() + (g_tf32 ? ", tf32" : ", fp32") + ")";
}

void gemm(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA,
          const float* B, int64_t strideB, float* C) {
  if (batch * M * N == 0) return;
  if (K == 0) {
    cudaMemsetAsync(C, 0, (size_t)(batch * M * N) * 4, g_stream);
    return;
  }
  const CublasApi* api = cublas();
  if (!api) {
    launch_sgemm_builtin(g_stream, ta, tb, batch, M, N, K, A, strideA, B, strideB, C);
    check_launch("sgemm (built-in)");
    return;
  }
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) throw std::runtime_error("vlmix-cuda: matmul dimension exceeds int32");
  api->set_math_mode(g_handle, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  const float one = 1.f, zero = 0.f;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  const int opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int lda = (int)(ta ? M : K), ldb = (int)(tb ? K : N);
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {
    const int nb = (int)(batch - b0 < 65535 ? batch - b0 : 65535);
    int st = api->sgemm_strided_batched(g_handle, opB, opA, (int)N, (int)M, (int)K, &one, B + b0 * strideB, ldb,
                                        strideB, A + b0 * strideA, lda, strideA, &zero, C + b0 * M * N, (int)N,
                                        M * N, nb);
    if (st != 0) throw std::runtime_error("vlmix-cuda: cublasSgemmStridedBatched failed with status " + std::to_string(st));
  }
}

}  // namespace vlmix_cuda

// ------------------------------------------------------------------ the buffer store (store_api.h)

namespace vlmix {
namespace cu = vlmix_cuda;

template <class D>
int32_t Store<D>::alloc(int64_t nelem) {
  cu::ensure_ready();
  if (nelem < 0) throw std::runtime_error("vlmix-cuda: negative allocation");
  size_t bytes = (size_t)nelem * 4;
  cu::Slot s;
  s.n = nelem;
  s.live = true;
  if (bytes) {
    s.cap = cu::size_class(bytes);
    s.p = cu::block_alloc(s.cap);
  }
  int32_t id;
  if (!cu::g_free_ids.empty()) {
    id = cu::g_free_ids.back();
    cu::g_free_ids.pop_back();
  } else {
    id = (int32_t)cu::g_slots.size();
    cu::g_slots.emplace_back();
  }
  cu::g_slots[id] = s;
  cu::g_bytes += (int64_t)bytes;
  cu::g_count++;
  if (cu::g_bytes > cu::g_peak) cu::g_peak = cu::g_bytes;
  return id;
}

template <class D>
void* Store<D>::ptr(int32_t id) { return cu::slot(id).p; }
template <class D>
int64_t Store<D>::nelem(int32_t id) { return cu::slot(id).n; }

template <class D>
void Store<D>::free(int32_t id) {
  cu::Slot& s = cu::slot(id);
  if (s.p) {
    cu::g_cache[s.cap].push_back(s.p);  // stream-ordered reuse: later work on the one stream runs after
    cu::g_cached += (int64_t)s.cap;
  }
  cu::g_bytes -= s.n * 4;
  cu::g_count--;
  s = cu::Slot{};
  cu::g_free_ids.push_back(id);
}

template <class D>
void Store<D>::upload(void* dev, const void* host, size_t bytes) {
  if (!bytes) return;
  // Pageable source: the call returns once the bytes are staged, so the JS buffer may change afterwards.
  cudaError_t e = cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cu::g_stream);
  if (e != cudaSuccess) throw std::runtime_error("vlmix-cuda: upload failed (" + cu::cuda_err(e) + ")");
}

// Waits for the copy (and so for all queued work); throws on CUDA errors or kernel-reported errors.
template <class D>
void Store<D>::download(void* host, const void* dev, size_t bytes) {
  cu::ensure_ready();
  if (bytes) {
    cudaError_t e = cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cu::g_stream);
    if (e != cudaSuccess) throw std::runtime_error("vlmix-cuda: read failed (" + cu::cuda_err(e) + ")");
  }
  cu::synchronize();
}

template <class D>
MemStats Store<D>::stats() { return {cu::g_bytes, cu::g_peak, cu::g_count, cu::g_cached, cu::g_reserved}; }
template <class D>
void Store<D>::reset_peak() { cu::g_peak = cu::g_bytes; }

template struct Store<cu::Gpu>;

}  // namespace vlmix
