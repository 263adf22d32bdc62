/**
 * Sharding a global batch over ranks. The rule (numpy.array_split's): rank r of N gets the contiguous
 * rows [start, end) with floor(B / N) rows, plus one for the first B % N ranks. Gradients of unequal
 * shards are weighted by their row counts (DataParallel.reduceGradients), so the result is the
 * gradient of the mean loss over the whole global batch whatever B % N is.
 */
import { DistributedError } from './errors.js';

export interface Shard {
  rank: number;
  size: number;
  /** First row of the global batch on this rank. */
  start: number;
  /** One past the last row. */
  end: number;
  /** end - start. */
  rows: number;
  /** The global batch size B. */
  total: number;
}

export function shardRange(total: number, rank: number, size: number): Shard {
  if (!Number.isInteger(size) || size < 1) throw new DistributedError(`shardRange: size must be an integer >= 1, got ${size}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new DistributedError(`shardRange: rank must be an integer in [0, ${size}), got ${rank}`);
  if (!Number.isInteger(total) || total < 1) throw new DistributedError(`shardRange: the global batch size must be an integer >= 1, got ${total}`);
  if (total < size) {
    throw new DistributedError(`shardRange: the global batch has ${total} rows but there are ${size} ranks; every rank needs at least one row (raise the batch size or use fewer processes)`);
  }
  const base = Math.floor(total / size);
  const extra = total % size;
  const start = rank * base + Math.min(rank, extra);
  const rows = base + (rank < extra ? 1 : 0);
  return { rank, size, start, end: start + rows, rows, total };
}
