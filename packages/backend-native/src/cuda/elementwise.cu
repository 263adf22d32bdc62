// Elementwise kernels for vlmix-cuda: broadcasting binary ops (one generic strided kernel), unary
// ops, casts, fills, select, addN, one-hot, strided copies (tiled 2-D transpose), gather and its
// scatter-add adjoint. Formulas follow src/native/{binary,unary}.cc (tfjs-backend-cpu semantics).
#include "common.cuh"

namespace vlmix_cuda {

using namespace vlmix::opcodes::bin;
using namespace vlmix::opcodes::un;

// ------------------------------------------------------------------ binary

__device__ __forceinline__ float fop(int op, float a, float b) {
  switch (op) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    case kDiv: return a / b;
    case kMax: return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
    case kMin: return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
    case kPow: return static_cast<float>(pow(static_cast<double>(a), static_cast<double>(b)));
    case kSqDiff: { float d = a - b; return d * d; }
    case kFloorDiv: return floorf(a / b);
    case kMod: {
      float r = fmodf(a, b);
      if ((a < 0 && b < 0) || (a >= 0 && b >= 0)) return r;
      return fmodf(r + b, b);
    }
    case kAtan2: return atan2f(a, b);
    case kPrelu: return a < 0 ? b * a : a;
    case kEluGrad: return b >= 0 ? a : a * (b + 1);
    case kEq: return a == b;
    case kNe: return a != b;
    case kLt: return a < b;
    case kLe: return a <= b;
    case kGt: return a > b;
    case kGe: return a >= b;
    case kAnd: return (a != 0) && (b != 0);
    case kOr: return (a != 0) || (b != 0);
  }
  return 0;
}

__device__ __forceinline__ int32_t iop(int op, int32_t a, int32_t b) {
  uint32_t ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
  double x = a, y = b;
  switch (op) {
    case kAdd: return static_cast<int32_t>(ua + ub);
    case kSub: return static_cast<int32_t>(ua - ub);
    case kMul: return to_i32(x * y);
    case kMax: return a > b ? a : b;
    case kMin: return a < b ? a : b;
    case kEq: return a == b;
    case kNe: return a != b;
    case kLt: return a < b;
    case kLe: return a <= b;
    case kGt: return a > b;
    case kGe: return a >= b;
    case kAnd: return (a != 0) && (b != 0);
    case kOr: return (a != 0) || (b != 0);
    case kSqDiff: { double d = x - y; return to_i32(d * d); }
    case kDiv: return to_i32(x / y);
    case kPow: return to_i32(pow(x, y));
    case kFloorDiv: return to_i32(floor(x / y));
    case kMod: {
      double r = fmod(x, y);
      if ((x < 0 && y < 0) || (x >= 0 && y >= 0)) return to_i32(r);
      return to_i32(fmod(r + y, y));
    }
    case kAtan2: return to_i32(atan2(x, y));
    case kPrelu: return a < 0 ? to_i32(x * y) : a;
    case kEluGrad: return y >= 0 ? a : to_i32(x * (y + 1));
  }
  return 0;
}

__global__ void binary_f32(int op, const float* a, const float* b, void* out, StridedPlan p) {
  const bool cmp = op >= kEq;
  VLMIX_GRID_LOOP(i, p.total) {
    int64_t off[2];
    plan_offsets<2>(p, i, off);
    float r = fop(op, a[off[0]], b[off[1]]);
    if (cmp) static_cast<int32_t*>(out)[i] = static_cast<int32_t>(r);
    else static_cast<float*>(out)[i] = r;
  }
}

__global__ void binary_i32(int op, const int32_t* a, const int32_t* b, int32_t* out, StridedPlan p) {
  VLMIX_GRID_LOOP(i, p.total) {
    int64_t off[2];
    plan_offsets<2>(p, i, off);
    out[i] = iop(op, a[off[0]], b[off[1]]);
  }
}

void launch_binary(cudaStream_t s, int op, int dtype, const void* a, const void* b, void* out, const StridedPlan& p) {
  if (p.total == 0) return;
  if (dtype == 0) binary_f32<<<grid_for(p.total), kThreads, 0, s>>>(op, (const float*)a, (const float*)b, out, p);
  else binary_i32<<<grid_for(p.total), kThreads, 0, s>>>(op, (const int32_t*)a, (const int32_t*)b, (int32_t*)out, p);
}

__global__ void select_k(const int32_t* c, const uint32_t* t, const uint32_t* e, uint32_t* out, StridedPlan p) {
  VLMIX_GRID_LOOP(i, p.total) {
    int64_t off[3];
    plan_offsets<3>(p, i, off);
    out[i] = c[off[0]] ? t[off[1]] : e[off[2]];
  }
}

void launch_select(cudaStream_t s, const int32_t* c, const void* t, const void* e, void* out, const StridedPlan& p) {
  if (p.total == 0) return;
  select_k<<<grid_for(p.total), kThreads, 0, s>>>(c, (const uint32_t*)t, (const uint32_t*)e, (uint32_t*)out, p);
}

constexpr int kAddNMax = 16;
struct AddNArgs {
  const void* p[kAddNMax];
  int n;
  bool accumulate;
};

__global__ void add_n_k(int dtype, AddNArgs a, void* out, int64_t n) {
  VLMIX_GRID_LOOP(i, n) {
    if (dtype == 0) {
      float acc = a.accumulate ? static_cast<float*>(out)[i] : 0.f;
      int k0 = 0;
      if (!a.accumulate) { acc = static_cast<const float*>(a.p[0])[i]; k0 = 1; }
      for (int k = k0; k < a.n; k++) acc += static_cast<const float*>(a.p[k])[i];
      static_cast<float*>(out)[i] = acc;
    } else {
      uint32_t acc = a.accumulate ? static_cast<uint32_t*>(out)[i] : 0u;
      for (int k = 0; k < a.n; k++) acc += static_cast<const uint32_t*>(a.p[k])[i];
      static_cast<uint32_t*>(out)[i] = acc;
    }
  }
}

void launch_add_n(cudaStream_t s, int dtype, const void* const* srcs, int nsrc, void* out, int64_t n) {
  if (n == 0) return;
  for (int k0 = 0; k0 < nsrc; k0 += kAddNMax) {
    AddNArgs a{};
    a.n = nsrc - k0 < kAddNMax ? nsrc - k0 : kAddNMax;
    for (int k = 0; k < a.n; k++) a.p[k] = srcs[k0 + k];
    a.accumulate = k0 > 0;
    add_n_k<<<grid_for(n), kThreads, 0, s>>>(dtype, a, out, n);
  }
}

// ------------------------------------------------------------------ unary

// tfjs-backend-cpu's erf approximation (Abramowitz & Stegun 7.1.26).
__device__ __forceinline__ double erf_tfjs(double x) {
  const double p = 0.3275911, a1 = 0.254829592, a2 = -0.284496736, a3 = 1.421413741, a4 = -1.453152027,
               a5 = 1.061405429;
  double s = x < 0 ? -1.0 : 1.0;
  double v = fabs(x);
  double t = 1.0 / (1.0 + p * v);
  return s * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * exp(-v * v));
}

template <class T>
__device__ __forceinline__ T uop(int op, T x, T alpha, T beta) {
  switch (op) {
    case kNeg: return -x;
    case kExp: return exp(x);
    case kLog: return log(x);
    case kLog1p: return log1p(x);
    case kSqrt: return sqrt(x);
    case kRsqrt: return T(1) / sqrt(x);
    case kSquare: return x * x;
    case kAbs: return fabs(x);
    case kTanh: return tanh(x);
    case kSigmoid: return T(1) / (T(1) + exp(-x));
    case kRelu: return x < 0 ? T(0) : x;
    case kErf: return static_cast<T>(erf_tfjs(static_cast<double>(x)));
    case kSin: return sin(x);
    case kCos: return cos(x);
    case kSign: return x > 0 ? T(1) : (x < 0 ? T(-1) : (x == 0 ? T(0) : x));
    case kFloor: return floor(x);
    case kCeil: return ceil(x);
    case kRound: return rint(x);  // half to even, like tfjs
    case kReciprocal: return T(1) / x;
    case kStep: return isnan(x) ? x : (x > 0 ? T(1) : alpha);
    case kClip: return x > beta ? beta : (x < alpha ? alpha : x);
    case kElu: return x >= 0 ? x : exp(x) - T(1);
    case kLeakyRelu: return x < 0 ? alpha * x : x;
    case kSoftplus: {
      const double th = -15.942385152878742 + 2.0;  // log(2^-23) + 2, as tfjs
      if (x < th) return exp(x);
      if (x > -th) return x;
      return log(T(1) + exp(x));
    }
    case kRelu6: return x < 0 ? T(0) : (x > 6 ? T(6) : x);
    case kSelu: {
      const T sa = T(1.7580993408473768599402175208123), sc = T(1.0507009873554804934193349852946);
      return x >= 0 ? sc * x : sa * (exp(x) - T(1));
    }
    case kExpm1: return expm1(x);
    case kTan: return tan(x);
    case kAtan: return atan(x);
    case kAsin: return asin(x);
    case kAcos: return acos(x);
    case kSinh: return sinh(x);
    case kCosh: return cosh(x);
    case kAsinh: return asinh(x);
    case kAcosh: return acosh(x);
    case kAtanh: return atanh(x);
    case kIsNan: return isnan(x) ? 1 : 0;
    case kIsInf: return isinf(x) ? 1 : 0;
    case kIsFinite: return isfinite(x) ? 1 : 0;
    case kLogicalNot: return x == 0 ? 1 : 0;
  }
  return 0;
}

__global__ void unary_f32(int op, const float* x, void* out, int64_t n, float alpha, float beta) {
  const bool pred = op >= kIsNan;
  VLMIX_GRID_LOOP(i, n) {
    float r = uop<float>(op, x[i], alpha, beta);
    if (pred) static_cast<int32_t*>(out)[i] = static_cast<int32_t>(r);
    else static_cast<float*>(out)[i] = r;
  }
}

__global__ void unary_i32(int op, const int32_t* x, int32_t* out, int64_t n, double alpha, double beta) {
  VLMIX_GRID_LOOP(i, n) out[i] = to_i32(uop<double>(op, static_cast<double>(x[i]), alpha, beta));
}

void launch_unary(cudaStream_t s, int op, int dtype, const void* x, void* out, int64_t n, double alpha, double beta) {
  if (n == 0) return;
  if (dtype == 0) unary_f32<<<grid_for(n), kThreads, 0, s>>>(op, (const float*)x, out, n, (float)alpha, (float)beta);
  else unary_i32<<<grid_for(n), kThreads, 0, s>>>(op, (const int32_t*)x, (int32_t*)out, n, alpha, beta);
}

__global__ void cast_k(const void* x, void* out, int64_t n, int from, int to, bool to_bool) {
  VLMIX_GRID_LOOP(i, n) {
    if (from == 0) {
      float v = static_cast<const float*>(x)[i];
      if (to_bool) static_cast<int32_t*>(out)[i] = v != 0;
      else if (to == 1) static_cast<int32_t*>(out)[i] = to_i32(v);
      else static_cast<float*>(out)[i] = v;
    } else {
      int32_t v = static_cast<const int32_t*>(x)[i];
      if (to_bool) static_cast<int32_t*>(out)[i] = v != 0;
      else if (to == 0) static_cast<float*>(out)[i] = static_cast<float>(v);
      else static_cast<int32_t*>(out)[i] = v;
    }
  }
}

void launch_cast(cudaStream_t s, const void* x, void* out, int64_t n, int from, int to, bool to_bool) {
  if (n == 0) return;
  cast_k<<<grid_for(n), kThreads, 0, s>>>(x, out, n, from, to, to_bool);
}

__global__ void fill_k(uint32_t* out, int64_t n, uint32_t bits) {
  VLMIX_GRID_LOOP(i, n) out[i] = bits;
}

void launch_fill(cudaStream_t s, void* out, int64_t n, uint32_t bits) {
  if (n == 0) return;
  fill_k<<<grid_for(n), kThreads, 0, s>>>((uint32_t*)out, n, bits);
}

__global__ void one_hot_k(const int32_t* idx, int64_t n, int64_t depth, uint32_t on, uint32_t off, uint32_t* out) {
  VLMIX_GRID_LOOP(i, n * depth) {
    int64_t r = i / depth, c = i % depth;
    out[i] = idx[r] == c ? on : off;
  }
}

void launch_one_hot(cudaStream_t s, const int32_t* idx, int64_t n, int64_t depth, uint32_t on, uint32_t off, void* out) {
  if (n * depth == 0) return;
  one_hot_k<<<grid_for(n * depth), kThreads, 0, s>>>(idx, n, depth, on, off, (uint32_t*)out);
}

// ------------------------------------------------------------------ data movement

__global__ void strided_copy_k(const uint32_t* src, int64_t soff, uint32_t* dst, int64_t doff, StridedPlan p) {
  VLMIX_GRID_LOOP(i, p.total) {
    int64_t off[2];
    plan_offsets<2>(p, i, off);
    dst[doff + off[1]] = src[soff + off[0]];
  }
}

// dims [R, L]: src(i, j) = src[soff + i + j * sL], dst(i, j) = dst[doff + i * dR + j].
constexpr int kTile = 32, kTileRows = 8;
__global__ void transpose_k(const uint32_t* src, int64_t soff, int64_t sL, uint32_t* dst, int64_t doff, int64_t dR,
                            int64_t R, int64_t L) {
  __shared__ uint32_t tile[kTile][kTile + 1];
  const int64_t i0 = (int64_t)blockIdx.x * kTile, j0 = (int64_t)blockIdx.y * kTile;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    int64_t i = i0 + threadIdx.x, j = j0 + k;
    if (i < R && j < L) tile[k][threadIdx.x] = src[soff + i + j * sL];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    int64_t i = i0 + k, j = j0 + threadIdx.x;
    if (i < R && j < L) dst[doff + i * dR + j] = tile[threadIdx.x][k];
  }
}

void launch_strided_copy(cudaStream_t s, const uint32_t* src, int64_t soff, uint32_t* dst, int64_t doff,
                         const StridedPlan& p) {
  if (p.total == 0) return;
  if (p.rank == 2 && p.strides[0][0] == 1 && p.strides[0][1] != 1 && p.strides[0][1] != 0 && p.strides[1][1] == 1 &&
      p.dims[0] >= 32 && p.dims[1] >= 32 && (p.dims[1] + kTile - 1) / kTile <= 65535) {
    dim3 grid((unsigned)((p.dims[0] + kTile - 1) / kTile), (unsigned)((p.dims[1] + kTile - 1) / kTile));
    transpose_k<<<grid, dim3(kTile, kTileRows), 0, s>>>(src, soff, p.strides[0][1], dst, doff, p.strides[1][0],
                                                        p.dims[0], p.dims[1]);
    return;
  }
  strided_copy_k<<<grid_for(p.total), kThreads, 0, s>>>(src, soff, dst, doff, p);
}

__global__ void gather_k(const uint32_t* x, const int32_t* idx, uint32_t* out, int64_t outer, int64_t N, int64_t inner,
                         int64_t M, int* err, int code) {
  VLMIX_GRID_LOOP(i, outer * M * inner) {
    int64_t c = i % inner, r = i / inner, m = r % M, o = r / M;
    int32_t k = idx[m];
    if (k < 0 || k >= N) {
      out[i] = 0;
      atomicOr(err, code);
    } else {
      out[i] = x[(o * N + k) * inner + c];
    }
  }
}

void launch_gather(cudaStream_t s, const uint32_t* x, const int32_t* idx, uint32_t* out, int64_t outer, int64_t N,
                   int64_t inner, int64_t M, int err_code) {
  int64_t n = outer * M * inner;
  if (n == 0) return;
  gather_k<<<grid_for(n), kThreads, 0, s>>>(x, idx, out, outer, N, inner, M, device_error_flag(), err_code);
}

// Segment sum without float atomics, so that its bits do not depend on thread timing (a step must be
// reproducible and replayable bit for bit): each segment's rows are summed in row order.
//   count[s]   rows per segment (integer atomics: exact)
//   offset[s]  exclusive scan of count, offset[S] = valid rows
//   order[offset[s] + r] = the r-th row of segment s, r = rows before it with the same id
//   out[s, c]  = sum over order[offset[s] .. offset[s + 1]) of x[row, c]
// The rank costs O(N^2 / 2) comparisons spread over N threads: fine up to ~1e5 rows.
__global__ void seg_count_k(const int32_t* ids, int64_t N, int64_t S, int* count) {
  VLMIX_GRID_LOOP(n, N) {
    int64_t sg = ids[n];
    if (sg >= 0 && sg < S) atomicAdd(count + sg, 1);
  }
}

// One block: each thread scans a contiguous chunk; the chunk totals are scanned in shared memory.
__global__ void exclusive_scan_k(const int* count, int* offset, int64_t S) {
  __shared__ int tot[1024];
  const int t = threadIdx.x, T = blockDim.x;
  const int64_t chunk = (S + T - 1) / T, b = t * chunk, e = b + chunk < S ? b + chunk : S;
  int sum = 0;
  for (int64_t i = b; i < e; i++) sum += count[i];
  tot[t] = sum;
  __syncthreads();
  for (int d = 1; d < T; d <<= 1) {
    int v = t >= d ? tot[t - d] : 0;
    __syncthreads();
    tot[t] += v;
    __syncthreads();
  }
  int run = t ? tot[t - 1] : 0;
  for (int64_t i = b; i < e; i++) {
    offset[i] = run;
    run += count[i];
  }
  if (t == T - 1) offset[S] = tot[T - 1];
}

__global__ void seg_order_k(const int32_t* ids, int64_t N, int64_t S, const int* offset, int* order) {
  VLMIX_GRID_LOOP(n, N) {
    const int32_t sg = ids[n];
    if (sg < 0 || sg >= S) continue;
    int r = 0;
    for (int64_t m = 0; m < n; m++) r += ids[m] == sg;
    order[offset[sg] + r] = (int)n;
  }
}

__global__ void seg_reduce_k(int dtype, const void* x, const int* order, const int* offset, void* out, int64_t inner,
                             int64_t S) {
  VLMIX_GRID_LOOP(i, S * inner) {
    const int64_t sg = i / inner, c = i % inner;
    const int b = offset[sg], e = offset[sg + 1];
    if (dtype == 0) {
      const float* xf = static_cast<const float*>(x);
      float acc = 0.f;
      for (int j = b; j < e; j++) acc += xf[(int64_t)order[j] * inner + c];
      static_cast<float*>(out)[i] = acc;
    } else {
      const unsigned int* xi = static_cast<const unsigned int*>(x);
      unsigned int acc = 0;
      for (int j = b; j < e; j++) acc += xi[(int64_t)order[j] * inner + c];
      static_cast<unsigned int*>(out)[i] = acc;
    }
  }
}

int64_t segment_sum_scratch_ints(int64_t N, int64_t S) { return 2 * S + 1 + N; }

void launch_segment_sum(cudaStream_t s, int dtype, const void* x, const int32_t* ids, void* out, int64_t N,
                        int64_t inner, int64_t S, int* scratch) {
  if (S * inner == 0) return;
  int* count = scratch;
  int* offset = scratch + S;
  int* order = scratch + 2 * S + 1;
  cudaMemsetAsync(count, 0, (size_t)S * sizeof(int), s);
  if (N) seg_count_k<<<grid_for(N), kThreads, 0, s>>>(ids, N, S, count);
  exclusive_scan_k<<<1, 1024, 0, s>>>(count, offset, S);
  if (N) seg_order_k<<<grid_for(N), kThreads, 0, s>>>(ids, N, S, offset, order);
  seg_reduce_k<<<grid_for(S * inner), kThreads, 0, s>>>(dtype, x, order, offset, out, inner, S);
}

}  // namespace vlmix_cuda
