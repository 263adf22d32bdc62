// vlmix-cuda: availability reporting everywhere; on a GPU, device-specific checks (the op-parity and
// fused-kernel suites pick vlmix-cuda up automatically through helpers.NATIVE_BACKENDS).
import * as tf from '@tensorflow/tfjs';
import { StepReplayer, ops, replayedVariableGrads } from '@vlmix/core';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaInfo, cudaMemory, loadCuda } from '../src/cuda.js';
import { setCudaTf32, useBackend } from '../src/index.js';
import { Rand, availability, expectClose, runOn } from './helpers.js';

const built = loadCuda();
const info = cudaInfo();
const original = tf.getBackend();
afterAll(async () => {
  await tf.setBackend(original);
});

describe.skipIf(!built.addon)(`vlmix-cuda availability${built.addon ? '' : ` (skipped: ${built.reason})`}`, () => {
  it('cudaInfo gives a clear reason', () => {
    expect(info.reason.length).toBeGreaterThan(0);
    if (!info.available) {
      expect(info.reason).toMatch(/^(no CUDA driver|no CUDA device|CUDA driver too old|compute capability|CUDA |VLMIX_CUDA_DEVICE)/);
    } else {
      expect(info.device).toBeTruthy();
      expect(info.computeCapability).toMatch(/^\d+\.\d+$/);
    }
  });

  it.skipIf(info.available)('without a GPU: auto does not pick vlmix-cuda, and asking for it throws with the reason', async () => {
    const r = await useBackend('auto');
    expect(r.backend).not.toBe('vlmix-cuda');
    expect(tf.findBackendFactory('vlmix-cuda')).toBeNull();
    await expect(useBackend('vlmix-cuda')).rejects.toThrow(`backend 'vlmix-cuda' is unavailable: ${info.reason}`);
    await tf.setBackend(original);
  });

  it('VLMIX_CUDA=0 keeps auto off vlmix-cuda, with the reason', async () => {
    const saved = process.env.VLMIX_CUDA;
    process.env.VLMIX_CUDA = '0';
    try {
      const r = await useBackend('auto');
      expect(r.backend).not.toBe('vlmix-cuda');
      if (r.backend === 'vlmix-cpu') expect(r.reason).toMatch(/vlmix-cuda unavailable \(skipped by VLMIX_CUDA=0\)/);
    } finally {
      if (saved == null) delete process.env.VLMIX_CUDA;
      else process.env.VLMIX_CUDA = saved;
      await tf.setBackend(original);
    }
  });

  it.skipIf(!info.available)('on a GPU: auto picks vlmix-cuda unless tfjs-node is installed', async () => {
    const r = await useBackend('auto');
    expect(['vlmix-cuda', 'tensorflow']).toContain(r.backend);
    await tf.setBackend(original);
  });
});

describe.skipIf(!info.available)(`vlmix-cuda on the device${info.available ? ` (${info.device})` : ` (skipped: ${info.reason})`}`, () => {
  availability('vlmix-cuda');

  it('no leaked device buffers after a training-like step', async () => {
    await tf.setBackend('vlmix-cuda');
    const before = cudaMemory();
    const r = new Rand(1);
    tf.tidy(() => {
      const x = r.floats([64, 256]), w = r.floats([256, 128]);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(ops.gelu(tf.matMul(a, b), 'tanh')))([x, w]);
      g.forEach((t) => t.dataSync());
    });
    const after = cudaMemory();
    expect(after.numDataIds).toBe(before.numDataIds);
    expect(after.bytes).toBe(before.bytes);
    expect(after.peakBytes).toBeGreaterThan(0);
  });

  it('matmul with TF32 stays within TF32 accuracy; FP32 matches tightly', async () => {
    const build = (rr: Rand) => tf.matMul(rr.floats([3, 130, 257]), rr.floats([3, 257, 66]));
    const expected = await runOn('cpu', 5, build);
    const suiteTf32 = process.env.VLMIX_TF32 === '1';
    try {
      setCudaTf32(false);
      expectClose(await runOn('vlmix-cuda', 5, build), expected, 1e-4, 1e-4, 'fp32 matmul');
      setCudaTf32(true);
      expectClose(await runOn('vlmix-cuda', 5, build), expected, 1e-2, 5e-2, 'tf32 matmul');
    } finally {
      setCudaTf32(suiteTf32);
    }
  });

  it('large rows: softmax / layerNorm / cross-entropy over a 50k vocabulary', async () => {
    const build = (rr: Rand) => {
      const x = rr.floats([4, 50021], -6, 6);
      const labels = rr.ints([4], 0, 50021);
      return [tf.softmax(x), ops.softmaxCrossEntropy(x, labels, -100), ops.layerNorm(x, tf.ones([50021]), tf.zeros([50021]), 1e-5)];
    };
    expectClose(await runOn('vlmix-cuda', 6, build), await runOn('cpu', 6, build), 2e-4, 1e-5, 'large rows');
  });

  it('attention with long sequences and head dim 128', async () => {
    const build = (rr: Rand) => {
      const q = rr.floats([1, 4, 300, 128]), k = rr.floats([1, 2, 300, 128]), v = rr.floats([1, 2, 300, 128]);
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.attention(a, b, c, { causal: true });
      const w = rr.floats([1, 4, 300, 128]);
      return [f(q, k, v), ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), w)))([q, k, v])];
    };
    expectClose(await runOn('vlmix-cuda', 7, build), await runOn('cpu', 7, build), 1e-3, 1e-4, 'attention long');
  });

  it('UnsortedSegmentSum is deterministic: each segment sums its rows in row order', async () => {
    await tf.setBackend('vlmix-cuda');
    // 3000 rows into 40 segments, most rows in a few segments (as padding tokens in an embedding gradient)
    const r = new Rand(8);
    const N = 3000, C = 7, S = 40;
    const xs = r.floats([N, C], -1, 1), xv = xs.dataSync();
    const idv = Int32Array.from({ length: N }, (_, n) => (n % 5 === 0 ? (n * 7) % S : n % 3));
    const ids = tf.tensor1d(idv, 'int32');
    const want = new Float32Array(S * C);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) want[idv[n]! * C + c] = Math.fround(want[idv[n]! * C + c]! + xv[n * C + c]!);
    const a = tf.unsortedSegmentSum(xs, ids, S), b = tf.unsortedSegmentSum(xs, ids, S);
    expect(Array.from(a.dataSync())).toEqual(Array.from(want));
    expect(Array.from(b.dataSync())).toEqual(Array.from(want));
    const g = tf.unsortedSegmentSum(tf.ones([5, 2], 'int32'), tf.tensor1d([1, 1, 0, 1, 3], 'int32'), 4);
    expect(Array.from(g.dataSync())).toEqual([1, 1, 3, 3, 0, 0, 1, 1]);
    tf.dispose([xs, ids, a, b, g]);
  });

  it('a training step with an embedding gradient replays bit for bit', async () => {
    await tf.setBackend('vlmix-cuda');
    const r = new Rand(9);
    const emb = tf.variable(r.floats([50, 16]), true, 'cuda-replay-emb');
    const w = tf.variable(r.floats([16, 50]), true, 'cuda-replay-w');
    const eager: number[][] = [];
    const replayed: number[][] = [];
    const reasons: string[] = [];
    const replayer = new StepReplayer({ onEager: (why) => reasons.push(why) });
    for (let i = 0; i < 5; i++) {
      const tok = tf.tensor2d(Int32Array.from({ length: 4 * 12 }, (_, j) => (j * 7 + i) % 50), [4, 12], 'int32');
      const lab = tf.tensor1d(Int32Array.from({ length: 48 }, (_, j) => (j * 3 + i) % 50), 'int32');
      const loss = () => ops.softmaxCrossEntropy(tf.matMul(tf.reshape(tf.gather(emb, tok), [48, 16]), w), lab, -100).mean() as tf.Scalar;
      const e = tf.variableGrads(loss, [emb, w]);
      const p = replayedVariableGrads(replayer, [tok, lab], loss, [emb, w]);
      eager.push([...e.value.dataSync(), ...e.grads[emb.name]!.dataSync(), ...e.grads[w.name]!.dataSync()]);
      replayed.push([...p.value.dataSync(), ...p.grads[emb.name]!.dataSync(), ...p.grads[w.name]!.dataSync()]);
      tf.dispose([tok, lab, e.value, p.value, ...Object.values(e.grads), ...Object.values(p.grads)]);
    }
    expect(reasons).toEqual([]);
    expect(replayer.status()[0]!.replays).toBe(3);
    for (let i = 0; i < 5; i++) expect(replayed[i]).toEqual(eager[i]);
    replayer.dispose();
    tf.dispose([emb, w]);
  });

  it('gather out of range reports an error at the next read', async () => {
    await tf.setBackend('vlmix-cuda');
    const x = tf.ones([4, 3]);
    const i = tf.tensor1d([0, 7], 'int32');
    expect(() => tf.gather(x, i).dataSync()).toThrow(/index is out of range/);
    tf.dispose([x, i]);
  });
});
