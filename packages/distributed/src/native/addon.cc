// Node-API binding of @vlmix/distributed over MPI (C API only). Every collective is posted as a
// non-blocking call and driven to completion by a polling wait with a deadline: a rank that died or
// hangs turns into a JS error naming the operation instead of a process blocked forever. Errors of
// the MPI library come back as return codes (MPI_ERRORS_RETURN on our communicator), never as an
// abort inside the library. Call from the main thread only (MPI_THREAD_FUNNELED).
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "collectives.h"
#include "nccl_dl.h"

namespace vlmix_mpi {
namespace {

MPI_Comm g_comm = MPI_COMM_NULL;   // a duplicate of MPI_COMM_WORLD: our traffic never mixes with a user's
MPI_Comm g_comm2 = MPI_COMM_NULL;  // second phases of all-reduces (see drive)
bool g_finalized = false;
std::string g_broken;  // non-empty once a collective timed out or failed: the communicator is unusable

// A posted all-reduce. The queue holds every one not finished, in start order: an operation's
// second phase is posted only after all earlier ones posted theirs, so the collectives on each
// communicator come in the same order on every rank whatever order JS tests or waits them in.
struct Inflight {
  std::unique_ptr<AllReduceOp> op;
  Napi::ObjectReference keep;  // the Float32Array MPI reads and writes
  std::string what;
  double timeout_ms = 0;
  bool done = false;
};
// Never destroyed: at process exit the JS references it may hold are already gone.
std::deque<std::shared_ptr<Inflight>>& g_inflight = *new std::deque<std::shared_ptr<Inflight>>();

// Collective kinds, checked across ranks before each call (see check_agreement).
enum Kind { kAllReduceF32 = 1, kAllReduceF32Det = 2, kBroadcast = 3, kAllGather = 4 };
const char* kind_name(long long k) {
  switch (k) {
    case kAllReduceF32: return "allReduce (library order)";
    case kAllReduceF32Det: return "allReduce (deterministic)";
    case kBroadcast: return "broadcast";
    case kAllGather: return "allGather";
    default: return "?";
  }
}

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void check_usable(Napi::Env env, const char* what) {
  if (g_comm == MPI_COMM_NULL || g_finalized) throw make_error(env, "VLMIX_MPI_NOT_INITIALIZED", std::string(what) + ": MPI is not initialised (call init first) or already finalized");
  if (!g_broken.empty()) throw make_error(env, "VLMIX_MPI_BROKEN", std::string(what) + ": the communicator is unusable after an earlier failure (" + g_broken + ")");
}

void fail_mpi(Napi::Env env, const std::string& what, int rc) {
  g_broken = what + ": " + mpi_error_string(rc);
  throw make_error(env, "VLMIX_MPI_ERROR", g_broken);
}

// Polls `req` until it completes or `timeout_ms` (> 0) passes. MPI_Test also drives the library's
// progress. Spin first (small messages finish in microseconds), then yield, then sleep briefly so an
// oversubscribed rank does not steal its peer's core while it waits.
void wait_request(Napi::Env env, MPI_Request* req, double timeout_ms, const std::string& what) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  for (long spins = 0;; spins++) {
    int flag = 0;
    int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
    if (flag) return;
    if (spins < 256) continue;
    const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (timeout_ms > 0 && ms > timeout_ms) {
      g_broken = what + " timed out";
      throw make_error(env, "VLMIX_MPI_TIMEOUT", what + ": no completion after " + std::to_string((long long)ms) + " ms");
    }
    if (ms < 5) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(ms < 1000 ? 20 : 200));
  }
}

// Every rank must call the same collective with the same element count (and root). A mismatch would
// make MPI truncate, hang or corrupt memory, so one 48-byte all-reduce (max of +x and -x = max and
// min across ranks) checks it first; all ranks see the same result, so all of them fail together.
void check_agreement(Napi::Env env, const std::string& what, double timeout_ms, long long kind, long long count, long long root) {
  long long v[6] = {kind, -kind, count, -count, root, -root};
  MPI_Request req;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, v, 6, MPI_LONG_LONG, MPI_MAX, g_comm, &req);
  if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
  wait_request(env, &req, timeout_ms, what + " (argument check)");
  if (v[0] != -v[1]) {
    throw make_error(env, "VLMIX_MPI_MISMATCH", what + ": ranks called different collectives at the same point (this rank: " + kind_name(kind) +
                     "; others include " + kind_name(v[0] == kind ? -v[1] : v[0]) + ")");
  }
  if (v[2] != -v[3]) {
    throw make_error(env, "VLMIX_MPI_MISMATCH", what + ": ranks passed different sizes (this rank " + std::to_string(count) +
                     ", across ranks min " + std::to_string(-v[3]) + ", max " + std::to_string(v[2]) + ")");
  }
  if (v[4] != -v[5]) {
    throw make_error(env, "VLMIX_MPI_MISMATCH", what + ": ranks named different roots (this rank " + std::to_string(root) +
                     ", across ranks min " + std::to_string(-v[5]) + ", max " + std::to_string(v[4]) + ")");
  }
}

struct Bytes {
  void* data;
  size_t bytes;
};

Bytes typed_bytes(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

Napi::Float32Array float32_arg(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a Float32Array");
  }
  return v.As<Napi::Float32Array>();
}

// ---- init / finalize -------------------------------------------------------------------------

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    // Open MPI's plugins (mca_*.so) resolve libmpi's symbols globally, but Node dlopens this addon
    // RTLD_LOCAL: promote the already-loaded libmpi to global scope first (as mpi4py does).
    for (const char* so : {"libmpi.so.40", "libmpi.so.12", "libmpi.so"}) {
      if (dlopen(so, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) break;
    }
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) throw make_error(env, "VLMIX_MPI_ERROR", "MPI_Init_thread failed: " + mpi_error_string(rc));
  }
  if (g_comm == MPI_COMM_NULL) {
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
    if (rc != MPI_SUCCESS) throw make_error(env, "VLMIX_MPI_ERROR", "MPI_Comm_dup failed: " + mpi_error_string(rc));
    MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
    rc = MPI_Comm_dup(g_comm, &g_comm2);
    if (rc != MPI_SUCCESS) throw make_error(env, "VLMIX_MPI_ERROR", "MPI_Comm_dup failed: " + mpi_error_string(rc));
  }
  int rank = 0, size = 1, provided = 0, len = 0;
  MPI_Comm_rank(g_comm, &rank);
  MPI_Comm_size(g_comm, &size);
  MPI_Query_thread(&provided);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  MPI_Get_library_version(lib, &len);
  std::string library(lib, len);
  while (!library.empty() && (library.back() == '\n' || library.back() == '\0' || library.back() == ' ')) library.pop_back();
  char host[MPI_MAX_PROCESSOR_NAME];
  MPI_Get_processor_name(host, &len);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", rank);
  o.Set("size", size);
  o.Set("library", library.substr(0, library.find(',')));
  o.Set("host", std::string(host, len));
  o.Set("threadFunneled", provided >= MPI_THREAD_FUNNELED);
  return o;
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  // After a timeout (or with an all-reduce never waited for) a collective is still posted:
  // MPI_Finalize would wait for it forever.
  if (g_comm == MPI_COMM_NULL || g_finalized || !g_broken.empty() || !g_inflight.empty()) return Napi::Boolean::New(info.Env(), false);
  MPI_Comm_free(&g_comm2);
  MPI_Comm_free(&g_comm);
  g_comm = g_comm2 = MPI_COMM_NULL;
  MPI_Finalize();
  g_finalized = true;
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  MPI_Abort(MPI_COMM_WORLD, code);
  return info.Env().Undefined();
}

Napi::Value State(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  int inited = 0;
  MPI_Initialized(&inited);
  o.Set("initialized", inited != 0 && g_comm != MPI_COMM_NULL);
  o.Set("finalized", g_finalized);
  o.Set("broken", g_broken);
  return o;
}

// ---- collectives -----------------------------------------------------------------------------


// Advances `e` once its current request completed (blocking: waits for it). False: not yet.
bool step_one(Napi::Env env, Inflight& e, bool block, double timeout_ms) {
  if (block) {
    wait_request(env, e.op->request(), timeout_ms, e.what);
  } else {
    int flag = 0;
    int rc = MPI_Test(e.op->request(), &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) fail_mpi(env, e.what, rc);
    if (!flag) return false;
  }
  bool done = false;
  int rc = e.op->advance(&done);
  if (rc != MPI_SUCCESS) fail_mpi(env, e.what, rc);
  if (done) {
    e.done = true;
    e.keep.Reset();
  }
  return true;
}

// Drives the queue up to `target`: earlier operations until their last phase is posted, `target`
// until done. Non-blocking mode stops at the first request not yet complete.
bool drive(Napi::Env env, const std::shared_ptr<Inflight>& target, bool block, double timeout_ms) {
  if (target->done) return true;
  for (size_t i = 0; i < g_inflight.size(); i++) {
    Inflight& e = *g_inflight[i];
    const bool is_target = g_inflight[i] == target;
    while (!e.done && (is_target || !e.op->last_phase_posted())) {
      if (!step_one(env, e, block, timeout_ms)) return false;
    }
    if (is_target) break;
  }
  while (!g_inflight.empty() && g_inflight.front()->done) g_inflight.pop_front();
  return target->done;
}

class PendingAllReduce : public Napi::ObjectWrap<PendingAllReduce> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PendingAllReduce", {InstanceMethod<&PendingAllReduce::Test>("test"), InstanceMethod<&PendingAllReduce::Wait>("wait")});
  }
  explicit PendingAllReduce(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PendingAllReduce>(info) {}
  // Collected before it finished: the queue still owns the operation and its buffer, and finishes
  // it when a later one is driven.

  void Start(Napi::Env env, Napi::Float32Array buf, float divisor, bool det, const std::string& what, double timeout_ms) {
    f_ = std::make_shared<Inflight>();
    f_->what = what;
    f_->timeout_ms = timeout_ms;
    f_->keep = Napi::Persistent(buf.As<Napi::Object>());
    f_->op = std::make_unique<AllReduceOp>(g_comm, g_comm2, buf.Data(), (int64_t)buf.ElementLength(), divisor, det);
    int rc = f_->op->start();
    if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
    g_inflight.push_back(f_);
  }

 private:
  Napi::Value Test(const Napi::CallbackInfo& info) {
    if (!f_->done) check_usable(info.Env(), f_->what.c_str());
    return Napi::Boolean::New(info.Env(), drive(info.Env(), f_, false, 0));
  }
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    if (!f_->done) check_usable(info.Env(), f_->what.c_str());
    double t = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : f_->timeout_ms;
    drive(info.Env(), f_, true, t);
    return info.Env().Undefined();
  }

  std::shared_ptr<Inflight> f_;
};

Napi::FunctionReference* g_pending_ctor = nullptr;

// allReduceStart(buf: Float32Array, divisor, deterministic, check, timeoutMs, what) -> PendingAllReduce
Napi::Value AllReduceStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string what = info[5].As<Napi::String>().Utf8Value();
  check_usable(env, what.c_str());
  Napi::Float32Array buf = float32_arg(info[0], what.c_str());
  float divisor = info[1].As<Napi::Number>().FloatValue();
  bool det = info[2].As<Napi::Boolean>().Value();
  bool check = info[3].As<Napi::Boolean>().Value();
  double timeout_ms = info[4].As<Napi::Number>().DoubleValue();
  if (buf.ElementLength() > (size_t)INT_MAX) throw make_error(env, "VLMIX_MPI_ARG", what + ": at most 2^31-1 elements per call, got " + std::to_string(buf.ElementLength()) + " (split it into buckets)");
  if (check) check_agreement(env, what, timeout_ms, det ? kAllReduceF32Det : kAllReduceF32, (long long)buf.ElementLength(), 0);
  Napi::Object obj = g_pending_ctor->New({});
  PendingAllReduce::Unwrap(obj)->Start(env, buf, divisor, det, what, timeout_ms);
  return obj;
}

// broadcast(buf: TypedArray, root, check, timeoutMs, what): in place, as bytes.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string what = info[4].As<Napi::String>().Utf8Value();
  check_usable(env, what.c_str());
  Bytes b = typed_bytes(info[0], what.c_str());
  int root = info[1].As<Napi::Number>().Int32Value();
  bool check = info[2].As<Napi::Boolean>().Value();
  double timeout_ms = info[3].As<Napi::Number>().DoubleValue();
  if (b.bytes > (size_t)INT_MAX) throw make_error(env, "VLMIX_MPI_ARG", what + ": at most 2^31-1 bytes per call");
  if (check) check_agreement(env, what, timeout_ms, kBroadcast, (long long)b.bytes, root);
  MPI_Request req;
  int rc = MPI_Ibcast(b.data, (int)b.bytes, MPI_BYTE, root, g_comm, &req);
  if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
  wait_request(env, &req, timeout_ms, what);
  return env.Undefined();
}

// allGather(send: TypedArray, recv: TypedArray of size * send bytes, check, timeoutMs, what)
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string what = info[4].As<Napi::String>().Utf8Value();
  check_usable(env, what.c_str());
  Bytes s = typed_bytes(info[0], what.c_str());
  Bytes r = typed_bytes(info[1], what.c_str());
  bool check = info[2].As<Napi::Boolean>().Value();
  double timeout_ms = info[3].As<Napi::Number>().DoubleValue();
  int size = 1;
  MPI_Comm_size(g_comm, &size);
  if (s.bytes > (size_t)INT_MAX / (size_t)size) throw make_error(env, "VLMIX_MPI_ARG", what + ": message too large");
  if (r.bytes != s.bytes * (size_t)size) throw make_error(env, "VLMIX_MPI_ARG", what + ": receive buffer has " + std::to_string(r.bytes) + " bytes, expected " + std::to_string(s.bytes * size));
  if (check) check_agreement(env, what, timeout_ms, kAllGather, (long long)s.bytes, 0);
  MPI_Request req;
  int rc = MPI_Iallgather(s.data, (int)s.bytes, MPI_BYTE, r.data, (int)s.bytes, MPI_BYTE, g_comm, &req);
  if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
  wait_request(env, &req, timeout_ms, what);
  return env.Undefined();
}

// barrier(timeoutMs, what)
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string what = info[1].As<Napi::String>().Utf8Value();
  check_usable(env, what.c_str());
  MPI_Request req;
  int rc = MPI_Ibarrier(g_comm, &req);
  if (rc != MPI_SUCCESS) fail_mpi(env, what, rc);
  wait_request(env, &req, info[0].As<Napi::Number>().DoubleValue(), what);
  return env.Undefined();
}

// ---- NCCL (dlopen'ed) ------------------------------------------------------------------------

// ncclProbe(candidates: string[]) -> { available, reason, path?, version? }
Napi::Value NcclProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> cands;
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) cands.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  std::string reason;
  const NcclApi* api = load_nccl(cands, &reason);
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", api != nullptr);
  if (api) {
    o.Set("path", api->path);
    o.Set("version", nccl_version_string(api->version));
    o.Set("reason", "NCCL " + nccl_version_string(api->version) + " loaded from " + api->path);
  } else {
    o.Set("reason", reason);
  }
  return o;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  g_pending_ctor = new Napi::FunctionReference(Napi::Persistent(PendingAllReduce::Define(env)));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("state", Napi::Function::New(env, State));
  exports.Set("allReduceStart", Napi::Function::New(env, AllReduceStart));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("allGather", Napi::Function::New(env, AllGather));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("ncclProbe", Napi::Function::New(env, NcclProbe));
  return exports;
}

}  // namespace
}  // namespace vlmix_mpi

static Napi::Object InitVlmixMpi(Napi::Env env, Napi::Object exports) { return vlmix_mpi::InitModule(env, exports); }

NODE_API_MODULE(vlmix_mpi, InitVlmixMpi)
