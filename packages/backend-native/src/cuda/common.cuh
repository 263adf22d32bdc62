// Device helpers shared by the vlmix-cuda kernels.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels.h"

namespace vlmix_cuda {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > (1 << 20)) b = 1 << 20;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b);
}

#define VLMIX_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// JS ToInt32 (what an Int32Array store does to a double).
__device__ __forceinline__ int32_t to_i32(double d) {
  if (!isfinite(d)) return 0;
  d = trunc(d);
  double m = fmod(d, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(m));
}

// Offsets of linear output index i in up to NOPS operands of a collapsed plan.
template <int NOPS>
__device__ __forceinline__ void plan_offsets(const StridedPlan& p, int64_t i, int64_t* off) {
  for (int k = 0; k < NOPS; k++) off[k] = 0;
  for (int d = p.rank - 1; d >= 0; d--) {
    int64_t dim = p.dims[d];
    int64_t idx = i % dim;
    i /= dim;
    for (int k = 0; k < NOPS; k++) off[k] += idx * p.strides[k][d];
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum / max (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float sh[32];
  __syncthreads();  // sh may still be read by a previous call
  v = warp_sum(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ double block_sum_d(double v) {
  __shared__ double shd[32];
  __syncthreads();
  v = warp_sum_d(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) shd[w] = v;
  __syncthreads();
  v = lane < nw ? shd[lane] : 0.0;
  return warp_sum_d(v);
}
__device__ __forceinline__ float block_max(float v) {
  __shared__ float shm[32];
  __syncthreads();
  v = warp_max(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  if (lane == 0) shm[w] = v;
  __syncthreads();
  v = lane < nw ? shm[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace vlmix_cuda
