// Fused scaled-dot-product attention (GQA, additive bias, causal with KV-cache offset).
// Blocked over 64 query rows: scores for a block are built with sgemm, softmaxed per row, then
// multiplied by V. Backward recomputes the probabilities (nothing is saved from forward).
// A row whose best score is <= -1e8 (all keys masked by -inf / -1e9 bias or causality) is zero.
#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {
namespace {

constexpr int64_t kQB = 64;
constexpr float kMaskedRow = -1e8f;

// The bias rows [Tb, Tk] of (batch b, query head h).
const float* bias_ptr(const AttnGeom& g, const float* bias, int64_t b, int64_t h) {
  return bias + ((g.Bb == 1 ? 0 : b) * g.Hb + (g.Hb == 1 ? 0 : h)) * g.Tb * g.Tk;
}

// Fills P[rows, kn] (ld = ldp) with softmax probabilities for query rows [i0, i0+rows) of (b, h).
// Returns kn, the number of keys any row in the block may see.
int64_t block_probs(const AttnGeom& g, const float* q, const float* k, const float* bias, int64_t b,
                    int64_t h, int64_t i0, int64_t rows, float* P, int64_t ldp) {
  const int64_t off = g.Tk - g.Tq;
  int64_t kn = g.causal ? std::min(g.Tk, std::max<int64_t>(0, i0 + rows - 1 + off + 1)) : g.Tk;
  if (kn == 0) return 0;
  const int64_t kvh = h / (g.Hq / g.Hkv);
  const float* qb = q + ((b * g.Hq + h) * g.Tq + i0) * g.D;
  const float* kb = k + (b * g.Hkv + kvh) * g.Tk * g.D;
  if (g.D > 0) sgemm(false, true, rows, kn, g.D, g.scale, qb, g.D, kb, g.D, 0.f, P, ldp);
  else for (int64_t r = 0; r < rows; r++) std::memset(P + r * ldp, 0, kn * 4);
  const float* bb = bias ? bias_ptr(g, bias, b, h) : nullptr;
  const SimdOps& sv = simd();
  for (int64_t r = 0; r < rows; r++) {
    float* pr = P + r * ldp;
    const int64_t i = i0 + r;
    int64_t lim = g.causal ? std::min(kn, std::max<int64_t>(0, i + off + 1)) : kn;
    if (bb) {
      const float* br = bb + (g.Tb == 1 ? 0 : i) * g.Tk;
      for (int64_t j = 0; j < lim; j++) pr[j] += br[j];
    }
    // The softmax kernel's row helpers (vectorised exp): a scalar std::exp here cost a fifth of attention.
    const float m = lim > 0 ? sv.row_max(pr, lim) : -INFINITY;
    if (!(m > kMaskedRow)) {
      std::memset(pr, 0, kn * 4);
      continue;
    }
    sv.scale(pr, lim, (float)(1.0 / sv.exp_shift_sum(pr, pr, lim, m)));
    for (int64_t j = lim; j < kn; j++) pr[j] = 0.f;
  }
  return kn;
}

}  // namespace

// out [B, Hq, Tq, Dv]
void attention_forward(float* out, const float* q, const float* k, const float* v, const float* bias,
                       const AttnGeom& g) {
  int64_t nqb = (g.Tq + kQB - 1) / kQB, units = g.B * g.Hq * nqb;
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    std::vector<float> P(kQB * std::max<int64_t>(g.Tk, 1));
    for (int64_t u = u0; u < u1; u++) {
      int64_t bh = u / nqb, qbi = u % nqb, b = bh / g.Hq, h = bh % g.Hq;
      int64_t i0 = qbi * kQB, rows = std::min(kQB, g.Tq - i0);
      float* ob = out + ((b * g.Hq + h) * g.Tq + i0) * g.Dv;
      int64_t kn = block_probs(g, q, k, bias, b, h, i0, rows, P.data(), g.Tk);
      if (kn == 0 || g.Dv == 0) { std::memset(ob, 0, rows * g.Dv * 4); continue; }
      const float* vb = v + (b * g.Hkv + h / (g.Hq / g.Hkv)) * g.Tk * g.Dv;
      sgemm(false, false, rows, g.Dv, kn, 1.f, P.data(), g.Tk, vb, g.Dv, 0.f, ob, g.Dv);
    }
  });
}

// Parallel over (batch, kv head); the query heads of a group and their blocks run in a fixed
// order, so dk/dv accumulation is deterministic.
void attention_backward(float* dq, float* dk, float* dv, const float* dy, const float* q, const float* k,
                        const float* v, const float* bias, const AttnGeom& g) {
  std::memset(dq, 0, g.B * g.Hq * g.Tq * g.D * 4);
  std::memset(dk, 0, g.B * g.Hkv * g.Tk * g.D * 4);
  std::memset(dv, 0, g.B * g.Hkv * g.Tk * g.Dv * 4);
  const int64_t group = g.Hq / g.Hkv, nqb = (g.Tq + kQB - 1) / kQB;
  const SimdOps& sv = simd();
  parallel_for(g.B * g.Hkv, 1, [&](int64_t u0, int64_t u1) {
    const int64_t ld = std::max<int64_t>(g.Tk, 1);
    std::vector<float> P(kQB * ld), dP(kQB * ld);
    for (int64_t u = u0; u < u1; u++) {
      int64_t b = u / g.Hkv, kvh = u % g.Hkv;
      float* dkb = dk + (b * g.Hkv + kvh) * g.Tk * g.D;
      float* dvb = dv + (b * g.Hkv + kvh) * g.Tk * g.Dv;
      const float* kb = k + (b * g.Hkv + kvh) * g.Tk * g.D;
      const float* vb = v + (b * g.Hkv + kvh) * g.Tk * g.Dv;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int64_t qbi = 0; qbi < nqb; qbi++) {
          int64_t i0 = qbi * kQB, rows = std::min(kQB, g.Tq - i0);
          int64_t kn = block_probs(g, q, k, bias, b, h, i0, rows, P.data(), ld);
          if (kn == 0) continue;
          const float* dyb = dy + ((b * g.Hq + h) * g.Tq + i0) * g.Dv;
          const float* qb = q + ((b * g.Hq + h) * g.Tq + i0) * g.D;
          float* dqb = dq + ((b * g.Hq + h) * g.Tq + i0) * g.D;
          if (g.Dv > 0) sgemm(false, true, rows, kn, g.Dv, 1.f, dyb, g.Dv, vb, g.Dv, 0.f, dP.data(), ld);
          else for (int64_t r = 0; r < rows; r++) std::memset(dP.data() + r * ld, 0, kn * 4);
          // dS = P * (dP - rowsum(P * dP)) * scale, written over dP.
          for (int64_t r = 0; r < rows; r++) sv.softmax_grad_row(P.data() + r * ld, dP.data() + r * ld, kn, g.scale);
          if (g.D > 0) {
            sgemm(false, false, rows, g.D, kn, 1.f, dP.data(), ld, kb, g.D, 0.f, dqb, g.D);
            sgemm(true, false, kn, g.D, rows, 1.f, dP.data(), ld, qb, g.D, 1.f, dkb, g.D);
          }
          if (g.Dv > 0) sgemm(true, false, kn, g.Dv, rows, 1.f, P.data(), ld, dyb, g.Dv, 1.f, dvb, g.Dv);
        }
      }
    }
  });
}

}  // namespace vlmix
