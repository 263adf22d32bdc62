// Broadcast plan: operand strides against the output, dims collapsed where every operand stays
// contiguous. Plain C++ (no N-API): shared by the CPU addon and the CUDA addon's host code.
#pragma once
#include <cstdint>
#include <vector>

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

}  // namespace vlmix
