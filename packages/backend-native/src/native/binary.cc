// Elementwise binary ops with full numpy broadcasting, float32 and int32 inputs.
#include "broadcast.h"
#include "kernels.h"
#include "op_codes.h"

namespace vlmix {
namespace {

using namespace opcodes::bin;

inline bool is_cmp(int op) { return op >= kEq; }

// Float math mirrors tfjs-backend-cpu (computed in double like JS, rounded to float32).
template <int OP>
inline float fop(float a, float b) {
  if constexpr (OP == kAdd) return a + b;
  if constexpr (OP == kSub) return a - b;
  if constexpr (OP == kMul) return a * b;
  if constexpr (OP == kDiv) return a / b;
  if constexpr (OP == kMax) return (std::isnan(a) || std::isnan(b)) ? NAN : (a > b ? a : b);
  if constexpr (OP == kMin) return (std::isnan(a) || std::isnan(b)) ? NAN : (a < b ? a : b);
  if constexpr (OP == kPow) return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  if constexpr (OP == kSqDiff) { float d = a - b; return d * d; }
  if constexpr (OP == kFloorDiv) return std::floor(a / b);
  if constexpr (OP == kMod) {
    float r = std::fmod(a, b);
    if ((a < 0 && b < 0) || (a >= 0 && b >= 0)) return r;
    return std::fmod(r + b, b);
  }
  if constexpr (OP == kAtan2) return std::atan2(a, b);
  if constexpr (OP == kPrelu) return a < 0 ? b * a : a;
  if constexpr (OP == kEluGrad) return b >= 0 ? a : a * (b + 1);
  if constexpr (OP == kEq) return a == b;
  if constexpr (OP == kNe) return a != b;
  if constexpr (OP == kLt) return a < b;
  if constexpr (OP == kLe) return a <= b;
  if constexpr (OP == kGt) return a > b;
  if constexpr (OP == kGe) return a >= b;
  if constexpr (OP == kAnd) return (a != 0) && (b != 0);
  if constexpr (OP == kOr) return (a != 0) || (b != 0);
  return 0;
}

template <int OP>
inline int32_t iop(int32_t a, int32_t b) {
  uint32_t ua = static_cast<uint32_t>(a), ub = static_cast<uint32_t>(b);
  if constexpr (OP == kAdd) return static_cast<int32_t>(ua + ub);
  if constexpr (OP == kSub) return static_cast<int32_t>(ua - ub);
  if constexpr (OP == kMul) return to_i32(static_cast<double>(a) * static_cast<double>(b));
  if constexpr (OP == kMax) return a > b ? a : b;
  if constexpr (OP == kMin) return a < b ? a : b;
  if constexpr (OP == kEq) return a == b;
  if constexpr (OP == kNe) return a != b;
  if constexpr (OP == kLt) return a < b;
  if constexpr (OP == kLe) return a <= b;
  if constexpr (OP == kGt) return a > b;
  if constexpr (OP == kGe) return a >= b;
  if constexpr (OP == kAnd) return (a != 0) && (b != 0);
  if constexpr (OP == kOr) return (a != 0) || (b != 0);
  if constexpr (OP == kSqDiff) { double d = static_cast<double>(a) - b; return to_i32(d * d); }
  double x = a, y = b;
  if constexpr (OP == kDiv) return to_i32(x / y);
  if constexpr (OP == kPow) return to_i32(std::pow(x, y));
  if constexpr (OP == kFloorDiv) return to_i32(std::floor(x / y));
  if constexpr (OP == kMod) {
    double r = std::fmod(x, y);
    if ((x < 0 && y < 0) || (x >= 0 && y >= 0)) return to_i32(r);
    return to_i32(std::fmod(r + y, y));
  }
  if constexpr (OP == kAtan2) return to_i32(std::atan2(x, y));
  if constexpr (OP == kPrelu) return a < 0 ? to_i32(x * y) : a;
  if constexpr (OP == kEluGrad) return y >= 0 ? a : to_i32(x * (y + 1));
  return 0;
}

template <int OP, class T, class O>
inline O apply(T a, T b) {
  if constexpr (std::is_same<T, float>::value) return static_cast<O>(fop<OP>(a, b));
  else return static_cast<O>(iop<OP>(a, b));
}

template <int OP, class T, class O>
void run(const T* a, const T* b, O* out, const BcastPlan& plan) {
  parallel_for(plan.total, 16384, [&](int64_t begin, int64_t end) {
    bcast_walk<2>(plan, begin, end, [&](int64_t pos, int64_t len, const int64_t* off, const int64_t* is) {
      const T* pa = a + off[0];
      const T* pb = b + off[1];
      O* po = out + pos;
      // Specialised inner loops so the compiler can vectorise the common cases.
      if (is[0] == 1 && is[1] == 1) {
        for (int64_t i = 0; i < len; i++) po[i] = apply<OP, T, O>(pa[i], pb[i]);
      } else if (is[0] == 1) {
        const T vb = pb[0];
        for (int64_t i = 0; i < len; i++) po[i] = apply<OP, T, O>(pa[i], vb);
      } else if (is[1] == 1) {
        const T va = pa[0];
        for (int64_t i = 0; i < len; i++) po[i] = apply<OP, T, O>(va, pb[i]);
      } else {
        const O v = apply<OP, T, O>(pa[0], pb[0]);
        for (int64_t i = 0; i < len; i++) po[i] = v;
      }
    });
  });
}

template <int OP>
void dispatch(int dtype, const void* a, const void* b, void* out, const BcastPlan& plan) {
  if (dtype == F32) {
    if (is_cmp(OP)) run<OP, float, int32_t>((const float*)a, (const float*)b, (int32_t*)out, plan);
    else run<OP, float, float>((const float*)a, (const float*)b, (float*)out, plan);
  } else {
    run<OP, int32_t, int32_t>((const int32_t*)a, (const int32_t*)b, (int32_t*)out, plan);
  }
}

template <int... OPS>
void dispatch_op(int op, int dtype, const void* a, const void* b, void* out, const BcastPlan& plan,
                 std::integer_sequence<int, OPS...>) {
  ((op == OPS ? dispatch<OPS>(dtype, a, b, out, plan) : void()), ...);
}

}  // namespace

void binary(void* out, const void* a, const void* b, const BcastPlan& plan, int op, int dtype) {
  dispatch_op(op, dtype, a, b, out, plan, std::make_integer_sequence<int, kCount>{});
}

void add_n(void* out, const void* const* xs, int64_t count, int64_t n, int dtype) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    if (dtype == F32) {
      float* o = (float*)out;
      for (int64_t i = b; i < e; i++) o[i] = ((const float*)xs[0])[i];
      for (int64_t k = 1; k < count; k++) {
        const float* p = (const float*)xs[k];
        for (int64_t i = b; i < e; i++) o[i] += p[i];
      }
    } else {
      uint32_t* o = (uint32_t*)out;
      for (int64_t i = b; i < e; i++) o[i] = ((const uint32_t*)xs[0])[i];
      for (int64_t k = 1; k < count; k++) {
        const uint32_t* p = (const uint32_t*)xs[k];
        for (int64_t i = b; i < e; i++) o[i] += p[i];
      }
    }
  });
}

void select(void* out_, const int32_t* c, const void* t_, const void* e_, const BcastPlan& plan) {
  int32_t* out = (int32_t*)out_;
  const int32_t* t = (const int32_t*)t_;
  const int32_t* e = (const int32_t*)e_;
  parallel_for(plan.total, 16384, [&](int64_t b, int64_t en) {
    bcast_walk<3>(plan, b, en, [&](int64_t pos, int64_t len, const int64_t* off, const int64_t* is) {
      for (int64_t i = 0; i < len; i++)
        out[pos + i] = c[off[0] + i * is[0]] ? t[off[1] + i * is[1]] : e[off[2] + i * is[2]];
    });
  });
}

}  // namespace vlmix
