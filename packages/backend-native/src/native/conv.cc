// NHWC Conv2D and its two gradients via im2col / col2im + sgemm.
#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "simd.h"

namespace vlmix {
namespace {

// cols[r - r0, (kh,kw,c)] = x[b, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c] (0 outside), for
// output rows r = (b,oh,ow) in [r0, r1).
void im2col_rows(const float* x, const ConvGeom& g, int64_t r0, int64_t r1, float* cols) {
  const int64_t K = g.cols();
  for (int64_t r = r0; r < r1; r++) {
    int64_t bi = r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
    float* dst = cols + (r - r0) * K;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      if (ih < 0 || ih >= g.H) { std::memset(dst + kh * g.KW * g.Cin, 0, g.KW * g.Cin * 4); continue; }
      const float* xrow = x + (bi * g.H + ih) * g.W * g.Cin;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        int64_t iw = ow * g.sw - g.pl + kw * g.dw;
        float* d = dst + (kh * g.KW + kw) * g.Cin;
        if (iw < 0 || iw >= g.W) std::memset(d, 0, g.Cin * 4);
        else std::memcpy(d, xrow + iw * g.Cin, g.Cin * 4);
      }
    }
  }
}

// Output channels up to this go through the small-N kernels of simd.h instead of sgemm.
constexpr int64_t kSmallN = 8;

// Rows per block of im2col work: the block's columns (~256 KiB) stay in L2 while the GEMM reads them.
int64_t rows_per_block(const ConvGeom& g) {
  return std::max<int64_t>(16, std::min<int64_t>(1024, (64 * 1024) / std::max<int64_t>(g.cols(), 1)));
}

// w [cols, Cout] -> wt [Cout, cols].
std::vector<float> transpose_w(const float* w, int64_t K, int64_t N) {
  std::vector<float> wt(K * N);
  for (int64_t k = 0; k < K; k++)
    for (int64_t n = 0; n < N; n++) wt[n * K + k] = w[k * N + n];
  return wt;
}

}  // namespace

// w is [KH, KW, Cin, Cout] = [cols, Cout].
// Blocks of output rows run in parallel; each builds its im2col block in a per-thread buffer and
// multiplies it with a single-threaded sgemm (a nested call), so every output element is one dot
// product in the GEMM's K order whatever the thread count.
void conv2d(float* y, const float* x, const float* w, const ConvGeom& g) {
  if (g.rows() * g.Cout == 0) return;
  const int64_t K = g.cols(), N = g.Cout, M = g.rows();
  if (K == 0) { std::memset(y, 0, M * N * 4); return; }
  bool direct = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                g.OH == g.H && g.OW == g.W;
  const bool small = N <= kSmallN;
  if (direct && !small) {
    sgemm(false, false, M, N, K, 1.f, x, K, w, N, 0.f, y, N);
    return;
  }
  std::vector<float> wt = small ? transpose_w(w, K, N) : std::vector<float>();
  const SimdOps& sv = simd();
  const int64_t RB = rows_per_block(g), nblk = (M + RB - 1) / RB;
  parallel_for(nblk, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> cols(direct ? 0 : RB * K);
    for (int64_t blk = b0; blk < b1; blk++) {
      const int64_t r0 = blk * RB, r1 = std::min(M, r0 + RB);
      const float* a = x + r0 * K;
      if (!direct) { im2col_rows(x, g, r0, r1, cols.data()); a = cols.data(); }
      if (small) sv.mm_small_n(a, K, wt.data(), y + r0 * N, N, r1 - r0, N, K);
      else sgemm(false, false, r1 - r0, N, K, 1.f, a, K, w, N, 0.f, y + r0 * N, N);
    }
  });
}

namespace {

// Adds the column block dcols (rows [r0, r1) of one image bi) into dx; fixed scatter order.
void col2im_rows(const float* dcols, const ConvGeom& g, int64_t r0, int64_t r1, float* dx) {
  const int64_t K = g.cols();
  for (int64_t r = r0; r < r1; r++) {
    int64_t bi = r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
    const float* src = dcols + (r - r0) * K;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        int64_t iw = ow * g.sw - g.pl + kw * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        float* d = dx + ((bi * g.H + ih) * g.W + iw) * g.Cin;
        const float* s = src + (kh * g.KW + kw) * g.Cin;
        for (int64_t c = 0; c < g.Cin; c++) d[c] += s[c];
      }
    }
  }
}

}  // namespace

// dx [B, H, W, Cin]. Parallel over images (their dx regions are disjoint); within an image, row blocks of
// dcols = dy @ w^T are formed and scattered in order, so the sum order is fixed.
void conv2d_backprop_input(float* dx, const float* dy, const float* w, const ConvGeom& g) {
  const int64_t img = g.H * g.W * g.Cin;
  const int64_t K = g.cols(), N = g.Cout, M = g.rows();
  if (M * K == 0 || N == 0) { std::memset(dx, 0, g.B * img * 4); return; }
  const bool small = N <= kSmallN;
  std::vector<float> wt = small ? transpose_w(w, K, N) : std::vector<float>();
  const SimdOps& sv = simd();
  const int64_t per_img = g.OH * g.OW;
  const int64_t RB = std::min(rows_per_block(g), per_img);
  if (g.B < 4 && !small) {
    // Few images (fixed threshold, so the plan never depends on the thread count): one threaded GEMM for all of dcols, then col2im per image.
    std::vector<float> dcols(M * K);
    sgemm(false, true, M, K, N, 1.f, dy, N, w, N, 0.f, dcols.data(), K);
    parallel_for(g.B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t bi = b0; bi < b1; bi++) {
        std::memset(dx + bi * img, 0, img * 4);
        col2im_rows(dcols.data() + bi * per_img * K, g, bi * per_img, (bi + 1) * per_img, dx);
      }
    });
    return;
  }
  parallel_for(g.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> dcols(RB * K);
    for (int64_t bi = b0; bi < b1; bi++) {
      std::memset(dx + bi * img, 0, img * 4);
      for (int64_t r0 = bi * per_img; r0 < (bi + 1) * per_img; r0 += RB) {
        const int64_t r1 = std::min((bi + 1) * per_img, r0 + RB);
        if (small) sv.mm_small_k(dy + r0 * N, wt.data(), dcols.data(), K, r1 - r0, N, K);
        else sgemm(false, true, r1 - r0, K, N, 1.f, dy + r0 * N, N, w, N, 0.f, dcols.data(), K);
        col2im_rows(dcols.data(), g, r0, r1, dx);
      }
    }
  });
}

// dw [KH, KW, Cin, Cout] = sum over row blocks of cols_blk^T @ dy_blk. The blocks are dealt to a fixed number of groups
// (independent of the thread count); each group accumulates its blocks in order, and the group
// partials are added in group order: deterministic.
void conv2d_backprop_filter(float* dw, const float* x, const float* dy, const ConvGeom& g) {
  const int64_t K = g.cols(), N = g.Cout, M = g.rows();
  if (K * N == 0) return;
  if (M == 0) { std::memset(dw, 0, K * N * 4); return; }
  bool direct = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                g.OH == g.H && g.OW == g.W;
  const bool small = N <= kSmallN;
  if (direct && !small) {
    sgemm(true, false, K, N, M, 1.f, x, K, dy, N, 0.f, dw, N);
    return;
  }
  const SimdOps& sv = simd();
  const int64_t RB = std::max<int64_t>(rows_per_block(g), 256), nblk = (M + RB - 1) / RB;
  const int64_t ngroups = std::min<int64_t>(nblk, 8);
  // Partials are [K, N] for sgemm, [N, K] for the small-N kernel.
  std::vector<float> part(ngroups * K * N, 0.f);
  parallel_for(ngroups, 1, [&](int64_t g0, int64_t g1) {
    std::vector<float> cols(direct ? 0 : RB * K);
    for (int64_t gi = g0; gi < g1; gi++) {
      float* acc = part.data() + gi * K * N;
      const int64_t bb = gi * nblk / ngroups, be = (gi + 1) * nblk / ngroups;
      for (int64_t blk = bb; blk < be; blk++) {
        const int64_t r0 = blk * RB, r1 = std::min(M, r0 + RB);
        const float* a = x + r0 * K;
        if (!direct) { im2col_rows(x, g, r0, r1, cols.data()); a = cols.data(); }
        if (small) sv.mm_small_acc(a, K, dy + r0 * N, acc, r1 - r0, N, K);
        else sgemm(true, false, K, N, r1 - r0, 1.f, a, K, dy + r0 * N, N, blk == bb ? 0.f : 1.f, acc, N);
      }
    }
  });
  for (int64_t k = 0; k < K; k++)
    for (int64_t n = 0; n < N; n++) {
      const int64_t at = small ? n * K + k : k * N + n;
      float s = part[at];
      for (int64_t gi = 1; gi < ngroups; gi++) s += part[gi * K * N + at];
      dw[k * N + n] = s;
    }
}

}  // namespace vlmix
