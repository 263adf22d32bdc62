// Elementwise unary ops and casts. Formulas follow tfjs-backend-cpu so parity is tight.
#include "common.h"
#include "kernels.h"
#include "op_codes.h"
#include "simd.h"

namespace vlmix {
namespace {

using namespace opcodes::un;

inline bool is_pred(int op) { return op >= kIsNan; }

// tfjs-backend-cpu's erf approximation (Abramowitz & Stegun 7.1.26), for bitwise-close parity.
inline double erf_tfjs(double x) {
  const double p = 0.3275911, a1 = 0.254829592, a2 = -0.284496736, a3 = 1.421413741,
               a4 = -1.453152027, a5 = 1.061405429;
  double s = x < 0 ? -1.0 : 1.0;
  double v = std::fabs(x);
  double t = 1.0 / (1.0 + p * v);
  return s * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * std::exp(-v * v));
}

template <int OP, class T>
inline T uop(T x, T alpha, T beta) {
  using std::exp;
  if constexpr (OP == kNeg) return -x;
  if constexpr (OP == kExp) return exp(x);
  if constexpr (OP == kLog) return std::log(x);
  if constexpr (OP == kLog1p) return std::log1p(x);
  if constexpr (OP == kSqrt) return std::sqrt(x);
  if constexpr (OP == kRsqrt) return T(1) / std::sqrt(x);
  if constexpr (OP == kSquare) return x * x;
  if constexpr (OP == kAbs) return std::fabs(x);
  if constexpr (OP == kTanh) return std::tanh(x);
  if constexpr (OP == kSigmoid) return T(1) / (T(1) + exp(-x));
  if constexpr (OP == kRelu) return x < 0 ? T(0) : x;
  if constexpr (OP == kErf) return static_cast<T>(erf_tfjs(x));
  if constexpr (OP == kSin) return std::sin(x);
  if constexpr (OP == kCos) return std::cos(x);
  if constexpr (OP == kSign) return x > 0 ? T(1) : (x < 0 ? T(-1) : (x == 0 ? T(0) : x));
  if constexpr (OP == kFloor) return std::floor(x);
  if constexpr (OP == kCeil) return std::ceil(x);
  if constexpr (OP == kRound) return std::nearbyint(x);  // half to even, like tfjs
  if constexpr (OP == kReciprocal) return T(1) / x;
  if constexpr (OP == kStep) return std::isnan(x) ? x : (x > 0 ? T(1) : alpha);
  if constexpr (OP == kClip) return x > beta ? beta : (x < alpha ? alpha : x);
  if constexpr (OP == kElu) return x >= 0 ? x : exp(x) - T(1);
  if constexpr (OP == kLeakyRelu) return x < 0 ? alpha * x : x;
  if constexpr (OP == kSoftplus) {
    const double th = std::log(1.1920928955078125e-7) + 2.0;
    if (x < th) return exp(x);
    if (x > -th) return x;
    return std::log(T(1) + exp(x));
  }
  if constexpr (OP == kRelu6) return x < 0 ? T(0) : (x > 6 ? T(6) : x);
  if constexpr (OP == kSelu) {
    const T sa = T(1.7580993408473768599402175208123), sc = T(1.0507009873554804934193349852946);
    return x >= 0 ? sc * x : sa * (exp(x) - T(1));
  }
  if constexpr (OP == kExpm1) return std::expm1(x);
  if constexpr (OP == kTan) return std::tan(x);
  if constexpr (OP == kAtan) return std::atan(x);
  if constexpr (OP == kAsin) return std::asin(x);
  if constexpr (OP == kAcos) return std::acos(x);
  if constexpr (OP == kSinh) return std::sinh(x);
  if constexpr (OP == kCosh) return std::cosh(x);
  if constexpr (OP == kAsinh) return std::asinh(x);
  if constexpr (OP == kAcosh) return std::acosh(x);
  if constexpr (OP == kAtanh) return std::atanh(x);
  if constexpr (OP == kIsNan) return std::isnan(x) ? 1 : 0;
  if constexpr (OP == kIsInf) return std::isinf(x) ? 1 : 0;
  if constexpr (OP == kIsFinite) return std::isfinite(x) ? 1 : 0;
  if constexpr (OP == kLogicalNot) return x == 0 ? 1 : 0;
  return 0;
}

template <int OP>
void run(int dtype, const void* x, void* out, int64_t n, double alpha, double beta) {
  if (dtype == F32 && (OP == kExp || OP == kTanh || OP == kSigmoid)) {
    // Vectorised float polynomials (simd.h), within the parity tolerances.
    const SimdOps& s = simd();
    auto f = OP == kExp ? s.exp : OP == kTanh ? s.tanh : s.sigmoid;
    const float* px = (const float*)x;
    float* o = (float*)out;
    parallel_elems(n, 16384, [&](int64_t b, int64_t e) { f(px + b, o + b, e - b); });
    return;
  }
  parallel_elems(n, 16384, [&](int64_t b, int64_t e) {
    if (dtype == F32) {
      const float* px = (const float*)x;
      const float fa = (float)alpha, fb = (float)beta;
      if (is_pred(OP)) {
        int32_t* o = (int32_t*)out;
        for (int64_t i = b; i < e; i++) o[i] = (int32_t)uop<OP, float>(px[i], fa, fb);
      } else {
        float* o = (float*)out;
        for (int64_t i = b; i < e; i++) o[i] = uop<OP, float>(px[i], fa, fb);
      }
    } else {
      // int32 path: compute like JS (double) and store like an Int32Array.
      const int32_t* px = (const int32_t*)x;
      int32_t* o = (int32_t*)out;
      for (int64_t i = b; i < e; i++) o[i] = to_i32(uop<OP, double>((double)px[i], alpha, beta));
    }
  });
}

template <int... OPS>
void dispatch(int op, int dtype, const void* x, void* out, int64_t n, double a, double b,
              std::integer_sequence<int, OPS...>) {
  ((op == OPS ? run<OPS>(dtype, x, out, n, a, b) : void()), ...);
}

}  // namespace

void unary(void* out, const void* x, int64_t n, int op, int dtype, double alpha, double beta) {
  dispatch(op, dtype, x, out, n, alpha, beta, std::make_integer_sequence<int, kCount>{});
}

void cast(void* out, const void* x, int64_t n, int from, int to, bool to_bool) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e) {
    if (from == F32) {
      const float* p = (const float*)x;
      if (to_bool) for (int64_t i = b; i < e; i++) ((int32_t*)out)[i] = p[i] != 0;
      else if (to == I32) for (int64_t i = b; i < e; i++) ((int32_t*)out)[i] = to_i32(p[i]);
      else std::memcpy((float*)out + b, p + b, (e - b) * 4);
    } else {
      const int32_t* p = (const int32_t*)x;
      if (to_bool) for (int64_t i = b; i < e; i++) ((int32_t*)out)[i] = p[i] != 0;
      else if (to == F32) for (int64_t i = b; i < e; i++) ((float*)out)[i] = (float)p[i];
      else std::memcpy((int32_t*)out + b, p + b, (e - b) * 4);
    }
  });
}

}  // namespace vlmix
