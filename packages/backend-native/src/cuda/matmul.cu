// Built-in batched SGEMM for vlmix-cuda: 32x32 output tiles, 32-deep K slabs in shared memory, each
// thread computing 4 outputs. Correctness reference and fallback when cuBLAS cannot be loaded.
#include "common.cuh"

namespace vlmix_cuda {

constexpr int BT = 32, BK = 32;

// grid (ceil(N / 32), ceil(M / 32), batch), block (32, 8).
__global__ void sgemm_k(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t sA, const float* B,
                        int64_t sB, float* C) {
  __shared__ float As[BT][BK + 1];  // As[m][k]
  __shared__ float Bs[BK][BT + 1];  // Bs[k][n]
  const int64_t z = blockIdx.z;
  const float* a = A + z * sA;
  const float* b = B + z * sB;
  float* c = C + z * M * N;
  const int64_t m0 = (int64_t)blockIdx.y * BT, n0 = (int64_t)blockIdx.x * BT;
  const int tx = threadIdx.x, ty = threadIdx.y;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    for (int r = ty; r < BT; r += 8) {
      // A(m, k) = ta ? a[k * M + m] : a[m * K + k]
      int64_t m = m0 + r, k = k0 + tx;
      As[r][tx] = (m < M && k < K) ? (ta ? a[k * M + m] : a[m * K + k]) : 0.f;
      // B(k, n) = tb ? b[n * K + k] : b[k * N + n]
      int64_t kk = k0 + r, n = n0 + tx;
      Bs[r][tx] = (kk < K && n < N) ? (tb ? b[n * K + kk] : b[kk * N + n]) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk++) {
      const float bv = Bs[kk][tx];
      for (int q = 0; q < 4; q++) acc[q] += As[ty + 8 * q][kk] * bv;
    }
    __syncthreads();
  }
  for (int q = 0; q < 4; q++) {
    int64_t m = m0 + ty + 8 * q, n = n0 + tx;
    if (m < M && n < N) c[m * N + n] = acc[q];
  }
}

void launch_sgemm_builtin(cudaStream_t s, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                          const float* A, int64_t strideA, const float* B, int64_t strideB, float* C) {
  if (batch * M * N == 0) return;
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {
    int64_t nb = batch - b0 < 65535 ? batch - b0 : 65535;
    dim3 grid((unsigned)((N + BT - 1) / BT), (unsigned)((M + BT - 1) / BT), (unsigned)nb);
    sgemm_k<<<grid, dim3(32, 8), 0, s>>>(ta, tb, M, N, K, A + b0 * strideA, strideA, B + b0 * strideB, strideB,
                                         C + b0 * M * N);
  }
}

}  // namespace vlmix_cuda
