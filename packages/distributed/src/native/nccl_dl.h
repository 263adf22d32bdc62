// NCCL loaded at run time (like cuBLAS in the CUDA addon): nothing here links against NCCL or CUDA,
// so the MPI addon builds and loads on machines without either. Types are the ABI of nccl.h
// (NCCL 2.x); only the entry points a data-parallel all-reduce of device buffers needs.
// Status: symbol resolution and version decoding are tested here against a stand-in library; no
// call has run on a GPU (this machine has none).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vlmix_mpi {

using ncclComm_t = struct ncclComm*;
using cudaStream_t = struct CUstream_st*;
constexpr int kNcclUniqueIdBytes = 128;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};
using ncclResult_t = int;  // 0 = ncclSuccess
enum ncclDataType_t { ncclInt32 = 2, ncclFloat32 = 7 };
enum ncclRedOp_t { ncclSum = 0, ncclAvg = 4 };

struct NcclApi {
  void* handle = nullptr;
  std::string path;
  int version = 0;  // as ncclGetVersion reports it
  ncclResult_t (*GetVersion)(int*) = nullptr;
  const char* (*GetErrorString)(ncclResult_t) = nullptr;
  ncclResult_t (*GetUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*CommDestroy)(ncclComm_t) = nullptr;
  ncclResult_t (*CommAbort)(ncclComm_t) = nullptr;
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*) = nullptr;
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*GroupStart)() = nullptr;
  ncclResult_t (*GroupEnd)() = nullptr;
};

// Tries each candidate (a file path or a soname for the loader's search) in order. On success returns
// the resolved API (kept loaded for the life of the process); on failure nullptr and *reason says, for
// each candidate, why it was rejected (not found, or which symbol is missing).
const NcclApi* load_nccl(const std::vector<std::string>& candidates, std::string* reason);

// "2.21.5" from ncclGetVersion's integer (major*10000 + minor*100 + patch since 2.9, major*1000 +
// minor*100 + patch before).
std::string nccl_version_string(int code);

}  // namespace vlmix_mpi
