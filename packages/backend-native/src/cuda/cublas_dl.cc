// dlopen'ed cuBLAS (see cublas_dl.h).
#include "cublas_dl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace vlmix_cuda {
namespace {
CublasApi g_api;
bool g_ok = false;
std::string g_why, g_lib;
std::once_flag g_once;

template <class F>
bool sym(void* h, const char* name, F& out, std::string& why) {
  out = reinterpret_cast<F>(dlsym(h, name));
  if (!out) why = std::string("symbol ") + name + " missing in " + g_lib;
  return out != nullptr;
}

void load() {
  std::string tried;
  void* h = nullptr;
  const char* env = std::getenv("VLMIX_CUBLAS_PATH");
  const char* names[] = {env && *env ? env : nullptr, "libcublas.so.13", "libcublas.so.12"};
  for (const char* n : names) {
    if (!n) continue;
    h = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (h) { g_lib = n; break; }
    const char* e = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + n + ": " + (e ? e : "not found");
  }
  if (!h) {
    g_why = "cuBLAS not found (" + tried + "); set VLMIX_CUBLAS_PATH or LD_LIBRARY_PATH";
    return;
  }
  std::string why;
  g_ok = sym(h, "cublasCreate_v2", g_api.create, why) && sym(h, "cublasDestroy_v2", g_api.destroy, why) &&
         sym(h, "cublasSetStream_v2", g_api.set_stream, why) && sym(h, "cublasSetMathMode", g_api.set_math_mode, why) &&
         sym(h, "cublasGetVersion_v2", g_api.get_version, why) &&
         sym(h, "cublasSgemmStridedBatched", g_api.sgemm_strided_batched, why);
  if (!g_ok) g_why = why;
}
}  // namespace

const CublasApi* cublas_api(std::string* why) {
  std::call_once(g_once, load);
  if (!g_ok && why) *why = g_why;
  return g_ok ? &g_api : nullptr;
}

const std::string& cublas_library() { return g_lib; }

}  // namespace vlmix_cuda
