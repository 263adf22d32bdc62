// Fused kernels for vlmix-cuda: GELU / SwiGLU (+grad), multi-tensor AdamW, and attention.
// Attention follows @vlmix/core/kernel-names: GQA (query head h reads kv head h / (Hq / Hkv)), additive
// bias [Bb, Hb, Tb, Tk] (1 = broadcast), causal with offset Tk - Tq, rows whose best score is <= -1e8
// (all keys masked) give zeros. Forward: one warp per query row, online softmax over the keys.
// Backward recomputes the probabilities: a per-query-row pass (logsumexp, D = rowsum(P * dP), dq),
// then a per-key-row pass (dk, dv) looping over the group's query heads in order (no atomics).
#include <stdexcept>

#include "common.cuh"

namespace vlmix_cuda {

constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f,
                kInvSqrt2Pi = 0.3989422804014327f;

__global__ void gelu_k(const float* x, float* y, int64_t n, bool th) {
  VLMIX_GRID_LOOP(i, n) {
    float v = x[i];
    y[i] = th ? 0.5f * v * (1.f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)))
              : 0.5f * v * (1.f + erff(v * kInvSqrt2));
  }
}

__global__ void gelu_grad_k(const float* dy, const float* x, float* dx, int64_t n, bool th) {
  VLMIX_GRID_LOOP(i, n) {
    float v = x[i], g;
    if (th) {
      float t = tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v));
      g = 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * 0.044715f * v * v);
    } else {
      g = 0.5f * (1.f + erff(v * kInvSqrt2)) + v * expf(-0.5f * v * v) * kInvSqrt2Pi;
    }
    dx[i] = dy[i] * g;
  }
}

__global__ void swiglu_k(const float* g, const float* u, float* y, int64_t n) {
  VLMIX_GRID_LOOP(i, n) y[i] = g[i] / (1.f + expf(-g[i])) * u[i];
}

__global__ void swiglu_grad_k(const float* dy, const float* g, const float* u, float* dg, float* du, int64_t n) {
  VLMIX_GRID_LOOP(i, n) {
    float sg = 1.f / (1.f + expf(-g[i]));
    du[i] = dy[i] * g[i] * sg;
    dg[i] = dy[i] * u[i] * sg * (1.f + g[i] * (1.f - sg));
  }
}

void launch_gelu(cudaStream_t s, const float* x, float* y, int64_t n, bool t) {
  if (n) gelu_k<<<grid_for(n), kThreads, 0, s>>>(x, y, n, t);
}
void launch_gelu_grad(cudaStream_t s, const float* dy, const float* x, float* dx, int64_t n, bool t) {
  if (n) gelu_grad_k<<<grid_for(n), kThreads, 0, s>>>(dy, x, dx, n, t);
}
void launch_swiglu(cudaStream_t s, const float* g, const float* u, float* y, int64_t n) {
  if (n) swiglu_k<<<grid_for(n), kThreads, 0, s>>>(g, u, y, n);
}
void launch_swiglu_grad(cudaStream_t s, const float* dy, const float* g, const float* u, float* dg, float* du,
                        int64_t n) {
  if (n) swiglu_grad_k<<<grid_for(n), kThreads, 0, s>>>(dy, g, u, dg, du, n);
}

// ------------------------------------------------------------------ AdamW (multi-tensor)

constexpr int kAdamWGroup = 32;  // 32 * 64 bytes of descriptors stay well under the 4 KB parameter limit
struct AdamWGroup {
  AdamWTensor t[kAdamWGroup];
};

__global__ void adamw_k(AdamWGroup grp, AdamWHyper h) {
  const AdamWTensor& t = grp.t[blockIdx.y];
  const float c1 = 1.f - h.b1, c2 = 1.f - h.b2;
  VLMIX_GRID_LOOP(i, t.n) {
    float gi = t.g[i];
    float mi = h.b1 * t.m[i] + c1 * gi;
    float vi = h.b2 * t.v[i] + c2 * gi * gi;
    t.mo[i] = mi;
    t.vo[i] = vi;
    t.po[i] = t.p[i] * h.decay - h.step_size * mi / (sqrtf(vi) * h.inv_sqrt_bc2 + h.eps);
  }
}

void launch_adamw(cudaStream_t s, const AdamWTensor* ts, int count, const AdamWHyper& h) {
  for (int k0 = 0; k0 < count; k0 += kAdamWGroup) {
    AdamWGroup grp{};
    int n = count - k0 < kAdamWGroup ? count - k0 : kAdamWGroup;
    int64_t most = 0;
    for (int k = 0; k < n; k++) {
      grp.t[k] = ts[k0 + k];
      if (ts[k0 + k].n > most) most = ts[k0 + k].n;
    }
    if (most == 0) continue;
    int64_t bx = (most + kThreads - 1) / kThreads;
    if (bx > 4096) bx = 4096;
    adamw_k<<<dim3((unsigned)bx, (unsigned)n), kThreads, 0, s>>>(grp, h);
  }
}

// ------------------------------------------------------------------ attention

constexpr int kWarps = 4;  // rows per block
constexpr float kMaskedRow = -1e8f;

__device__ __forceinline__ const float* bias_row(const AttnGeom& g, const float* bias, int64_t b, int64_t h,
                                                 int64_t i) {
  if (!bias) return nullptr;
  return bias + (((g.Bb == 1 ? 0 : b) * g.Hb + (g.Hb == 1 ? 0 : h)) * g.Tb + (g.Tb == 1 ? 0 : i)) * g.Tk;
}

__device__ __forceinline__ int64_t key_limit(const AttnGeom& g, int64_t i) {
  if (!g.causal) return g.Tk;
  int64_t lim = i + (g.Tk - g.Tq) + 1;
  return lim < 0 ? 0 : (lim > g.Tk ? g.Tk : lim);
}

// Warp dot product of a shared-memory row with a global row (all lanes get the result).
__device__ __forceinline__ float warp_dot(const float* sh, const float* gl, int64_t n) {
  float acc = 0.f;
  for (int64_t d = threadIdx.x & 31; d < n; d += 32) acc += sh[d] * gl[d];
  return warp_sum(acc);
}

__device__ __forceinline__ float score(const AttnGeom& g, const float* qs, const float* kj, const float* brow, int64_t j) {
  float sc = warp_dot(qs, kj, g.D) * g.scale;
  return brow ? sc + brow[j] : sc;
}

// grid (ceil(Tq / kWarps), Hq, B), block 32 * kWarps; shared: kWarps * (D + Dv) floats.
__global__ void attn_fwd_k(AttnGeom g, const float* q, const float* k, const float* v, const float* bias, float* out) {
  extern __shared__ float sh[];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y, i = (int64_t)blockIdx.x * kWarps + w;
  if (i >= g.Tq) return;  // whole warp leaves; no block-wide barriers below
  float* qs = sh + w * (g.D + g.Dv);
  float* acc = qs + g.D;
  const float* qi = q + ((b * g.Hq + h) * g.Tq + i) * g.D;
  for (int64_t d = lane; d < g.D; d += 32) qs[d] = qi[d];
  for (int64_t d = lane; d < g.Dv; d += 32) acc[d] = 0.f;
  __syncwarp();
  const int64_t kvh = h / (g.Hq / g.Hkv);
  const float* kb = k + (b * g.Hkv + kvh) * g.Tk * g.D;
  const float* vb = v + (b * g.Hkv + kvh) * g.Tk * g.Dv;
  const float* brow = bias_row(g, bias, b, h, i);
  const int64_t lim = key_limit(g, i);
  float m = -INFINITY, l = 0.f;
  for (int64_t j = 0; j < lim; j++) {
    const float s = score(g, qs, kb + j * g.D, brow, j);
    if (!(s > -INFINITY)) continue;  // -inf (or NaN) keys contribute nothing
    const float mn = fmaxf(m, s);
    const float alpha = expf(m - mn), p = expf(s - mn);
    l = l * alpha + p;
    const float* vj = vb + j * g.Dv;
    for (int64_t d = lane; d < g.Dv; d += 32) acc[d] = acc[d] * alpha + p * vj[d];
    m = mn;
  }
  float* oi = out + ((b * g.Hq + h) * g.Tq + i) * g.Dv;
  const bool masked = !(m > kMaskedRow) || !(l > 0.f);
  const float inv = masked ? 0.f : 1.f / l;
  for (int64_t d = lane; d < g.Dv; d += 32) oi[d] = masked ? 0.f : acc[d] * inv;
}

// Per query row: lse (INFINITY for masked rows), D = sum_j P_ij dP_ij, dq. grid/block as forward;
// shared: kWarps * (D + Dv + D) floats (q, dO, dq accumulator).
__global__ void attn_bwd_q_k(AttnGeom g, const float* dy, const float* q, const float* k, const float* v,
                             const float* bias, float* dq, float* lse_out, float* dsum_out) {
  extern __shared__ float sh[];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y, i = (int64_t)blockIdx.x * kWarps + w;
  if (i >= g.Tq) return;
  float* qs = sh + w * (2 * g.D + g.Dv);
  float* dos = qs + g.D;
  float* dqs = dos + g.Dv;
  const int64_t row = (b * g.Hq + h) * g.Tq + i;
  for (int64_t d = lane; d < g.D; d += 32) { qs[d] = q[row * g.D + d]; dqs[d] = 0.f; }
  for (int64_t d = lane; d < g.Dv; d += 32) dos[d] = dy[row * g.Dv + d];
  __syncwarp();
  const int64_t kvh = h / (g.Hq / g.Hkv);
  const float* kb = k + (b * g.Hkv + kvh) * g.Tk * g.D;
  const float* vb = v + (b * g.Hkv + kvh) * g.Tk * g.Dv;
  const float* brow = bias_row(g, bias, b, h, i);
  const int64_t lim = key_limit(g, i);
  // pass 1: max and normaliser
  float m = -INFINITY, l = 0.f;
  for (int64_t j = 0; j < lim; j++) {
    const float s = score(g, qs, kb + j * g.D, brow, j);
    if (!(s > -INFINITY)) continue;
    const float mn = fmaxf(m, s);
    l = l * expf(m - mn) + expf(s - mn);
    m = mn;
  }
  const bool masked = !(m > kMaskedRow) || !(l > 0.f);
  const float lse = masked ? INFINITY : m + logf(l);
  // pass 2: D = sum_j P_ij * (dO_i . v_j)
  float dsum = 0.f;
  if (!masked) {
    for (int64_t j = 0; j < lim; j++) {
      const float s = score(g, qs, kb + j * g.D, brow, j);
      const float p = expf(s - lse);
      const float dp = warp_dot(dos, vb + j * g.Dv, g.Dv);
      dsum += p * dp;
    }
  }
  // pass 3: dq_i = scale * sum_j P_ij (dP_ij - D) k_j
  if (!masked) {
    for (int64_t j = 0; j < lim; j++) {
      const float s = score(g, qs, kb + j * g.D, brow, j);
      const float p = expf(s - lse);
      const float dp = warp_dot(dos, vb + j * g.Dv, g.Dv);
      const float ds = p * (dp - dsum) * g.scale;
      const float* kj = kb + j * g.D;
      for (int64_t d = lane; d < g.D; d += 32) dqs[d] += ds * kj[d];
    }
  }
  __syncwarp();
  for (int64_t d = lane; d < g.D; d += 32) dq[row * g.D + d] = dqs[d];
  if (lane == 0) {
    lse_out[row] = lse;
    dsum_out[row] = dsum;
  }
}

// Per key row j of kv head kvh: dk_j, dv_j over the group's query heads (in order) and the query rows
// that may see key j. grid (ceil(Tk / kWarps), Hkv, B); shared: kWarps * 2 * (D + Dv) floats.
__global__ void attn_bwd_kv_k(AttnGeom g, const float* dy, const float* q, const float* k, const float* v,
                              const float* bias, const float* lse, const float* dsum, float* dk, float* dv) {
  extern __shared__ float sh[];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, kvh = blockIdx.y, j = (int64_t)blockIdx.x * kWarps + w;
  if (j >= g.Tk) return;
  float* ks = sh + w * 2 * (g.D + g.Dv);
  float* vs = ks + g.D;
  float* dks = vs + g.Dv;
  float* dvs = dks + g.D;
  const int64_t krow = (b * g.Hkv + kvh) * g.Tk + j;
  for (int64_t d = lane; d < g.D; d += 32) { ks[d] = k[krow * g.D + d]; dks[d] = 0.f; }
  for (int64_t d = lane; d < g.Dv; d += 32) { vs[d] = v[krow * g.Dv + d]; dvs[d] = 0.f; }
  __syncwarp();
  const int64_t group = g.Hq / g.Hkv;
  int64_t i0 = 0;
  if (g.causal) {
    i0 = j - (g.Tk - g.Tq);  // key j is visible to query i iff j <= i + Tk - Tq
    if (i0 < 0) i0 = 0;
  }
  for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int64_t i = i0; i < g.Tq; i++) {
      const int64_t row = (b * g.Hq + h) * g.Tq + i;
      const float L = lse[row];
      if (!(L < INFINITY)) continue;  // masked row: P = 0
      const float* qi = q + row * g.D;
      const float* brow = bias_row(g, bias, b, h, i);
      float s = warp_dot(ks, qi, g.D) * g.scale;
      if (brow) s += brow[j];
      if (!(s > -INFINITY)) continue;
      const float p = expf(s - L);
      const float* doi = dy + row * g.Dv;
      const float dp = warp_dot(vs, doi, g.Dv);
      const float ds = p * (dp - dsum[row]) * g.scale;
      for (int64_t d = lane; d < g.Dv; d += 32) dvs[d] += p * doi[d];
      for (int64_t d = lane; d < g.D; d += 32) dks[d] += ds * qi[d];
    }
  }
  __syncwarp();
  for (int64_t d = lane; d < g.D; d += 32) dk[krow * g.D + d] = dks[d];
  for (int64_t d = lane; d < g.Dv; d += 32) dv[krow * g.Dv + d] = dvs[d];
}

static void check_smem(size_t bytes) {
  if (bytes > 48 * 1024) throw std::runtime_error("vlmix-cuda attention: head dims too large (D + Dv > 1536)");
}

void launch_attention(cudaStream_t s, const AttnGeom& g, const float* q, const float* k, const float* v,
                      const float* bias, float* out) {
  if (g.B * g.Hq * g.Tq == 0 || g.Dv == 0) {
    if (g.B * g.Hq * g.Tq * g.Dv) cudaMemsetAsync(out, 0, g.B * g.Hq * g.Tq * g.Dv * 4, s);
    return;
  }
  size_t smem = (size_t)kWarps * (g.D + g.Dv) * 4;
  check_smem(smem);
  dim3 grid((unsigned)((g.Tq + kWarps - 1) / kWarps), (unsigned)g.Hq, (unsigned)g.B);
  attn_fwd_k<<<grid, 32 * kWarps, smem, s>>>(g, q, k, v, bias, out);
}

void launch_attention_grad(cudaStream_t s, const AttnGeom& g, const float* dy, const float* q, const float* k,
                           const float* v, const float* bias, float* dq, float* dk, float* dv, float* scratch) {
  const int64_t nq = g.B * g.Hq * g.Tq, nk = g.B * g.Hkv * g.Tk;
  float* lse = scratch;
  float* dsum = scratch + nq;
  if (nq > 0) {
    size_t smem = (size_t)kWarps * (2 * g.D + g.Dv) * 4;
    check_smem(smem);
    dim3 grid((unsigned)((g.Tq + kWarps - 1) / kWarps), (unsigned)g.Hq, (unsigned)g.B);
    attn_bwd_q_k<<<grid, 32 * kWarps, smem, s>>>(g, dy, q, k, v, bias, dq, lse, dsum);
  }
  if (nk > 0) {
    if (nq == 0) {
      if (g.D) cudaMemsetAsync(dk, 0, nk * g.D * 4, s);
      if (g.Dv) cudaMemsetAsync(dv, 0, nk * g.Dv * 4, s);
      return;
    }
    size_t smem = (size_t)kWarps * 2 * (g.D + g.Dv) * 4;
    check_smem(smem);
    dim3 grid((unsigned)((g.Tk + kWarps - 1) / kWarps), (unsigned)g.Hkv, (unsigned)g.B);
    attn_bwd_kv_k<<<grid, 32 * kWarps, smem, s>>>(g, dy, q, k, v, bias, lse, dsum, dk, dv);
  }
}

}  // namespace vlmix_cuda
