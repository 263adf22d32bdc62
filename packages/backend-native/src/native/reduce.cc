// Reductions over a contiguous axis block: x viewed as [outer, R, inner] -> [outer, inner].
// Each output is accumulated in double in index order, so results never depend on threading.
#include "common.h"
#include "simd.h"

namespace vlmix {
namespace {

enum RedOp { kSum, kMean, kMax, kMin, kProd, kAll, kAny, kArgMax, kArgMin, kNumRed };
const char* kRedNames[] = {"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin"};

template <class T>
void reduce_t(int op, const T* x, void* out, int64_t outer, int64_t R, int64_t inner) {
  parallel_for(outer * inner, inner == 1 ? std::max<int64_t>(1, 8192 / std::max<int64_t>(R, 1)) : 256,
               [&](int64_t b, int64_t e) {
    std::vector<double> acc;
    std::vector<int64_t> arg;
    for (int64_t o = b; o < e;) {
      int64_t oi = o / inner, j0 = o % inner, j1 = std::min(inner, j0 + (e - o));
      int64_t w = j1 - j0;
      const T* base = x + oi * R * inner + j0;
      acc.assign(w, 0.0);
      arg.assign(w, 0);
      if (op == kSum || op == kMean) {
        for (int64_t r = 0; r < R; r++) {
          const T* row = base + r * inner;
          for (int64_t j = 0; j < w; j++) acc[j] += row[j];
        }
        if (op == kMean) for (int64_t j = 0; j < w; j++) acc[j] = (float)acc[j] / (float)R;
      } else if (op == kProd) {
        for (int64_t j = 0; j < w; j++) acc[j] = 1.0;
        for (int64_t r = 0; r < R; r++)
          for (int64_t j = 0; j < w; j++) acc[j] *= base[r * inner + j];
      } else if (op == kAll || op == kAny) {
        for (int64_t j = 0; j < w; j++) acc[j] = op == kAll ? 1 : 0;
        for (int64_t r = 0; r < R; r++)
          for (int64_t j = 0; j < w; j++) {
            bool v = base[r * inner + j] != 0;
            acc[j] = op == kAll ? (acc[j] != 0 && v) : (acc[j] != 0 || v);
          }
      } else if (R > 0) {
        bool mx = op == kMax || op == kArgMax;
        bool isarg = op == kArgMax || op == kArgMin;
        for (int64_t j = 0; j < w; j++) acc[j] = base[j];
        for (int64_t r = 1; r < R; r++) {
          const T* row = base + r * inner;
          for (int64_t j = 0; j < w; j++) {
            double v = row[j];
            bool better = mx ? v > acc[j] : v < acc[j];
            if (!isarg && std::isnan(v)) better = true;  // tfjs max/min propagate NaN
            if (better) { acc[j] = v; arg[j] = r; }
          }
        }
      } else {
        // Empty reduction: identity like tfjs (-inf for max, +inf for min).
        for (int64_t j = 0; j < w; j++) acc[j] = op == kMax ? -INFINITY : INFINITY;
      }
      if (op == kArgMax || op == kArgMin) {
        for (int64_t j = 0; j < w; j++) ((int32_t*)out)[o + j] = (int32_t)arg[j];
      } else if (std::is_same<T, float>::value) {
        for (int64_t j = 0; j < w; j++) ((float*)out)[o + j] = (float)acc[j];
      } else {
        for (int64_t j = 0; j < w; j++) ((int32_t*)out)[o + j] = to_i32(acc[j]);
      }
      o += w;
    }
  });
}

// reduce(op, dtype, x, outer, R, inner) -> id
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  int op = (int)arg_i(info, 0), dtype = (int)arg_i(info, 1);
  if (op < 0 || op >= kNumRed) throw std::runtime_error("bad reduce op");
  const void* x = store_ptr(arg_id(info, 2));
  int64_t outer = arg_i(info, 3), R = arg_i(info, 4), inner = arg_i(info, 5);
  int32_t id = store_alloc(outer * inner);
  if (outer * inner == 0) return ret_id(info, id);
  if (dtype == F32) reduce_t<float>(op, (const float*)x, store_ptr(id), outer, R, inner);
  else reduce_t<int32_t>(op, (const int32_t*)x, store_ptr(id), outer, R, inner);
  return ret_id(info, id);
}

// softmax(x, rows, cols, log) -> id over the last axis.
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const float* x = arg_f32(info, 0);
  int64_t rows = arg_i(info, 1), cols = arg_i(info, 2);
  bool lg = arg_b(info, 3);
  int32_t id = store_alloc(rows * cols);
  float* y = (float*)store_ptr(id);
  const SimdOps& sv = simd();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float m = sv.row_max(xr, cols);
      double s = sv.exp_shift_sum(xr, yr, cols, m);
      if (lg) sv.sub2(xr, yr, cols, m, (float)std::log(s));
      else sv.scale(yr, cols, (float)(1.0 / s));
    }
  });
  return ret_id(info, id);
}

}  // namespace

void init_reduce(Napi::Env env, Napi::Object exports) {
  Napi::Object codes = Napi::Object::New(env);
  for (int i = 0; i < kNumRed; i++) codes.Set(kRedNames[i], i);
  exports.Set("reduceOps", codes);
  def(env, exports, "reduce", Reduce);
  def(env, exports, "softmax", Softmax);
}

}  // namespace vlmix
