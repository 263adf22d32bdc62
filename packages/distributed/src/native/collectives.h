// Collectives of @vlmix/distributed as resumable operations over non-blocking MPI calls, so that
// every wait can have a deadline (the watchdog) and a bucket can be in flight while JS packs the next.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vlmix_mpi {

// Start of chunk c of nc over [0, n): floor(n * c / nc) without overflow (same split on every rank).
inline int64_t chunk_begin(int64_t n, int64_t c, int64_t nc) { return n / nc * c + n % nc * c / nc; }

// out[j] = (parts[0][j] + parts[1][j] + ... + parts[p-1][j]) / divisor, summed left to right in rank
// order in float32, exactly what a single process accumulating the same p gradients in a loop
// computes. divisor 1 skips the division.
inline void sum_in_rank_order(const float* parts, int64_t count, int p, float divisor, float* out) {
  for (int64_t j = 0; j < count; j++) out[j] = parts[j];
  for (int r = 1; r < p; r++) {
    const float* src = parts + (int64_t)r * count;
    for (int64_t j = 0; j < count; j++) out[j] += src[j];
  }
  if (divisor != 1.0f) for (int64_t j = 0; j < count; j++) out[j] = out[j] / divisor;
}

// An all-reduce of float32 in place, in phases:
//   deterministic: Ialltoallv gives each rank its chunk from every rank -> sum in rank order ->
//                  Iallgatherv of the reduced chunks (reduce-scatter + all-gather, ring bandwidth);
//                  the result is bit-identical on every rank and equal to a sequential sum.
//   otherwise:     MPI_Iallreduce (the library's own algorithm; the order of the sum is its choice,
//                  and for more than 2 ranks ranks may even differ in the last bit) -> divide.
class AllReduceOp {
 public:
  // `comm` carries the first phase (posted at start, in the caller's order), `comm2` the all-gather
  // phase (posted later, in start order; see last_phase_posted).
  AllReduceOp(MPI_Comm comm, MPI_Comm comm2, float* buf, int64_t n, float divisor, bool deterministic);
  // Posts the first phase. Returns an MPI error code.
  int start();
  // Advances after the current request completed; sets *done when the result is in place.
  int advance(bool* done);
  MPI_Request* request() { return &req_; }
  // Whether the last phase is posted. Ranks must post collectives on a communicator in the same
  // order, so a later operation may post its second phase only after every earlier one posted its own.
  bool last_phase_posted() const { return !det_ || phase_ == 1; }

 private:
  MPI_Comm comm_, comm2_;
  float* buf_;
  int64_t n_;
  float divisor_;
  bool det_;
  int rank_ = 0, size_ = 1, phase_ = 0;
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::vector<int> counts_, displs_, rcounts_, rdispls_;
  std::vector<float> scratch_;
};

}  // namespace vlmix_mpi
