#include "nccl_dl.h"

#include <dlfcn.h>

#include <map>
#include <memory>

namespace vlmix_mpi {

std::string nccl_version_string(int code) {
  int major, minor, patch;
  if (code >= 10000) {
    major = code / 10000, minor = code / 100 % 100, patch = code % 100;
  } else {
    major = code / 1000, minor = code / 100 % 10, patch = code % 100;
  }
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

namespace {

template <typename F>
bool resolve(void* h, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(h, name));
  if (!*out && missing->empty()) *missing = name;
  return *out != nullptr;
}

// One loaded API per path, kept for the process's lifetime (handles are never closed: NCCL keeps
// threads alive).
std::map<std::string, std::unique_ptr<NcclApi>>& loaded() {
  static std::map<std::string, std::unique_ptr<NcclApi>> m;
  return m;
}

}  // namespace

const NcclApi* load_nccl(const std::vector<std::string>& candidates, std::string* reason) {
  std::string why;
  for (const std::string& path : candidates) {
    auto it = loaded().find(path);
    if (it != loaded().end()) return it->second.get();
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      why += (why.empty() ? "" : "; ") + path + ": " + (e ? e : "not found");
      continue;
    }
    auto api = std::make_unique<NcclApi>();
    std::string missing;
    resolve(h, "ncclGetVersion", &api->GetVersion, &missing);
    resolve(h, "ncclGetErrorString", &api->GetErrorString, &missing);
    resolve(h, "ncclGetUniqueId", &api->GetUniqueId, &missing);
    resolve(h, "ncclCommInitRank", &api->CommInitRank, &missing);
    resolve(h, "ncclCommDestroy", &api->CommDestroy, &missing);
    resolve(h, "ncclCommAbort", &api->CommAbort, &missing);
    resolve(h, "ncclCommGetAsyncError", &api->CommGetAsyncError, &missing);
    resolve(h, "ncclAllReduce", &api->AllReduce, &missing);
    resolve(h, "ncclBroadcast", &api->Broadcast, &missing);
    resolve(h, "ncclGroupStart", &api->GroupStart, &missing);
    resolve(h, "ncclGroupEnd", &api->GroupEnd, &missing);
    if (!missing.empty()) {
      why += (why.empty() ? "" : "; ") + path + ": missing symbol " + missing + " (not an NCCL 2.x library?)";
      dlclose(h);
      continue;
    }
    int v = 0;
    if (api->GetVersion(&v) != 0) {
      why += (why.empty() ? "" : "; ") + path + ": ncclGetVersion failed";
      dlclose(h);
      continue;
    }
    api->handle = h;
    api->path = path;
    api->version = v;
    return (loaded()[path] = std::move(api)).get();
  }
  *reason = why.empty() ? "no candidate library given" : why;
  return nullptr;
}

}  // namespace vlmix_mpi
