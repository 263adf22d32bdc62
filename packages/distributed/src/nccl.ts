/**
 * NCCL for vlmix-cuda buffers, loaded at run time (like cuBLAS): this is the probe only. The native
 * side (src/native/nccl_dl.*) resolves the NCCL 2.x entry points a device all-reduce needs and is
 * compile-checked and tested against a stand-in library; nothing has run on a GPU yet. Until the
 * device path exists, tensors of any backend (vlmix-cuda included) are all-reduced by MPI on host
 * copies (Communicator.allReduce / DataParallel.reduceGradients read them with dataSync).
 */
import { loadMpiAddon } from './addon.js';

export interface NcclInfo {
  available: boolean;
  /** Why not, or where it was loaded from. */
  reason: string;
  path?: string;
  /** e.g. '2.21.5' */
  version?: string;
}

/** Library names tried in order: $VLMIX_NCCL_PATH alone when set, else the sonames PyTorch's CUDA wheels ship. */
export function ncclCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  return env.VLMIX_NCCL_PATH ? [env.VLMIX_NCCL_PATH] : ['libnccl.so.2', 'libnccl.so'];
}

/** Whether NCCL can be loaded here (never throws; loads it into the process when found). */
export function ncclInfo(candidates: string[] = ncclCandidates()): NcclInfo {
  const { addon, reason } = loadMpiAddon();
  if (!addon) return { available: false, reason: `NCCL is probed by the MPI addon: ${reason}` };
  return addon.ncclProbe(candidates);
}
