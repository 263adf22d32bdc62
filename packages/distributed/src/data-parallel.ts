/**
 * Data parallelism on a process group: the pieces a training loop needs, with no dependency on the
 * loop itself.
 *
 *   const dp = new DataParallel();                        // on initDistributed()'s world
 *   dp.broadcastParameters(model.params.list());         // everyone starts from rank 0's weights
 *   for each step:
 *     const shard = dp.shard(globalBatch.length);        // this rank's rows [start, end)
 *     grads, loss = backward on rows start..end          // the mean loss over the shard
 *     const avg = dp.reduceGradients(grads, { rows: shard.rows, totalRows: shard.total });
 *     optimizer.step(avg);                               // the same bits on every rank
 *     const globalLoss = dp.meanOf(loss, shard.rows);
 *   await dp.runOnRoot('save checkpoint', () => save(...))   // rank 0 writes, the others wait
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { planBuckets, planSignature, hashString, type Bucket } from './buckets.js';
import { getWorld, type Communicator, type PendingReduce } from './comm.js';
import { DistributedError } from './errors.js';
import { shardRange, type Shard } from './shard.js';

export interface DataParallelOptions {
  /** Default: the group made by initDistributed(). */
  comm?: Communicator;
  /** Bucket size for gradient and parameter collectives, bytes. Default 25 MiB (PyTorch DDP's bucket_cap_mb). */
  bucketBytes?: number;
  /** Fixed-order sums (see CollectiveOptions.deterministic). Default true. */
  deterministic?: boolean;
  /** Post every bucket's all-reduce before waiting for the first, so packing overlaps communication. Default true. */
  overlap?: boolean;
}

export interface ReduceGradientsOptions {
  /** Rows of the global batch behind this rank's (mean) gradients; give with totalRows. */
  rows?: number;
  /** Rows of the global batch. With unequal shards each rank's gradient is weighted by rows / totalRows. */
  totalRows?: number;
}

/** What a checkpoint records about the distributed run (under config.distributed). */
export interface DistributedRecord {
  worldSize: number;
  /** How a global batch of B rows was split (see shard.ts). */
  shardRule: 'array_split';
  deterministic: boolean;
}

export interface ResumeCheckOptions {
  /**
   * Continue a checkpoint of another world size: the data order and global batches are the same
   * (they do not depend on N), only the shards and the summation order change, so the run is the
   * same training but not bit-identical to an uninterrupted one. Default false: an error.
   */
  allowWorldSizeChange?: boolean;
}

export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

interface Plan {
  buckets: Bucket[];
  buffers: Float32Array[];
}

/** sha256 over names, shapes and float32 bits: equal iff the tensors are bit-identical. */
export function tensorsDigest(tensors: Iterable<readonly [string, tf.Tensor]> | Map<string, tf.Tensor>): string {
  const h = createHash('sha256');
  for (const [name, t] of tensors) {
    h.update(`${name}[${t.shape.join(',')}]${t.dtype}\n`);
    const d = t.dataSync();
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

export class DataParallel {
  readonly comm: Communicator;
  readonly bucketBytes: number;
  readonly deterministic: boolean;
  readonly overlap: boolean;
  private readonly plans = new Map<string, Plan>();

  constructor(opts: DataParallelOptions = {}) {
    this.comm = opts.comm ?? getWorld('DataParallel');
    this.bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    if (!Number.isInteger(this.bucketBytes) || this.bucketBytes < 4) throw new DistributedError(`DataParallel: bucketBytes must be an integer >= 4, got ${opts.bucketBytes}`);
    this.deterministic = opts.deterministic ?? true;
    this.overlap = opts.overlap ?? true;
  }

  get rank(): number {
    return this.comm.rank;
  }

  get size(): number {
    return this.comm.size;
  }

  /** This rank's rows of a global batch of `total` rows (rule in shard.ts). */
  shard(total: number): Shard {
    return shardRange(total, this.rank, this.size);
  }

  /** This rank's slice of the rows of a global batch. */
  shardRows<T>(rows: readonly T[]): T[] {
    const s = this.shard(rows.length);
    return rows.slice(s.start, s.end);
  }

  /**
   * The bucket plan for these tensors, checked once per distinct plan that every rank has the same
   * names and shapes in the same order (else all ranks throw together).
   */
  private plan(what: string, tensors: { name: string; shape: readonly number[] }[]): Plan {
    const buckets = planBuckets(tensors, this.bucketBytes);
    const sig = planSignature(buckets);
    const known = this.plans.get(sig);
    if (known) return known;
    if (this.size > 1) {
      const all = this.comm.allGather(new Float64Array([hashString(sig), tensors.length]));
      const differ = [];
      for (let r = 1; r < this.size; r++) if (all[2 * r] !== all[0] || all[2 * r + 1] !== all[1]) differ.push(r);
      if (differ.length) {
        throw new DistributedError(`${what}: ranks hold different tensor sets (rank${differ.length > 1 ? 's' : ''} ${differ.join(', ')} ` +
          `differ${differ.length > 1 ? '' : 's'} from rank 0 in names, shapes or order; rank ${this.rank} has ${tensors.length}: ` +
          `${tensors.slice(0, 3).map((t) => `${t.name}[${t.shape.join(',')}]`).join(', ')}${tensors.length > 3 ? ', ...' : ''})`);
      }
    }
    const plan = { buckets, buffers: buckets.map((b) => new Float32Array(b.size)) };
    this.plans.set(sig, plan);
    return plan;
  }

  /**
   * The mean over ranks of each gradient (new tensors; the inputs are left alone), all-reduced in
   * buckets. Equal shards: sum in rank order / N, bit-identical to one process accumulating the N
   * shards' gradients and dividing by N. Unequal shards (rows/totalRows): sum of rows_r * g_r / B.
   */
  reduceGradients(grads: Map<string, tf.Tensor>, opts: ReduceGradientsOptions = {}): Map<string, tf.Tensor> {
    const what = 'reduceGradients';
    const list = [...grads].map(([name, g]) => {
      if (!(g instanceof tf.Tensor) || g.dtype !== 'float32') throw new DistributedError(`${what}: gradient '${name}' must be a float32 tensor, got ${g instanceof tf.Tensor ? g.dtype : typeof g}`);
      return { name, shape: g.shape, tensor: g };
    });
    let scale = 1;
    let divisor = this.size;
    if (opts.rows !== undefined || opts.totalRows !== undefined) {
      const { rows, totalRows } = opts;
      if (!Number.isInteger(rows) || !Number.isInteger(totalRows) || rows! < 1 || rows! > totalRows!) {
        throw new DistributedError(`${what}: rows and totalRows must be integers with 1 <= rows <= totalRows, got rows ${rows}, totalRows ${totalRows}`);
      }
      if (rows! * this.size !== totalRows) {
        scale = rows!;
        divisor = totalRows!;
      }
    }
    // One process: the mean of one gradient is itself (same bits as the packed path, no copies).
    if (this.size === 1 && scale === 1 && divisor === 1) return new Map(list.map((e) => [e.name, e.tensor.clone()]));
    const plan = this.plan(what, list);
    const byName = new Map(list.map((e) => [e.name, e.tensor]));
    const pending: PendingReduce[] = [];
    plan.buckets.forEach((b, k) => {
      const buf = plan.buffers[k]!;
      for (const e of b.entries) {
        const d = byName.get(e.name)!.dataSync() as Float32Array;
        if (scale === 1) buf.set(d, e.offset);
        else for (let i = 0; i < e.size; i++) buf[e.offset + i] = d[i]! * scale;
      }
      const p = this.comm.allReduceAsync(buf, 'sum', { deterministic: this.deterministic, check: false });
      pending.push(p);
      if (!this.overlap) p.wait();
      else if (k > 0) pending[k - 1]!.test();
    });
    const out = new Map<string, tf.Tensor>();
    plan.buckets.forEach((b, k) => {
      const buf = pending[k]!.wait();
      for (const e of b.entries) {
        const v = new Float32Array(e.size);
        // Float32 store of a double quotient of float32s = the correctly rounded float32 division.
        for (let i = 0; i < e.size; i++) v[i] = buf[e.offset + i]! / divisor;
        out.set(e.name, tf.tensor(v, e.shape, 'float32'));
      }
    });
    return out;
  }

  /** The global mean of a per-rank value (e.g. the shard's loss), weighted, summed in rank order. */
  meanOf(value: number, weight = 1): number {
    if (!(weight > 0)) throw new DistributedError(`meanOf: weight must be > 0, got ${weight}`);
    const all = this.comm.allGather(new Float64Array([value, weight]));
    let equal = true;
    for (let r = 1; r < this.size; r++) if (all[2 * r + 1] !== all[1]) equal = false;
    let sum = 0;
    let wsum = 0;
    for (let r = 0; r < this.size; r++) {
      sum += equal ? all[2 * r]! : all[2 * r]! * all[2 * r + 1]!;
      wsum += all[2 * r + 1]!;
    }
    return equal ? sum / this.size : sum / wsum;
  }

  /** Assigns root's value to every parameter on every other rank (bucketed broadcasts). */
  broadcastParameters(params: Iterable<{ name: string; variable: tf.Variable }>, root = 0): void {
    const what = 'broadcastParameters';
    const list = [...params].map(({ name, variable }) => {
      if (variable.dtype !== 'float32') throw new DistributedError(`${what}: parameter '${name}' must be float32, got ${variable.dtype}`);
      return { name, shape: variable.shape, variable };
    });
    const plan = this.plan(what, list);
    const byName = new Map(list.map((e) => [e.name, e.variable]));
    plan.buckets.forEach((b, k) => {
      const buf = plan.buffers[k]!;
      if (this.rank === root) for (const e of b.entries) buf.set(byName.get(e.name)!.dataSync() as Float32Array, e.offset);
      this.comm.broadcast(buf, root, { check: false });
      if (this.rank === root) return;
      for (const e of b.entries) {
        const t = tf.tensor(buf.slice(e.offset, e.offset + e.size), e.shape, 'float32');
        byName.get(e.name)!.assign(t);
        t.dispose();
      }
    });
  }

  /**
   * Root's tensors (float32) on every rank, e.g. checkpointed optimizer moments: other ranks pass null
   * and learn names and shapes from root. Returns new tensors on every rank (the caller disposes).
   */
  broadcastTensors(tensors: Map<string, tf.Tensor> | null, root = 0): Map<string, tf.Tensor> {
    const what = 'broadcastTensors';
    let spec: { name: string; shape: number[] }[] | null = null;
    if (this.rank === root) {
      if (!(tensors instanceof Map)) throw new DistributedError(`${what}: rank ${root} (the root) must pass a Map of tensors, got ${tensors === null ? 'null' : typeof tensors}`);
      spec = [...tensors].map(([name, t]) => {
        if (t.dtype !== 'float32') throw new DistributedError(`${what}: tensor '${name}' must be float32, got ${t.dtype}`);
        return { name, shape: t.shape };
      });
    }
    spec = this.comm.broadcastJson(spec, root)!;
    const buckets = planBuckets(spec, this.bucketBytes);
    const out = new Map<string, tf.Tensor>();
    for (const b of buckets) {
      const buf = new Float32Array(b.size);
      if (this.rank === root) for (const e of b.entries) buf.set(tensors!.get(e.name)!.dataSync() as Float32Array, e.offset);
      this.comm.broadcast(buf, root, { check: false });
      for (const e of b.entries) out.set(e.name, tf.tensor(buf.slice(e.offset, e.offset + e.size), e.shape, 'float32'));
    }
    return out;
  }

  /**
   * Throws on every rank unless all ranks hold bit-identical tensors (sha256 of names, shapes and
   * bits; one small all-gather). A check for tests and debugging, not for every step.
   */
  checkInSync(tensors: Map<string, tf.Tensor>, what = 'checkInSync'): string {
    const digest = tensorsDigest(tensors);
    const mine = Float64Array.from({ length: 4 }, (_, i) => parseInt(digest.slice(i * 12, i * 12 + 12), 16));
    const all = this.comm.allGather(mine);
    const differ = [];
    for (let r = 1; r < this.size; r++) if (mine.some((_, i) => all[4 * r + i] !== all[i])) differ.push(r);
    if (differ.length) throw new DistributedError(`${what}: tensors differ between ranks (rank ${differ.join(', ')} vs rank 0)`);
    return digest;
  }

  /**
   * Runs `fn` on `root` only (e.g. writing a checkpoint) after a barrier; the other ranks wait for it
   * and learn whether it failed, so a failed save stops every rank with the same error instead of
   * leaving them in the next collective until the watchdog fires.
   */
  async runOnRoot<T>(what: string, fn: () => T | Promise<T>, root = 0): Promise<T | undefined> {
    this.comm.barrier();
    let result: T | undefined;
    let error: unknown = null;
    if (this.rank === root) {
      try {
        result = await fn();
      } catch (e) {
        error = e;
      }
    }
    const mine = this.rank === root ? { ok: error === null, message: error ? String((error as Error).message ?? error) : '' } : { ok: true, message: '' };
    const status = this.comm.broadcastJson(mine, root);
    if (error) throw error;
    if (!status.ok) throw new DistributedError(`${what} failed on rank ${root}: ${status.message}`);
    return result;
  }

  /** For checkpoints: store under config.distributed, check with checkResume. */
  record(): DistributedRecord {
    return { worldSize: this.size, shardRule: 'array_split', deterministic: this.deterministic };
  }

  /**
   * Checks a checkpoint's DistributedRecord (undefined: written by a single-process run) against this
   * run. A different world size is an error unless allowWorldSizeChange.
   */
  checkResume(record: Partial<DistributedRecord> | undefined, opts: ResumeCheckOptions = {}): void {
    const n = record?.worldSize ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new DistributedError(`resume: the checkpoint's distributed.worldSize must be an integer >= 1, got ${JSON.stringify(record?.worldSize)}`);
    if (record?.shardRule !== undefined && record.shardRule !== 'array_split') {
      throw new DistributedError(`resume: the checkpoint sharded batches by '${record.shardRule}', this version only knows 'array_split'`);
    }
    if (n === this.size || opts.allowWorldSizeChange) return;
    throw new DistributedError(`resume: the checkpoint was written by a run of ${n} process${n > 1 ? 'es' : ''}, this run has ${this.size}; ` +
      `exact resume needs the same number (relaunch with \`mpirun -np ${n}\`), or allow the change to continue the same global batches ` +
      `re-sharded over ${this.size} (same training, not bit-identical to an uninterrupted run)`);
  }
}
