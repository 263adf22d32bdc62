// Everything that runs in one process: the launch-less world, sharding, buckets, resume checks.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  DataParallel, allReduce, barrier, broadcast, detectLaunch, finalize, getWorld, initDistributed, planBuckets, rank, shardRange,
  size, tensorsDigest,
} from '../src/index.js';
import { hashString, planSignature } from '../src/buckets.js';

describe('shardRange (numpy.array_split rule)', () => {
  it('splits contiguously, the first B % N ranks one row more', () => {
    expect([0, 1].map((r) => shardRange(8, r, 2)).map((s) => [s.start, s.end])).toEqual([[0, 4], [4, 8]]);
    expect([0, 1].map((r) => shardRange(7, r, 2)).map((s) => [s.start, s.end, s.rows])).toEqual([[0, 4, 4], [4, 7, 3]]);
    expect([0, 1, 2, 3].map((r) => shardRange(10, r, 4).rows)).toEqual([3, 3, 2, 2]);
  });

  it('covers [0, B) exactly once for every B >= N', () => {
    for (let n = 1; n <= 6; n++) {
      for (let b = n; b <= 20; b++) {
        const s = Array.from({ length: n }, (_, r) => shardRange(b, r, n));
        expect(s[0]!.start).toBe(0);
        expect(s[n - 1]!.end).toBe(b);
        for (let r = 1; r < n; r++) expect(s[r]!.start).toBe(s[r - 1]!.end);
        expect(Math.max(...s.map((x) => x.rows)) - Math.min(...s.map((x) => x.rows))).toBeLessThanOrEqual(1);
      }
    }
  });

  it('errors name the value', () => {
    expect(() => shardRange(3, 0, 4)).toThrow('shardRange: the global batch has 3 rows but there are 4 ranks; every rank needs at least one row');
    expect(() => shardRange(8, 2, 2)).toThrow('shardRange: rank must be an integer in [0, 2), got 2');
    expect(() => shardRange(8.5, 0, 2)).toThrow('shardRange: the global batch size must be an integer >= 1, got 8.5');
    expect(() => shardRange(8, 0, 0)).toThrow('shardRange: size must be an integer >= 1, got 0');
  });
});

describe('planBuckets', () => {
  const t = (name: string, ...shape: number[]) => ({ name, shape });

  it('fills buckets in order up to the byte cap; a larger tensor gets its own', () => {
    const b = planBuckets([t('a', 2, 3), t('b', 4), t('c', 10), t('d', 1), t('e', 2)], 40); // 10 floats per bucket
    expect(b.map((x) => x.entries.map((e) => `${e.name}@${e.offset}`))).toEqual([['a@0', 'b@6'], ['c@0'], ['d@0', 'e@1']]);
    expect(b.map((x) => x.size)).toEqual([10, 10, 3]);
    expect(planBuckets([t('big', 100), t('x', 1)], 40).map((x) => x.size)).toEqual([100, 1]);
  });

  it('signature and hash change with a name, shape or order', () => {
    const sig = (xs: { name: string; shape: number[] }[]) => hashString(planSignature(planBuckets(xs, 1 << 20)));
    const base = sig([t('a', 2), t('b', 3)]);
    expect(sig([t('a', 2), t('b', 3)])).toBe(base);
    for (const other of [[t('a', 2), t('c', 3)], [t('a', 3), t('b', 3)], [t('b', 3), t('a', 2)], [t('a', 2)]]) expect(sig(other)).not.toBe(base);
    expect(() => planBuckets([], 2)).toThrow('planBuckets: bucketBytes must be an integer >= 4, got 2');
  });
});

describe('detectLaunch', () => {
  it('reads Open MPI, PMI and PMIx variables', () => {
    expect(detectLaunch({})).toEqual({ launcher: null, size: null, rank: null });
    expect(detectLaunch({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2' })).toEqual({ launcher: 'open-mpi', size: 4, rank: 2 });
    expect(detectLaunch({ PMI_SIZE: '2', PMI_RANK: '1' })).toEqual({ launcher: 'pmi', size: 2, rank: 1 });
    expect(detectLaunch({ PMIX_RANK: '3' })).toEqual({ launcher: 'pmix', size: null, rank: 3 });
  });
});

describe('the one-process world (no launcher)', () => {
  it('before initDistributed: a clear error', () => {
    expect(() => rank()).toThrow('rank: not initialised; call initDistributed() first');
    expect(() => allReduce(new Float32Array(1))).toThrow('allReduce: not initialised; call initDistributed() first');
    expect(() => new DataParallel()).toThrow('DataParallel: not initialised; call initDistributed() first');
  });

  it('require: true without mpirun is an error; otherwise size 1 with identity collectives', () => {
    expect(detectLaunch().launcher).toBeNull();
    expect(() => initDistributed({ require: true })).toThrow(/^distributed mode needs a launch by mpirun/);
    expect(() => initDistributed({ timeoutMs: -1 })).toThrow('initDistributed: timeoutMs must be a number of milliseconds >= 0, got -1');
    const w = initDistributed({ timeoutMs: 1000 });
    expect([w.rank, w.size, w.backend, rank(), size()]).toEqual([0, 1, 'local', 0, 1]);
    expect(initDistributed()).toBe(w);
    expect(() => initDistributed({ require: true })).toThrow(/^distributed mode needs a launch by mpirun/);

    const x = Float32Array.from([1.5, -2]);
    expect(allReduce(x, 'mean')).toBe(x);
    expect(Array.from(x)).toEqual([1.5, -2]);
    const t = tf.tensor2d([[1, 2]]);
    const s = w.allReduce(t, 'sum');
    expect([s.shape, Array.from(s.dataSync())]).toEqual([[1, 2], [1, 2]]);
    expect(s).not.toBe(t);
    expect(Array.from(broadcast(Int32Array.from([4, 5])))).toEqual([4, 5]);
    expect(w.broadcastJson({ a: [1, null] })).toEqual({ a: [1, null] });
    expect(Array.from(w.allGather(Float64Array.from([0.25])))).toEqual([0.25]);
    barrier();
    // Argument errors are the same as under mpirun.
    expect(() => w.allReduce(new Int32Array(2) as unknown as Float32Array)).toThrow('allReduce: x must be a Float32Array or a float32 tensor, got Int32Array');
    expect(() => w.allReduce(tf.tensor1d([1], 'int32'))).toThrow('allReduce: x must be a Float32Array or a float32 tensor, got an int32 tensor');
    expect(() => w.broadcast(new Float32Array(1), 1)).toThrow('broadcast: root must be an integer in [0, 1), got 1');
    expect(() => w.broadcast(tf.tensor1d([true], 'bool'))).toThrow('broadcast: tensors must be float32 or int32, got bool');
    tf.dispose([t, s]);
  });

  it('DataParallel on one process: the whole batch, gradients unchanged, no leaks', () => {
    const dp = new DataParallel({ bucketBytes: 12 });
    expect(dp.shard(5)).toEqual({ rank: 0, size: 1, start: 0, end: 5, rows: 5, total: 5 });
    expect(dp.shardRows(['a', 'b'])).toEqual(['a', 'b']);
    const grads = new Map<string, tf.Tensor>([['w', tf.tensor2d([[1, 2], [3, 4]])], ['b', tf.tensor1d([0.5])]]);
    const before = tf.memory().numTensors;
    const avg = dp.reduceGradients(grads, { rows: 5, totalRows: 5 });
    expect(tf.memory().numTensors - before).toBe(2);
    expect(tensorsDigest(avg)).toBe(tensorsDigest(grads));
    expect([...avg.keys()]).toEqual(['w', 'b']);
    expect(dp.meanOf(2.5, 3)).toBe(2.5);
    expect(() => dp.reduceGradients(grads, { rows: 6, totalRows: 5 })).toThrow('reduceGradients: rows and totalRows must be integers with 1 <= rows <= totalRows, got rows 6, totalRows 5');
    expect(() => dp.reduceGradients(new Map([['i', tf.tensor1d([1], 'int32')]]))).toThrow("reduceGradients: gradient 'i' must be a float32 tensor, got int32");
    const moved = dp.broadcastTensors(grads);
    expect(tensorsDigest(moved)).toBe(tensorsDigest(grads));
    const v = tf.variable(tf.tensor1d([1, 2]));
    dp.broadcastParameters([{ name: 'v', variable: v }]);
    expect(Array.from(v.dataSync())).toEqual([1, 2]);
    expect(dp.checkInSync(grads)).toBe(tensorsDigest(grads));
    tf.dispose([...grads.values(), ...avg.values(), ...moved.values(), v]);
  });

  it('checkResume: same world size passes; another is an error unless allowed', async () => {
    const dp = new DataParallel();
    expect(dp.record()).toEqual({ worldSize: 1, shardRule: 'array_split', deterministic: true });
    dp.checkResume(undefined); // a single-process checkpoint
    dp.checkResume({ worldSize: 1 });
    expect(() => dp.checkResume({ worldSize: 4 })).toThrow(
      'resume: the checkpoint was written by a run of 4 processes, this run has 1; exact resume needs the same number (relaunch with `mpirun -np 4`)');
    dp.checkResume({ worldSize: 4 }, { allowWorldSizeChange: true });
    expect(() => dp.checkResume({ worldSize: 0 })).toThrow("resume: the checkpoint's distributed.worldSize must be an integer >= 1, got 0");
    await expect(dp.runOnRoot('save', () => 7)).resolves.toBe(7);
    await expect(dp.runOnRoot('save', () => { throw new Error('disk full'); })).rejects.toThrow('disk full');
  });

  it('after finalize: collectives and a second init are errors', () => {
    finalize();
    expect(() => getWorld('barrier')).toThrow('barrier: the process group was finalized');
    expect(() => initDistributed()).toThrow('initDistributed: the process group was finalized; MPI cannot be initialised twice in one process');
  });
});
