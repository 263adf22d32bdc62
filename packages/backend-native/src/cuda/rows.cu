// Row kernels for vlmix-cuda: reductions ([outer, R, inner] -> [outer, inner]), softmax over the last
// axis, softmax cross-entropy (+grad), LayerNorm / RMSNorm (+grad). Every result is computed in a
// fixed order for a given shape (no atomics), so runs are repeatable.
#include <type_traits>

#include "common.cuh"

namespace vlmix_cuda {

using namespace vlmix::opcodes::red;

struct Acc {
  double v;
  int64_t i;
};

__device__ __forceinline__ Acc red_identity(int op) {
  switch (op) {
    case kProd: case kAll: return {1.0, 0};
    case kMax: return {-INFINITY, 0};
    case kMin: return {INFINITY, 0};
    case kArgMax: return {-INFINITY, -1};
    case kArgMin: return {INFINITY, -1};
    default: return {0.0, 0};
  }
}

// Combines a (covering lower indices) with b (higher indices).
__device__ __forceinline__ Acc red_combine(int op, Acc a, Acc b) {
  switch (op) {
    case kSum: case kMean: return {a.v + b.v, 0};
    case kProd: return {a.v * b.v, 0};
    case kAll: return {(a.v != 0 && b.v != 0) ? 1.0 : 0.0, 0};
    case kAny: return {(a.v != 0 || b.v != 0) ? 1.0 : 0.0, 0};
    case kMax: return (isnan(a.v) || isnan(b.v)) ? Acc{NAN, 0} : Acc{a.v > b.v ? a.v : b.v, 0};
    case kMin: return (isnan(a.v) || isnan(b.v)) ? Acc{NAN, 0} : Acc{a.v < b.v ? a.v : b.v, 0};
    case kArgMax:
    case kArgMin: {
      if (a.i < 0) return b;
      if (b.i < 0) return a;
      bool better = op == kArgMax ? b.v > a.v : b.v < a.v;  // ties keep the lower index
      if (isnan(a.v) && !isnan(b.v)) better = a.i != 0;       // like the sequential scan: NaN never wins later
      return better ? b : a;
    }
  }
  return a;
}

template <class T>
__device__ __forceinline__ void red_store(int op, Acc a, int64_t R, void* out, int64_t o) {
  if (op == kArgMax || op == kArgMin) static_cast<int32_t*>(out)[o] = a.i < 0 ? 0 : static_cast<int32_t>(a.i);
  else if (op == kMean) static_cast<float*>(out)[o] = static_cast<float>(a.v) / static_cast<float>(R);
  else if (std::is_same<T, float>::value) static_cast<float*>(out)[o] = static_cast<float>(a.v);
  else static_cast<int32_t*>(out)[o] = to_i32(a.v);
}

// inner == 1: one block per row, fixed per-thread striding then a fixed tree.
template <class T>
__global__ void reduce_rows_k(int op, const T* x, void* out, int64_t outer, int64_t R) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = x + o * R;
    Acc a = red_identity(op);
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) a = red_combine(op, a, Acc{static_cast<double>(row[r]), r});
    // Threads hold interleaved indices, so for arg ops compare values then indices explicitly.
    sv[threadIdx.x] = a.v;
    si[threadIdx.x] = a.i;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) {
        Acc p{sv[threadIdx.x], si[threadIdx.x]}, q{sv[threadIdx.x + w], si[threadIdx.x + w]};
        Acc c;
        if ((op == kArgMax || op == kArgMin) && p.i >= 0 && q.i >= 0 && q.i < p.i) c = red_combine(op, q, p);
        else c = red_combine(op, p, q);
        sv[threadIdx.x] = c.v;
        si[threadIdx.x] = c.i;
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) red_store<T>(op, Acc{sv[0], si[0]}, R, out, o);
    __syncthreads();
  }
}

// inner > 1: one thread per output, rows in index order (coalesced across inner).
template <class T>
__global__ void reduce_cols_k(int op, const T* x, void* out, int64_t outer, int64_t R, int64_t inner) {
  VLMIX_GRID_LOOP(o, outer * inner) {
    int64_t oi = o / inner, j = o % inner;
    const T* base = x + oi * R * inner + j;
    Acc a = red_identity(op);
    for (int64_t r = 0; r < R; r++) a = red_combine(op, a, Acc{static_cast<double>(base[r * inner]), r});
    red_store<T>(op, a, R, out, o);
  }
}

void launch_reduce(cudaStream_t s, int op, int dtype, const void* x, void* out, int64_t outer, int64_t R, int64_t inner) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    unsigned g = (unsigned)(outer < 65535 * 16 ? outer : 65535 * 16);
    if (dtype == 0) reduce_rows_k<float><<<g, kThreads, 0, s>>>(op, (const float*)x, out, outer, R);
    else reduce_rows_k<int32_t><<<g, kThreads, 0, s>>>(op, (const int32_t*)x, out, outer, R);
  } else {
    if (dtype == 0) reduce_cols_k<float><<<grid_for(outer * inner), kThreads, 0, s>>>(op, (const float*)x, out, outer, R, inner);
    else reduce_cols_k<int32_t><<<grid_for(outer * inner), kThreads, 0, s>>>(op, (const int32_t*)x, out, outer, R, inner);
  }
}

inline unsigned row_grid(int64_t rows) { return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16); }

// ------------------------------------------------------------------ softmax

__global__ void softmax_k(const float* x, float* y, int64_t rows, int64_t cols, bool lg) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - m);
    sum = block_sum(sum);
    if (lg) {
      float ls = logf(sum);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - m - ls;
    } else {
      float inv = 1.f / sum;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
  }
}

void launch_softmax(cudaStream_t s, const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  if (rows * cols == 0) return;
  softmax_k<<<row_grid(rows), kThreads, 0, s>>>(x, y, rows, cols, log);
}

// ------------------------------------------------------------------ softmax cross-entropy

__global__ void sce_k(const float* lg, const int32_t* lb, float* loss, int64_t N, int64_t V, int64_t ign) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const int64_t label = lb[i];
    if (label == ign) {  // uniform across the block
      if (threadIdx.x == 0) loss[i] = 0.f;
      continue;
    }
    const float* r = lg + i * V;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, r[j]);
    m = block_max(m);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += expf(r[j] - m);
    sum = block_sum(sum);
    if (threadIdx.x == 0) loss[i] = (label < 0 || label >= V) ? NAN : logf(sum) + m - r[label];
  }
}

__global__ void sce_grad_k(const float* dl, const float* lg, const int32_t* lb, float* d, int64_t N, int64_t V,
                           int64_t ign) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const int64_t label = lb[i];
    float* dr = d + i * V;
    if (label == ign) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dr[j] = 0.f;
      continue;
    }
    const float* r = lg + i * V;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, r[j]);
    m = block_max(m);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += expf(r[j] - m);
    sum = block_sum(sum);
    const float g = dl[i], sc = g / sum;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dr[j] = expf(r[j] - m) * sc - (j == label ? g : 0.f);
  }
}

void launch_sce(cudaStream_t s, const float* logits, const int32_t* labels, float* loss, int64_t N, int64_t V,
                int64_t ignore) {
  if (N == 0) return;
  sce_k<<<row_grid(N), kThreads, 0, s>>>(logits, labels, loss, N, V, ignore);
}

void launch_sce_grad(cudaStream_t s, const float* dloss, const float* logits, const int32_t* labels, float* d,
                     int64_t N, int64_t V, int64_t ignore) {
  if (N * V == 0) return;
  sce_grad_k<<<row_grid(N), kThreads, 0, s>>>(dloss, logits, labels, d, N, V, ignore);
}

// ------------------------------------------------------------------ LayerNorm / RMSNorm

constexpr int64_t kRowChunk = 64;

// Row statistics in double (like the CPU kernels): mean (0 for RMS) and 1 / sqrt(var + eps).
__device__ __forceinline__ void row_stats(const float* xr, int64_t C, double eps, bool rms, double& mean, double& rstd) {
  double s = 0;
  if (!rms) {
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += xr[j];
    s = block_sum_d(s);
  }
  mean = rms ? 0.0 : s / C;
  double v = 0;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) { double d = xr[j] - mean; v += d * d; }
  v = block_sum_d(v) / C;
  rstd = 1.0 / sqrt(v + eps);
}

__global__ void norm_fwd_k(bool rms, const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                           int64_t C, double eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double mean, rstd;
    row_stats(xr, C, eps, rms, mean, rstd);
    const float m = (float)mean, rs = (float)rstd;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
      yr[j] = rms ? xr[j] * rs * gamma[j] : (xr[j] - m) * rs * gamma[j] + beta[j];
  }
}

void launch_norm_fwd(cudaStream_t s, bool rms, const float* x, const float* gamma, const float* beta, float* y,
                     int64_t rows, int64_t C, double eps) {
  if (rows * C == 0) return;
  norm_fwd_k<<<row_grid(rows), kThreads, 0, s>>>(rms, x, gamma, beta, y, rows, C, eps);
}

// dx per row; saves (mean, rstd) per row into stats[2 * rows].
__global__ void norm_bwd_dx_k(bool rms, const float* dy, const float* x, const float* gamma, float* dx, float* stats,
                              int64_t rows, int64_t C, double eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    double mean, rstd;
    row_stats(xr, C, eps, rms, mean, rstd);
    double sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      double xh = (xr[j] - mean) * rstd, gj = (double)dyr[j] * gamma[j];
      sg += gj;
      sgx += gj * xh;
    }
    sg = block_sum_d(sg);
    sgx = block_sum_d(sgx);
    const double mg = rms ? 0.0 : sg / C, mgx = sgx / C;
    float* dxr = dx + r * C;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      double xh = (xr[j] - mean) * rstd;
      dxr[j] = (float)(rstd * ((double)dyr[j] * gamma[j] - mg - xh * mgx));
    }
    if (threadIdx.x == 0) {
      stats[2 * r] = (float)mean;
      stats[2 * r + 1] = (float)rstd;
    }
  }
}

// partial sums of dgamma / dbeta per 64-row chunk: grid (ceil(C / 256), nchunks).
__global__ void norm_bwd_partial_k(bool rms, const float* dy, const float* x, const float* stats, float* pg, float* pb,
                                   int64_t rows, int64_t C) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, c = blockIdx.y;
  if (j >= C) return;
  double g = 0, b = 0;
  const int64_t r1 = (c + 1) * kRowChunk < rows ? (c + 1) * kRowChunk : rows;
  for (int64_t r = c * kRowChunk; r < r1; r++) {
    const double d = dy[r * C + j];
    g += d * ((x[r * C + j] - stats[2 * r]) * (double)stats[2 * r + 1]);
    b += d;
  }
  pg[c * C + j] = (float)g;
  if (!rms) pb[c * C + j] = (float)b;
}

__global__ void norm_bwd_final_k(bool rms, const float* pg, const float* pb, float* dgamma, float* dbeta,
                                 int64_t nchunks, int64_t C) {
  VLMIX_GRID_LOOP(j, C) {
    double g = 0, b = 0;
    for (int64_t c = 0; c < nchunks; c++) {
      g += pg[c * C + j];
      if (!rms) b += pb[c * C + j];
    }
    dgamma[j] = (float)g;
    if (!rms) dbeta[j] = (float)b;
  }
}

int64_t norm_bwd_scratch_floats(int64_t rows, int64_t C) {
  return 2 * rows + 2 * ((rows + kRowChunk - 1) / kRowChunk) * C + 1;
}

void launch_norm_bwd(cudaStream_t s, bool rms, const float* dy, const float* x, const float* gamma, float* dx,
                     float* dgamma, float* dbeta, float* scratch, int64_t rows, int64_t C, double eps) {
  if (C == 0) return;
  const int64_t nchunks = (rows + kRowChunk - 1) / kRowChunk;
  if (rows == 0) {
    cudaMemsetAsync(dgamma, 0, C * 4, s);
    if (dbeta) cudaMemsetAsync(dbeta, 0, C * 4, s);
    return;
  }
  float* stats = scratch;
  float* pg = scratch + 2 * rows;
  float* pb = pg + nchunks * C;
  norm_bwd_dx_k<<<row_grid(rows), kThreads, 0, s>>>(rms, dy, x, gamma, dx, stats, rows, C, eps);
  dim3 grid((unsigned)((C + kThreads - 1) / kThreads), (unsigned)nchunks);
  norm_bwd_partial_k<<<grid, kThreads, 0, s>>>(rms, dy, x, stats, pg, pb, rows, C);
  norm_bwd_final_k<<<grid_for(C), kThreads, 0, s>>>(rms, pg, pb, dgamma, dbeta, nchunks, C);
}

}  // namespace vlmix_cuda
