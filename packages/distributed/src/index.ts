/**
 * @vlmix/distributed: data-parallel training over MPI. initDistributed() joins the job mpirun started
 * (or makes a one-process world), the Communicator has the collectives, DataParallel the training
 * pieces (shards, bucketed gradient means, parameter broadcast, checkpoint checks). docs/distributed.md.
 */
export {
  Communicator, PendingReduce, DEFAULT_TIMEOUT_MS, allReduce, barrier, broadcast, distributedInfo, finalize, getWorld, initDistributed, rank, size,
  type CollectiveOptions, type InitOptions, type ReduceOp, type TypedArray,
} from './comm.js';
export { DataParallel, DEFAULT_BUCKET_BYTES, tensorsDigest, type DataParallelOptions, type DistributedRecord, type ReduceGradientsOptions, type ResumeCheckOptions } from './data-parallel.js';
export { shardRange, type Shard } from './shard.js';
export { planBuckets, type Bucket, type BucketEntry } from './buckets.js';
export { detectLaunch, findMpirun, mpirunEnv, type Launch } from './launch.js';
export { DistributedError, DistributedTimeoutError } from './errors.js';
export { ncclCandidates, ncclInfo, type NcclInfo } from './nccl.js';
export { loadMpiAddon } from './addon.js';
