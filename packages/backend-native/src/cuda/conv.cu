// NHWC Conv2D and its two gradients on the GPU: im2col / col2im around one GEMM each (as the CPU addon's
// conv.cc). cols[r, (kh, kw, c)] = x[b, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c] for r = (b, oh, ow).
#include "common.cuh"
#include "kernels.h"

namespace vlmix_cuda {

__global__ void im2col_k(const float* x, float* cols, vlmix::ConvGeom g) {
  const int64_t K = g.KH * g.KW * g.Cin;
  VLMIX_GRID_LOOP(i, g.B * g.OH * g.OW * K) {
    const int64_t r = i / K, k = i % K;
    const int64_t c = k % g.Cin, kw = (k / g.Cin) % g.KW, kh = k / (g.Cin * g.KW);
    const int64_t b = r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
    cols[i] = (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) ? 0.f : x[((b * g.H + ih) * g.W + iw) * g.Cin + c];
  }
}

// dx[b, ih, iw, c] = sum over the (kh, kw) that read it of dcols[(b, oh, ow), (kh, kw, c)]: a gather per
// input element (no atomics, so the sum's order is fixed).
__global__ void col2im_k(const float* dcols, float* dx, vlmix::ConvGeom g) {
  const int64_t K = g.KH * g.KW * g.Cin;
  VLMIX_GRID_LOOP(i, g.B * g.H * g.W * g.Cin) {
    const int64_t c = i % g.Cin, iw = (i / g.Cin) % g.W, ih = (i / (g.Cin * g.W)) % g.H, b = i / (g.Cin * g.W * g.H);
    float acc = 0.f;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      const int64_t th = ih + g.pt - kh * g.dh;
      if (th < 0 || th % g.sh) continue;
      const int64_t oh = th / g.sh;
      if (oh >= g.OH) continue;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        const int64_t tw = iw + g.pl - kw * g.dw;
        if (tw < 0 || tw % g.sw) continue;
        const int64_t ow = tw / g.sw;
        if (ow >= g.OW) continue;
        acc += dcols[((b * g.OH + oh) * g.OW + ow) * K + (kh * g.KW + kw) * g.Cin + c];
      }
    }
    dx[i] = acc;
  }
}

void launch_im2col(cudaStream_t s, const float* x, float* cols, const vlmix::ConvGeom& g) {
  const int64_t n = g.rows() * g.cols();
  if (n) im2col_k<<<grid_for(n), kThreads, 0, s>>>(x, cols, g);
}

void launch_col2im(cudaStream_t s, const float* dcols, float* dx, const vlmix::ConvGeom& g) {
  const int64_t n = g.B * g.H * g.W * g.Cin;
  if (n) col2im_k<<<grid_for(n), kThreads, 0, s>>>(dcols, dx, g);
}

}  // namespace vlmix_cuda
