/**
 * What the Trainer needs of a data-parallel process group. @vlmix/distributed's DataParallel has exactly
 * this shape (pass `new DataParallel()`); @vlmix/train does not depend on it, so a user can bring another
 * engine. Every call is collective: all ranks call it in the same order.
 */
import type * as tf from '@tensorflow/tfjs';

export interface DataParallelGroup {
  readonly rank: number;
  readonly size: number;
  /** This rank's rows [start, end) of a global batch of `total` rows. */
  shard(total: number): { start: number; end: number; rows: number; total: number };
  /** Rank 0's values into every parameter on every rank. */
  broadcastParameters(params: Iterable<{ name: string; variable: tf.Variable }>): void;
  /**
   * The mean over ranks of each rank's (mean) gradients, as new tensors; with rows/totalRows each rank is
   * weighted by its share of the global batch. The same bits on every rank.
   */
  reduceGradients(grads: Map<string, tf.Tensor>, opts?: { rows?: number; totalRows?: number }): Map<string, tf.Tensor>;
  /** The global mean of a per-rank number, weighted, in rank order (the same on every rank). */
  meanOf(value: number, weight?: number): number;
  /** Rank 0's tensors on every rank (others pass null); new tensors the caller disposes. */
  broadcastTensors(tensors: Map<string, tf.Tensor> | null): Map<string, tf.Tensor>;
  /** Runs fn on rank 0 after a barrier; a failure there throws on every rank. */
  runOnRoot<T>(what: string, fn: () => T | Promise<T>): Promise<T | undefined>;
  /** Stored in checkpoints (config.distributed) and checked on resume. */
  record(): { worldSize: number };
  /** Throws unless a checkpoint's record (undefined: a one-process run) fits this group. */
  checkResume(record: { worldSize?: number } | undefined): void;
  readonly comm: { broadcastJson<T>(value: T, root?: number): T };
}

/**
 * Which of `flags` hold on ANY rank (e.g. "stop", "time for a checkpoint"), agreed by all ranks with one
 * small collective, so every rank takes the same branch. Each rank contributes one integer that encodes
 * its flags in base size + 1; the sum over ranks decodes to per-flag counts.
 */
export function anyRank(group: DataParallelGroup, flags: readonly boolean[]): boolean[] {
  if (group.size === 1) return [...flags];
  const base = group.size + 1;
  let code = 0;
  flags.forEach((f, i) => { code += (f ? 1 : 0) * base ** i; });
  let sum = Math.round(group.meanOf(code) * group.size);
  return flags.map(() => {
    const count = sum % base;
    sum = (sum - count) / base;
    return count > 0;
  });
}
