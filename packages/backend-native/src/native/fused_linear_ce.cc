// An LM head and its mean softmax cross-entropy in one kernel (VlmixLinearCrossEntropy), over the rows whose label
// is kept only:
//   loss = sum over kept rows i of (log sum_j exp(l_ij) - l_i,label) / max(kept, 1),   l_i = x_i W^T.
// The [N, V] logits are never stored: rows go through in chunks of about kChunkFloats logits, and the backward
// recomputes them. Rows with ignoreIndex cost nothing, which is most of them when only answers are supervised.
// The per-row math is sce_forward / sce_backward's (sce_row_loss / sce_row_grad); the products are the GEMM's.
#include "common.h"
#include "gemm.h"
#include "kernels.h"

namespace vlmix {
namespace {

constexpr int64_t kChunkFloats = int64_t(4) << 20;  // 16 MiB of logits per chunk

std::vector<int64_t> kept_rows(const int32_t* labels, int64_t N, int64_t ignore) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < N; i++)
    if (labels[i] != ignore) rows.push_back(i);
  return rows;
}

int64_t chunk_rows(int64_t V) { return std::max<int64_t>(2, kChunkFloats / std::max<int64_t>(V, 1)); }

// fn(r0, m, xs, logits) for each chunk of the kept rows [r0, r0 + m): xs their rows of x [m, C], logits = xs W^T
// [m, V] (fn may overwrite them).
template <class F>
void each_chunk(const float* x, const float* w, const std::vector<int64_t>& rows, int64_t C, int64_t V, const F& fn) {
  const int64_t n = (int64_t)rows.size(), R = chunk_rows(V);
  std::vector<float> xs(std::min(n, R) * C), logits(std::min(n, R) * V);
  for (int64_t r0 = 0; r0 < n; r0 += R) {
    const int64_t m = std::min(R, n - r0);
    for (int64_t r = 0; r < m; r++) std::memcpy(xs.data() + r * C, x + rows[r0 + r] * C, C * 4);
    sgemm(false, true, m, V, C, 1.f, xs.data(), C, w, C, 0.f, logits.data(), V);
    fn(r0, m, xs.data(), logits.data());
  }
}

}  // namespace

float linear_ce_forward(const float* x, const float* w, const int32_t* labels, int64_t N, int64_t C, int64_t V,
                        int64_t ignore) {
  const std::vector<int64_t> rows = kept_rows(labels, N, ignore);
  std::vector<float> loss(rows.size());
  each_chunk(x, w, rows, C, V, [&](int64_t r0, int64_t m, const float*, const float* logits) {
    parallel_for(m, sce_row_grain(V), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) loss[r0 + r] = sce_row_loss(logits + r * V, V, labels[rows[r0 + r]]);
    });
  });
  double total = 0;  // in row order: the same bits for any thread count
  for (float v : loss) total += v;
  return (float)total / (float)std::max<size_t>(rows.size(), 1);
}

void linear_ce_backward(float* dx, float* dw, float dloss, const float* x, const float* w, const int32_t* labels,
                        int64_t N, int64_t C, int64_t V, int64_t ignore) {
  const std::vector<int64_t> rows = kept_rows(labels, N, ignore);
  std::memset(dx, 0, N * C * 4);
  if (rows.empty()) std::memset(dw, 0, V * C * 4);
  const float scale = dloss / (float)rows.size();  // the mean's divisor, as the forward's
  std::vector<float> dxs(std::min<int64_t>((int64_t)rows.size(), chunk_rows(V)) * C);
  each_chunk(x, w, rows, C, V, [&](int64_t r0, int64_t m, const float* xs, float* g) {
    // dlogits = scale * (softmax - onehot(label)), in place
    parallel_for(m, sce_row_grain(V), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) sce_row_grad(g + r * V, g + r * V, V, labels[rows[r0 + r]], scale);
    });
    sgemm(false, false, m, C, V, 1.f, g, V, w, C, 0.f, dxs.data(), C);
    for (int64_t r = 0; r < m; r++) std::memcpy(dx + rows[r0 + r] * C, dxs.data() + r * C, C * 4);
    sgemm(true, false, V, C, m, 1.f, g, V, xs, C, r0 == 0 ? 0.f : 1.f, dw, C);
  });
}

}  // namespace vlmix
