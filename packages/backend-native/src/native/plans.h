// Index plans of the strided kernels, built from JS shapes by the N-API glue for both devices:
//   BcastPlan: operand strides against a broadcast output (binary, select);
//   CopyPlan:  the same for a strided copy (transpose, slice, broadcastTo, tile, pad, concat, ...).
// Both collapse dims where every operand stays contiguous. Plain C++ (no N-API).
#pragma once
#include <cstdint>
#include <vector>

namespace vlmix {

inline int64_t prod(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (auto d : s) p *= d;
  return p;
}

inline std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) { s[i] = acc; acc *= shape[i]; }
  return s;
}

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

// A strided copy as a two-operand plan: strides[0] = source, strides[1] = destination, over `shape`
// (dst[doff + sum(i_d * ds_d)] = src[soff + sum(i_d * ss_d)]); dims of extent 1 dropped, neighbours
// merged where both sides stay contiguous. A rank-0 (or all-ones) shape is one element.
using CopyPlan = BcastPlan;

inline CopyPlan make_copy_plan(const std::vector<int64_t>& shape, const std::vector<int64_t>& ss,
                               const std::vector<int64_t>& ds) {
  CopyPlan p;
  p.total = prod(shape);
  p.strides.assign(2, {});
  std::vector<int64_t>&src = p.strides[0], &dst = p.strides[1];
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!p.dims.empty() && src.back() == ss[d] * shape[d] && dst.back() == ds[d] * shape[d]) {
      p.dims.back() *= shape[d];
      src.back() = ss[d];
      dst.back() = ds[d];
    } else {
      p.dims.push_back(shape[d]);
      src.push_back(ss[d]);
      dst.push_back(ds[d]);
    }
  }
  if (p.dims.empty()) { p.dims = {1}; src = {1}; dst = {1}; }
  return p;
}

}  // namespace vlmix
