// Broadcast iteration: collapses dims and walks the output in row segments.
#pragma once
#include "common.h"

namespace vlmix {

struct BcastPlan {
  std::vector<int64_t> dims;  // collapsed output dims
  std::vector<std::vector<int64_t>> strides;  // per operand, element strides (0 = broadcast)
  int64_t total = 1;
};

// shapes are right-aligned against out.
inline BcastPlan make_bcast(const std::vector<std::vector<int64_t>>& shapes, const std::vector<int64_t>& out) {
  size_t r = out.size(), nops = shapes.size();
  std::vector<std::vector<int64_t>> st(nops, std::vector<int64_t>(r, 0));
  for (size_t k = 0; k < nops; k++) {
    const auto& s = shapes[k];
    int64_t acc = 1;
    for (size_t i = 0; i < r; i++) {
      size_t d = r - 1 - i;
      int64_t dim = i < s.size() ? s[s.size() - 1 - i] : 1;
      st[k][d] = (dim == 1) ? 0 : acc;
      acc *= dim;
    }
  }
  BcastPlan p;
  for (auto d : out) p.total *= d;
  p.strides.assign(nops, {});
  // Merge from the innermost dim outwards when every operand stays contiguous across the pair.
  for (size_t d = 0; d < r; d++) {
    if (out[d] == 1) continue;
    bool merge = !p.dims.empty();
    if (merge) {
      for (size_t k = 0; k < nops; k++) {
        if (p.strides[k].back() != st[k][d] * out[d]) { merge = false; break; }
      }
    }
    if (merge) {
      p.dims.back() *= out[d];
      for (size_t k = 0; k < nops; k++) p.strides[k].back() = st[k][d];
    } else {
      p.dims.push_back(out[d]);
      for (size_t k = 0; k < nops; k++) p.strides[k].push_back(st[k][d]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    for (size_t k = 0; k < nops; k++) p.strides[k].push_back(0);
  }
  return p;
}

// Calls seg(outOffset, len, off[0..nops), innerStride[0..nops)) for contiguous output segments
// covering [begin, end).
template <int NOPS, class Seg>
inline void bcast_walk(const BcastPlan& p, int64_t begin, int64_t end, Seg&& seg) {
  const int64_t r = static_cast<int64_t>(p.dims.size());
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
