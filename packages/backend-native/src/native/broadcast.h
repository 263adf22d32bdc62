// Broadcast iteration: collapses dims and walks the output in row segments.
#pragma once
#include "common.h"
#include "plans.h"

namespace vlmix {

// Calls seg(outOffset, len, off[0..nops), innerStride[0..nops)) for contiguous output segments
// covering [begin, end).
template <int NOPS, class Seg>
inline void bcast_walk(const BcastPlan& p, int64_t begin, int64_t end, Seg&& seg) {
  const int64_t r = p.rank;
  const int64_t L = p.dims[r - 1];
  int64_t idx[16] = {0};
  int64_t pos = begin;
  int64_t outer = pos / L, inner = pos % L;
  for (int64_t d = r - 2; d >= 0; d--) {
    idx[d] = outer % p.dims[d];
    outer /= p.dims[d];
  }
  int64_t off[NOPS], is[NOPS];
  for (int k = 0; k < NOPS; k++) {
    off[k] = 0;
    for (int64_t d = 0; d < r - 1; d++) off[k] += idx[d] * p.strides[k][d];
    is[k] = p.strides[k][r - 1];
  }
  while (pos < end) {
    int64_t len = std::min(L - inner, end - pos);
    int64_t o[NOPS];
    for (int k = 0; k < NOPS; k++) o[k] = off[k] + inner * is[k];
    seg(pos, len, o, is);
    pos += len;
    inner = 0;
    for (int64_t d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (int k = 0; k < NOPS; k++) off[k] += p.strides[k][d];
      if (idx[d] < p.dims[d]) break;
      for (int k = 0; k < NOPS; k++) off[k] -= p.strides[k][d] * p.dims[d];
      idx[d] = 0;
    }
  }
}

}  // namespace vlmix
