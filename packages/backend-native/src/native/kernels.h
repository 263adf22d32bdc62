// The CPU compute kernels, llm.c style: plain functions on pointers with explicit sizes, outputs
// first, no N-API and no allocation of their outputs (the glue, src/glue/napi_glue.h, allocates
// buffers and unpacks JS arguments for these and for the CUDA launchers alike). Elements are 4 bytes;
// `dtype` is F32 or I32 (bool is I32 0/1). Every kernel is deterministic: results never depend on the
// thread count. Threads come from threadpool.h; vector code from simd.h.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernel_args.h"
#include "plans.h"

namespace vlmix {

// ---- elementwise (binary.cc, unary.cc); op codes in op_codes.h
void binary(void* out, const void* a, const void* b, const BcastPlan& plan, int op, int dtype);
void select(void* out, const int32_t* cond, const void* t, const void* e, const BcastPlan& plan);
// out = xs[0] + xs[1] + ... in input order.
void add_n(void* out, const void* const* xs, int64_t count, int64_t n, int dtype);
void unary(void* out, const void* x, int64_t n, int op, int dtype, double alpha, double beta);
// float -> int truncates like an Int32Array store; to_bool gives x != 0.
void cast(void* out, const void* x, int64_t n, int from, int to, bool to_bool);

// ---- reductions (reduce.cc): x viewed as [outer, R, inner] -> [outer, inner]
void reduce(void* out, const void* x, int64_t outer, int64_t R, int64_t inner, int op, int dtype);
// Softmax (or log-softmax) over the last axis of x [rows, cols].
void softmax(float* out, const float* x, int64_t rows, int64_t cols, bool log);

// ---- data movement (shape.cc, gather.cc)
void copy_strided(uint32_t* dst, int64_t doff, const uint32_t* src, int64_t soff, const CopyPlan& plan);
void fill(uint32_t* out, int64_t n, uint32_t bits);
void one_hot(uint32_t* out, const int32_t* idx, int64_t n, int64_t depth, uint32_t on_bits, uint32_t off_bits);
// NHWC nearest-neighbour resize of x [B, H, W, C] to [B, OH, OW, C] (tfjs-backend-cpu's index math).
void resize_nearest(uint32_t* y, const uint32_t* x, int64_t B, int64_t H, int64_t W, int64_t C, int64_t OH,
                    int64_t OW, bool align_corners, bool half_pixel_centers);
// Its adjoint: dx [B, H, W, C] from dy [B, YH, YW, C].
void resize_nearest_grad(float* dx, const float* dy, int64_t B, int64_t H, int64_t W, int64_t C, int64_t YH,
                         int64_t YW, bool align_corners);
// x [outer, N, inner] -> out [outer, M, inner] = x[:, idx, :]; throws on an index outside [0, N).
void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t N, int64_t inner,
            int64_t M);
// Row gather with a zero row: out[i] = idx[i] < rows ? x[idx[i]] : 0 for x [rows, C], out [n, C];
// idx[i] == rows picks the zero row, anything else outside [0, rows] throws. Serves both
// VlmixGatherRows (idx into x) and its gradient (the inverse map into dy, n = zero row).
void gather_rows(uint32_t* out, const uint32_t* x, int64_t rows, const int32_t* idx, int64_t n, int64_t C);
// out [S, inner] = sum of the rows x[n] with ids[n] = s, in row order (ids outside [0, S) skipped).
void segment_sum(void* out, const void* x, const int32_t* ids, int64_t N, int64_t inner, int64_t S, int dtype);

// ---- matmul and convolution (matmul.cc, conv.cc)
// c [max(batch_a, batch_b), M, N] = op(a) @ op(b); a batch of 1 is shared by every output batch.
void batch_matmul(float* c, const float* a, const float* b, int64_t batch_a, int64_t batch_b, int64_t M,
                  int64_t N, int64_t K, bool trans_a, bool trans_b);
// NHWC convolution and its gradients, by im2col + sgemm (ConvGeom: kernel_args.h, shared with vlmix-cuda).
void conv2d(float* y, const float* x, const float* w, const ConvGeom& g);
void conv2d_backprop_input(float* dx, const float* dy, const float* w, const ConvGeom& g);
void conv2d_backprop_filter(float* dw, const float* x, const float* dy, const ConvGeom& g);

// ---- fused kernels (fused_*.cc): the contract is packages/core/src/ops/kernel-names.ts
void layernorm_forward(float* y, const float* x, const float* gamma, const float* beta, int64_t rows, int64_t C,
                       double eps);
void layernorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                        int64_t rows, int64_t C, double eps);
void rmsnorm_forward(float* y, const float* x, const float* gamma, int64_t rows, int64_t C, double eps);
void rmsnorm_backward(float* dx, float* dgamma, const float* dy, const float* x, const float* gamma, int64_t rows,
                      int64_t C, double eps);
// bias: nullptr or [Bb, Hb, Tb, Tk] per AttnGeom.
void attention_forward(float* out, const float* q, const float* k, const float* v, const float* bias,
                       const AttnGeom& g);
void attention_backward(float* dq, float* dk, float* dv, const float* dy, const float* q, const float* k,
                        const float* v, const float* bias, const AttnGeom& g);
void sce_forward(float* loss, const float* logits, const int32_t* labels, int64_t N, int64_t V, int64_t ignore);
// One row of those (fused_misc.cc), shared with the fused head's loss: the row's loss at `label` (NaN when out of
// [0, V)); d = scale * (softmax(logits) - onehot(label)), d may be logits. Rows per thread chunk: sce_row_grain.
float sce_row_loss(const float* logits, int64_t V, int32_t label);
void sce_row_grad(float* d, const float* logits, int64_t V, int32_t label, float scale);
inline int64_t sce_row_grain(int64_t V) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(V, 1)); }
void sce_backward(float* dlogits, const float* dloss, const float* logits, const int32_t* labels, int64_t N,
                  int64_t V, int64_t ignore);
// An LM head with its mean cross-entropy over the rows whose label is not `ignore` (fused_linear_ce.cc):
// x [N, C], w [V, C], labels [N]. The backward writes dx [N, C] (zero on ignored rows) and dw [V, C].
float linear_ce_forward(const float* x, const float* w, const int32_t* labels, int64_t N, int64_t C, int64_t V,
                        int64_t ignore);
void linear_ce_backward(float* dx, float* dw, float dloss, const float* x, const float* w, const int32_t* labels,
                        int64_t N, int64_t C, int64_t V, int64_t ignore);
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form);
void gelu_backward(float* dx, const float* dy, const float* x, int64_t n, bool tanh_form);
// RoPE on x [B, H, T, D] with cos/sin [Bc, T, R] (Bc 1 or B): R channel pairs rotate, channels from 2R on
// pass through. Pairs (j, j + R) ('half', HF Llama) or (2j, 2j + 1) (interleaved); inverse rotates by -angle.
void rotary(float* y, const float* x, const float* cos, const float* sin, int64_t B, int64_t H, int64_t T, int64_t D,
            int64_t R, int64_t Bc, bool interleaved, bool inverse);
void swiglu_forward(float* y, const float* gate, const float* up, int64_t n);
void swiglu_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, int64_t n);
// One AdamW step over `count` tensors.
void adamw(const AdamWTensor* ts, int64_t count, const AdamWHyper& h);

}  // namespace vlmix
