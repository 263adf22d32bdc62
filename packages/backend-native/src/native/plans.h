// Index plans of the strided kernels, built from JS shapes by the N-API glue for both devices:
//   BcastPlan: operand strides against a broadcast output (binary, select);
//   CopyPlan:  the same for a strided copy (transpose, slice, broadcastTo, tile, pad, concat, ...).
// Both collapse dims where every operand stays contiguous. Plain C++ (no N-API), and no heap: shapes
// and plans are fixed-size (at most kMaxDims dims), because a tiny op's time is mostly bookkeeping.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace vlmix {

constexpr int kMaxDims = 16;

// A shape or a list of strides, stored inline.
struct Dims {
  int64_t v[kMaxDims];
  int n = 0;

  int size() const { return n; }
  int64_t operator[](int i) const { return v[i]; }
  int64_t& operator[](int i) { return v[i]; }
  void push_back(int64_t x) {
    if (n == kMaxDims) throw std::invalid_argument("more than " + std::to_string(kMaxDims) + " dims");
    v[n++] = x;
  }
  const int64_t* begin() const { return v; }
  const int64_t* end() const { return v + n; }
};

inline int64_t prod(const Dims& s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}

inline Dims contiguous_strides(const Dims& shape) {
  Dims s;
  s.n = shape.n;
  int64_t acc = 1;
  for (int i = shape.n; i-- > 0;) { s[i] = acc; acc *= shape[i]; }
  return s;
}

struct BcastPlan {
  int rank = 0;                   // collapsed output rank (>= 1)
  int64_t dims[kMaxDims];         // collapsed output dims
  int64_t strides[3][kMaxDims];   // per operand, element strides (0 = broadcast)
  int64_t total = 1;
};

// shapes (at most 3) are right-aligned against out.
inline BcastPlan make_bcast(std::initializer_list<Dims> shapes, const Dims& out) {
  const int r = out.size(), nops = (int)shapes.size();
  int64_t st[3][kMaxDims];
  int k = 0;
  for (const Dims& s : shapes) {
    int64_t acc = 1;
    for (int i = 0; i < r; i++) {
      int d = r - 1 - i;
      int64_t dim = i < s.size() ? s[s.size() - 1 - i] : 1;
      st[k][d] = (dim == 1) ? 0 : acc;
      acc *= dim;
    }
    k++;
  }
  BcastPlan p;
  for (int64_t d : out) p.total *= d;
  // Walk the dims outermost first; merge a dim into the previous one when every operand stays
  // contiguous across the pair.
  for (int d = 0; d < r; d++) {
    if (out[d] == 1) continue;
    bool merge = p.rank > 0;
    for (int j = 0; merge && j < nops; j++) merge = p.strides[j][p.rank - 1] == st[j][d] * out[d];
    if (merge) {
      p.dims[p.rank - 1] *= out[d];
      for (int j = 0; j < nops; j++) p.strides[j][p.rank - 1] = st[j][d];
    } else {
      p.dims[p.rank] = out[d];
      for (int j = 0; j < nops; j++) p.strides[j][p.rank] = st[j][d];
      p.rank++;
    }
  }
  if (p.rank == 0) {
    p.rank = 1;
    p.dims[0] = 1;
    for (int j = 0; j < nops; j++) p.strides[j][0] = 0;
  }
  return p;
}

// A strided copy as a two-operand plan: strides[0] = source, strides[1] = destination, over `shape`
// (dst[doff + sum(i_d * ds_d)] = src[soff + sum(i_d * ss_d)]); dims of extent 1 dropped, neighbours
// merged where both sides stay contiguous. A rank-0 (or all-ones) shape is one element.
using CopyPlan = BcastPlan;

inline CopyPlan make_copy_plan(const Dims& shape, const Dims& ss, const Dims& ds) {
  CopyPlan p;
  p.total = prod(shape);
  int64_t* src = p.strides[0];
  int64_t* dst = p.strides[1];
  for (int d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    const int last = p.rank - 1;
    if (p.rank > 0 && src[last] == ss[d] * shape[d] && dst[last] == ds[d] * shape[d]) {
      p.dims[last] *= shape[d];
      src[last] = ss[d];
      dst[last] = ds[d];
    } else {
      p.dims[p.rank] = shape[d];
      src[p.rank] = ss[d];
      dst[p.rank] = ds[d];
      p.rank++;
    }
  }
  if (p.rank == 0) {
    p.rank = 1;
    p.dims[0] = 1;
    src[0] = dst[0] = 1;
  }
  return p;
}

}  // namespace vlmix
