// Host-side launchers of the vlmix-cuda kernels (defined in *.cu, called from the N-API glue).
// Every launcher is asynchronous on the given stream; pointers are device pointers; elements are
// 4 bytes (float32, or int32 for int32/bool). dtype: 0 = float32, 1 = int32.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "../native/kernel_args.h"
#include "../native/op_codes.h"

namespace vlmix_cuda {

// Argument types shared with the CPU kernels (src/native/kernel_args.h).
using vlmix::AdamWHyper;
using vlmix::AdamWTensor;
using vlmix::AttnGeom;
using vlmix::ConvGeom;

constexpr int kMaxRank = 8;

// Collapsed strided view for up to 3 operands (element strides, 0 = broadcast).
struct StridedPlan {
  int rank;
  int64_t dims[kMaxRank];
  int64_t strides[3][kMaxRank];
  int64_t total;
};

// Device-side error flags (bit set by a kernel, read back at the next synchronising read).
enum DeviceError : int { kErrGatherIndex = 1, kErrGatherRowsIndex = 2 };
int* device_error_flag();

// Convolution (conv.cu): NHWC im2col (cols [B*OH*OW, KH*KW*Cin]) and its adjoint col2im.
void launch_im2col(cudaStream_t s, const float* x, float* cols, const ConvGeom& g);
void launch_col2im(cudaStream_t s, const float* dcols, float* dx, const ConvGeom& g);

// Elementwise (elementwise.cu). Op codes: src/native/op_codes.h.
void launch_binary(cudaStream_t s, int op, int dtype, const void* a, const void* b, void* out, const StridedPlan& p);
void launch_select(cudaStream_t s, const int32_t* c, const void* t, const void* e, void* out, const StridedPlan& p);
void launch_add_n(cudaStream_t s, int dtype, const void* const* srcs, int nsrc, void* out, int64_t n);
void launch_unary(cudaStream_t s, int op, int dtype, const void* x, void* out, int64_t n, double alpha, double beta);
void launch_cast(cudaStream_t s, const void* x, void* out, int64_t n, int from, int to, bool to_bool);
void launch_fill(cudaStream_t s, void* out, int64_t n, uint32_t bits);
void launch_one_hot(cudaStream_t s, const int32_t* idx, int64_t n, int64_t depth, uint32_t on, uint32_t off, void* out);
// dst[doff + sum(i_d * dst_strides_d)] = src[soff + sum(i_d * src_strides_d)]; p.strides[0] = src,
// p.strides[1] = dst. A 2-D transpose uses a tiled shared-memory kernel.
void launch_strided_copy(cudaStream_t s, const uint32_t* src, int64_t soff, uint32_t* dst, int64_t doff, const StridedPlan& p);
// An index outside [0, N) gives a zero row and sets err_code in the device error flag (reported at the next sync).
void launch_gather(cudaStream_t s, const uint32_t* x, const int32_t* idx, uint32_t* out, int64_t outer, int64_t N,
                   int64_t inner, int64_t M, int err_code = kErrGatherIndex);
// Deterministic (rows summed per segment in row order); ids outside [0, S) are skipped. scratch holds
// segment_sum_scratch_ints(N, S) ints.
int64_t segment_sum_scratch_ints(int64_t N, int64_t S);
void launch_segment_sum(cudaStream_t s, int dtype, const void* x, const int32_t* ids, void* out, int64_t N,
                        int64_t inner, int64_t S, int* scratch);

// Reductions and row kernels (rows.cu).
void launch_reduce(cudaStream_t s, int op, int dtype, const void* x, void* out, int64_t outer, int64_t R, int64_t inner);
void launch_softmax(cudaStream_t s, const float* x, float* y, int64_t rows, int64_t cols, bool log);
void launch_sce(cudaStream_t s, const float* logits, const int32_t* labels, float* loss, int64_t N, int64_t V, int64_t ignore);
void launch_sce_grad(cudaStream_t s, const float* dloss, const float* logits, const int32_t* labels, float* d, int64_t N,
                     int64_t V, int64_t ignore);
void launch_norm_fwd(cudaStream_t s, bool rms, const float* x, const float* gamma, const float* beta, float* y,
                     int64_t rows, int64_t C, double eps);
// partial: scratch of 2 * ceil(rows / 64) * C floats; dbeta may be null (rms).
void launch_norm_bwd(cudaStream_t s, bool rms, const float* dy, const float* x, const float* gamma, float* dx,
                     float* dgamma, float* dbeta, float* partial, int64_t rows, int64_t C, double eps);
int64_t norm_bwd_scratch_floats(int64_t rows, int64_t C);

// Fused elementwise and attention (fused.cu).
void launch_gelu(cudaStream_t s, const float* x, float* y, int64_t n, bool tanh_form);
void launch_gelu_grad(cudaStream_t s, const float* dy, const float* x, float* dx, int64_t n, bool tanh_form);
void launch_swiglu(cudaStream_t s, const float* g, const float* u, float* y, int64_t n);
void launch_swiglu_grad(cudaStream_t s, const float* dy, const float* g, const float* u, float* dg, float* du, int64_t n);

// Any number of tensors; launched in groups (one launch per kAdamWGroup tensors).
void launch_adamw(cudaStream_t s, const AdamWTensor* ts, int count, const AdamWHyper& h);

void launch_attention(cudaStream_t s, const AttnGeom& g, const float* q, const float* k, const float* v,
                      const float* bias, float* out);
// scratch: 2 * B * Hq * Tq floats (row logsumexp and D = rowsum(P * dP)). dq/dk/dv need no zeroing.
void launch_attention_grad(cudaStream_t s, const AttnGeom& g, const float* dy, const float* q, const float* k,
                           const float* v, const float* bias, float* dq, float* dk, float* dv, float* scratch);

}  // namespace vlmix_cuda

namespace vlmix_cuda {
// Built-in batched SGEMM (matmul.cu), used when cuBLAS is unavailable or VLMIX_CUDA_GEMM=builtin.
// Row-major: C[b] = op(A[b]) * op(B[b]); strides in elements (0 = shared operand).
void launch_sgemm_builtin(cudaStream_t s, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                          const float* A, int64_t strideA, const float* B, int64_t strideB, float* C);
}  // namespace vlmix_cuda
