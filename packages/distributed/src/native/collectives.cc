#include "collectives.h"

namespace vlmix_mpi {

AllReduceOp::AllReduceOp(MPI_Comm comm, MPI_Comm comm2, float* buf, int64_t n, float divisor, bool deterministic)
    : comm_(comm), comm2_(comm2), buf_(buf), n_(n), divisor_(divisor), det_(deterministic) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

int AllReduceOp::start() {
  phase_ = 0;
  if (!det_) return MPI_Iallreduce(MPI_IN_PLACE, buf_, (int)n_, MPI_FLOAT, MPI_SUM, comm_, &req_);
  const int p = size_;
  counts_.resize(p);
  displs_.resize(p);
  for (int r = 0; r < p; r++) {
    displs_[r] = (int)chunk_begin(n_, r, p);
    counts_[r] = (int)(chunk_begin(n_, r + 1, p) - displs_[r]);
  }
  // Rank r receives chunk r from every rank, one after another in rank order.
  const int mine = counts_[rank_];
  rcounts_.assign(p, mine);
  rdispls_.resize(p);
  for (int r = 0; r < p; r++) rdispls_[r] = r * mine;
  scratch_.resize((size_t)mine * p);
  return MPI_Ialltoallv(buf_, counts_.data(), displs_.data(), MPI_FLOAT, scratch_.data(), rcounts_.data(),
                        rdispls_.data(), MPI_FLOAT, comm_, &req_);
}

int AllReduceOp::advance(bool* done) {
  *done = false;
  if (!det_) {
    if (divisor_ != 1.0f) for (int64_t j = 0; j < n_; j++) buf_[j] = buf_[j] / divisor_;
    *done = true;
    return MPI_SUCCESS;
  }
  if (phase_ == 0) {
    const int mine = counts_[rank_];
    sum_in_rank_order(scratch_.data(), mine, size_, divisor_, buf_ + displs_[rank_]);
    std::vector<float>().swap(scratch_);
    phase_ = 1;
    return MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf_, counts_.data(), displs_.data(), MPI_FLOAT,
                           comm2_, &req_);
  }
  *done = true;
  return MPI_SUCCESS;
}

}  // namespace vlmix_mpi
