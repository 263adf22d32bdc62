// Collectives under mpirun: each rank computes its part and the references it can compute alone (every
// rank's input is a pure function of its rank), and writes what it saw to <out>.rank<r>.json; the
// test compares. Run: mpirun -np 2 node --import tsx collectives.ts --out /tmp/x
import * as tf from '@tensorflow/tfjs';
import { DataParallel, DistributedError, initDistributed, tensorsDigest, type Communicator } from '../../src/index.js';
import { arg, selectBackend, writeResult } from './common.js';

/** Rank r's input of n elements: deterministic, mixed signs and magnitudes. */
function input(r: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37 + r * 1.3) * (1 + (i % 7)) * (r % 2 ? 1e-3 : 1);
  return x;
}

function errorOf(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

function allReduceCase(world: Communicator, parts: Float32Array[], deterministic: boolean) {
  const P = world.size;
  const n = parts[0]!.length;
  const buf = parts[world.rank]!.slice();
  world.allReduce(buf, 'sum', { deterministic });
  let maxErr = 0; // vs the float64 sum, relative to the sum of magnitudes
  let rankOrderBits = true; // equals the float32 sum in rank order, bit for bit
  for (let i = 0; i < n; i++) {
    let f64 = 0;
    let abs = 0;
    let f32 = parts[0]![i]!;
    for (let r = 0; r < P; r++) {
      f64 += parts[r]![i]!;
      abs += Math.abs(parts[r]![i]!);
      if (r > 0) f32 = Math.fround(f32 + parts[r]![i]!);
    }
    maxErr = Math.max(maxErr, Math.abs(buf[i]! - f64) / Math.max(abs, 1e-30));
    if (buf[i] !== f32) rankOrderBits = false;
  }
  const mean = parts[world.rank]!.slice();
  world.allReduce(mean, 'mean', { deterministic });
  let meanBits = true;
  for (let i = 0; i < n; i++) if (mean[i] !== Math.fround(buf[i]! / P)) meanBits = false;
  return { n, deterministic, maxErr, rankOrderBits, meanBits, digest: tensorsDigest([['x', tf.tensor(buf)]]) };
}

/** Gradient of mean_rows sum_j (x W - t)^2 on rows [s, e) of a fixed 7-row problem (or 8). */
function linearGrads(rows: number, s: number, e: number): Map<string, tf.Tensor> {
  const [gw, gb] = tf.tidy(() => {
    const x = tf.tensor2d(Array.from({ length: rows * 3 }, (_, i) => Math.cos(i * 0.7)), [rows, 3]).slice([s, 0], [e - s, 3]);
    const t = tf.tensor2d(Array.from({ length: rows * 2 }, (_, i) => Math.sin(i * 1.1)), [rows, 2]).slice([s, 0], [e - s, 2]);
    const w = tf.tensor2d([0.5, -0.2, 0.1, 0.3, -0.4, 0.25], [3, 2]);
    const b = tf.tensor1d([0.05, -0.1]);
    const g = tf.grads((w_: tf.Tensor, b_: tf.Tensor) => tf.mean(tf.sum(tf.square(tf.sub(tf.add(tf.matMul(x, w_ as tf.Tensor2D), b_), t)), 1)));
    return g([w, b]);
  });
  return new Map([['w', gw!], ['b', gb!]]);
}

function maxRelDiff(a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>): number {
  let m = 0;
  for (const [k, t] of a) {
    const x = t.dataSync();
    const y = b.get(k)!.dataSync();
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!) / Math.max(Math.abs(y[i]!), 1e-6));
  }
  return m;
}

async function main(): Promise<void> {
  const world = initDistributed({ require: true, timeoutMs: 120_000 });
  const backend = await selectBackend();
  const out: Record<string, unknown> = { rank: world.rank, size: world.size, backend, library: world.library };

  out.allReduce = [1, 1023, 4 << 20].flatMap((n) => {
    const parts = Array.from({ length: world.size }, (_, r) => input(r, n)); // every rank's input
    return [allReduceCase(world, parts, true), allReduceCase(world, parts, false)];
  });

  const t = tf.tensor2d([[world.rank + 1, 2 * (world.rank + 1)]]);
  const tm = world.allReduce(t, 'mean');
  out.tensorMean = { shape: tm.shape, values: Array.from(tm.dataSync()), inputAfter: Array.from(t.dataSync()) };

  // Broadcast: typed arrays from root 1, a tensor from root 0, JSON from root 1; all-gather.
  const f = world.broadcast(Float32Array.from([1, 2, 3], (v) => v * (world.rank + 10)), 1);
  const u = world.broadcast(world.rank === 0 ? Uint8Array.from([7, 8, 9]) : new Uint8Array(3));
  const bt = world.broadcast(tf.tensor2d([[world.rank, 1, 2], [3, 4, 5 + world.rank]]));
  const js = world.broadcastJson(world.rank === 1 ? { from: 1, list: [1, 'two', null] } : null, 1);
  const ag = world.allGather(Int32Array.from([world.rank, world.rank * 10]));
  out.broadcast = { f32: Array.from(f), u8: Array.from(u), tensor: { shape: bt.shape, values: Array.from(bt.dataSync()) }, json: js, allGather: Array.from(ag) };

  // Errors: bad arguments are caught before any communication; a size mismatch is found by every rank.
  out.errors = {
    float64: errorOf(() => world.allReduce(new Float64Array(3) as unknown as Float32Array)),
    int32Tensor: errorOf(() => world.allReduce(tf.tensor1d([1, 2], 'int32'))),
    op: errorOf(() => world.allReduce(new Float32Array(2), 'max' as 'sum')),
    root: errorOf(() => world.broadcast(new Float32Array(2), 5)),
    sizeMismatch: errorOf(() => world.allReduce(new Float32Array(world.rank === 0 ? 10 : 12))),
    // Still usable after a detected mismatch:
    afterMismatch: Array.from(world.allReduce(Float32Array.from([world.rank + 1]))),
  };

  // Unequal shards (7 rows over 2 ranks: 4 + 3) weighted by rows equal the full-batch gradient; the
  // equal case (8 rows) too. Bucket size and overlap change nothing, bit for bit.
  const shards: Record<string, unknown> = {};
  for (const rows of [7, 8]) {
    const dp = new DataParallel({ comm: world });
    const s = dp.shard(rows);
    const local = linearGrads(rows, s.start, s.end);
    const avg = dp.reduceGradients(local, { rows: s.rows, totalRows: s.total });
    const full = linearGrads(rows, 0, rows);
    const tiny = new DataParallel({ comm: world, bucketBytes: 8, overlap: true }).reduceGradients(local, { rows: s.rows, totalRows: s.total });
    const serial = new DataParallel({ comm: world, bucketBytes: 8, overlap: false }).reduceGradients(local, { rows: s.rows, totalRows: s.total });
    shards[rows] = {
      shard: s, maxRelVsFull: maxRelDiff(avg, full),
      sameBitsAcrossBucketings: tensorsDigest(avg) === tensorsDigest(tiny) && tensorsDigest(avg) === tensorsDigest(serial),
      digest: tensorsDigest(avg),
    };
  }
  out.shards = shards;
  const dp = new DataParallel({ comm: world });
  out.planMismatch = errorOf(() => dp.reduceGradients(new Map([[world.rank === 0 ? 'a' : 'b', tf.zeros([2])]])));
  out.meanOf = { equal: dp.meanOf(world.rank === 0 ? 1.5 : 2.25), weighted: dp.meanOf(world.rank === 0 ? 1 : 4, world.rank === 0 ? 3 : 1) };
  out.notDistributedError = new DistributedError('x') instanceof Error;
  world.barrier();
  writeResult(arg('out')!, world.rank, out);
  world.finalize();
}

main().catch((e: Error) => {
  process.stderr.write(`collectives worker: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
