// Backend plumbing: fallback kernels, memory accounting (no leaks), determinism, selection API.
import * as tf from '@tensorflow/tfjs';
import { ops } from '@vlmix/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  fallbackCounts, nativeInfo, nativeMemory, registerNativeBackend, resetFallbackCounts, syncFallbackKernels, useBackend,
} from '../src/index.js';
import { Rand, availability, expectClose, runOn } from './helpers.js';

const av = availability('vlmix-cpu');
const original = tf.getBackend();

describe('backend selection', () => {
  afterAll(async () => {
    await tf.setBackend(original);
  });
  it('nativeInfo reports availability', () => {
    const info = nativeInfo();
    expect(info.available).toBe(av.ok);
    if (info.available) {
      expect(info.threads).toBeGreaterThan(0);
      expect(info.gemm).toMatch(/avx512|avx2|openblas|scalar/);
    }
  });
  it('auto picks the best available backend and says why', async () => {
    const r = await useBackend('auto');
    expect(tf.getBackend()).toBe(r.backend);
    expect(r.reason.startsWith(`${r.backend}:`)).toBe(true);
    if (av.ok) expect(['vlmix-cuda', 'vlmix-cpu', 'tensorflow']).toContain(r.backend);
  });
  it('an unavailable explicit backend throws a clear error', async () => {
    await expect(useBackend('tensorflow')).rejects.toThrow(/tensorflow/);
    await tf.setBackend(original);
  });
});

describe.skipIf(!av.ok)(`vlmix-cpu backend${av.ok ? '' : ` (skipped: ${av.reason})`}`, () => {
  beforeAll(async () => {
    await useBackend('vlmix-cpu');
  });
  afterAll(async () => {
    await tf.setBackend(original);
  });

  it('registers its kernels once, in order: native first, the counting fallback for the rest, nothing replaced', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      await useBackend('vlmix-cpu');
      registerNativeBackend();
      syncFallbackKernels();
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
    for (const name of ops.kernels.ALL_FUSED_KERNELS) expect(ops.kernelLayer(name, 'vlmix-cpu')).toBe('native');
    expect(ops.kernelLayer('BatchMatMul', 'vlmix-cpu')).toBe('native');
    expect(ops.kernelLayer('Cumsum', 'vlmix-cpu')).toBe('fallback');
    const layers = new Set(tf.getKernelsForBackend('cpu').map((k) => ops.kernelLayer(k.kernelName, 'vlmix-cpu')));
    expect([...layers].sort()).toEqual(['fallback', 'native']);
  });

  it('falls back to the cpu kernel for unimplemented ops, with counts', async () => {
    resetFallbackCounts();
    const build = (r: Rand) => [tf.cumsum(r.floats([7, 33]), 1), tf.topk(r.floats([5, 9]), 3).values, tf.maxPool(r.floats([1, 6, 6, 2]) as tf.Tensor4D, 2, 2, 'valid')];
    const expected = await runOn('cpu', 3, build);
    const actual = await runOn('vlmix-cpu', 3, build);
    expectClose(actual, expected, 1e-6, 1e-6, 'fallback');
    const c = fallbackCounts();
    expect(c.Cumsum).toBe(1);
    expect(c.TopK).toBe(1);
    expect(c.MaxPool).toBe(1);
    resetFallbackCounts();
    expect(fallbackCounts()).toEqual({});
  });

  it('kernels registered after the backend are picked up by syncFallbackKernels / useBackend', async () => {
    tf.registerKernel({
      kernelName: 'VlmixTestDouble', backendName: 'cpu',
      kernelFunc: ({ inputs, backend }) => {
        const b = backend as tf.KernelBackend & { makeTensorInfo(s: number[], d: tf.DataType, v: tf.TypedArray): tf.TensorInfo };
        const x = inputs.x as tf.TensorInfo;
        const v = (b.readSync(x.dataId) as Float32Array).map((e) => 2 * e);
        return b.makeTensorInfo(x.shape, 'float32', v);
      },
    });
    await useBackend('vlmix-cpu');
    resetFallbackCounts();
    const y = tf.engine().runKernel('VlmixTestDouble', { x: tf.tensor([1, 2, 3]) }) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([2, 4, 6]);
    y.dispose();
    expect(fallbackCounts().VlmixTestDouble).toBe(1);
  });

  it('reshape, identity and same-dtype cast share the buffer', () => {
    const x = tf.tensor([1, 2, 3, 4]);
    const before = nativeMemory().bytes;
    const y = tf.reshape(x, [2, 2]);
    const z = tf.cast(y, 'float32');
    const w = tf.clone(z);
    expect(nativeMemory().bytes).toBe(before);
    tf.dispose([x, y, z]);
    expect(Array.from(w.dataSync())).toEqual([1, 2, 3, 4]);
    w.dispose();
    expect(nativeMemory().bytes).toBe(before - 16);
  });

  it('tensors move in from tfjs cpu and out to it, with their values, references and counts', async () => {
    await tf.setBackend('cpu');
    const a = tf.tensor([1, 2, 3, 4], [2, 2]);
    const aliasOfA = tf.reshape(a, [4]); // two tensors, one data id: moved with its reference count
    await useBackend('vlmix-cpu');
    const ids = nativeMemory().numDataIds;
    const b = tf.add(a, a); // reads a: its data moves here (a data id vlmix-cpu did not create)
    expect(nativeMemory().numDataIds).toBe(ids + 2);
    expect(Array.from(b.dataSync())).toEqual([2, 4, 6, 8]);
    a.dispose(); // one reference left (aliasOfA): the buffer stays
    expect(nativeMemory().numDataIds).toBe(ids + 2);
    const sq = tf.square(aliasOfA);
    expect(Array.from(sq.dataSync())).toEqual([1, 4, 9, 16]);
    sq.dispose();
    aliasOfA.dispose();
    expect(nativeMemory().numDataIds).toBe(ids + 1);
    await tf.setBackend('cpu');
    const c = tf.neg(b); // b's data moves out to cpu and is freed here
    expect(nativeMemory().numDataIds).toBe(ids);
    expect(Array.from(c.dataSync())).toEqual([-2, -4, -6, -8]);
    await useBackend('vlmix-cpu');
    const d = tf.neg(c); // and back in
    expect(Array.from(d.dataSync())).toEqual([2, 4, 6, 8]);
    const e = tf.add(b, d); // b's data id, which vlmix-cpu created, comes back from cpu
    expect(Array.from(e.dataSync())).toEqual([4, 8, 12, 16]);
    expect(nativeMemory().numDataIds).toBe(ids + 4); // b, c (moved in for d), d, e
    tf.dispose([b, c, d, e]);
    expect(nativeMemory().numDataIds).toBe(ids);
  });

  it('sums and means along long contiguous rows are exact to float32 rounding of the float64 sum', async () => {
    await tf.setBackend('vlmix-cpu');
    const rows = 3, n = 100003;
    const vals = Float32Array.from({ length: rows * n }, (_, i) => Math.fround(Math.sin(i) * 0.1 + (i % 7) * 0.01));
    const x = tf.tensor2d(vals, [rows, n]);
    const want = Array.from({ length: rows }, (_, r) => { let s = 0; for (let j = 0; j < n; j++) s += vals[r * n + j]!; return s; });
    const sum = Array.from(tf.sum(x, 1).dataSync());
    const mean = Array.from(tf.mean(x, -1).dataSync());
    sum.forEach((v, r) => expect(v).toBe(Math.fround(want[r]!)));
    mean.forEach((v, r) => expect(Math.abs(v - want[r]! / n)).toBeLessThanOrEqual(Math.abs(want[r]! / n) * 2 ** -22));
    tf.dispose(x);
  });

  it('bool tensors read back as Uint8Array', () => {
    const b = tf.greater(tf.tensor([1, 2, 3]), 2);
    expect(b.dataSync()).toBeInstanceOf(Uint8Array);
    expect(Array.from(b.dataSync())).toEqual([0, 0, 1]);
    b.dispose();
  });

  it('string tensors are rejected clearly', () => {
    expect(() => tf.tensor(['a'])).toThrow(/string/);
  });

  it('an MLP training loop does not leak tensors or native memory', () => {
    const r = new Rand(11);
    const w1 = tf.variable(r.floats([16, 32], -0.3, 0.3));
    const b1 = tf.variable(tf.zeros([32]));
    const w2 = tf.variable(r.floats([32, 10], -0.3, 0.3));
    const gamma = tf.variable(tf.ones([32]));
    const beta = tf.variable(tf.zeros([32]));
    const vars = [w1, b1, w2, gamma, beta];
    const m: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
    const s: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
    const x = r.floats([8, 16]);
    const labels = r.ints([8], 0, 10);
    const step = (t: number) => {
      const { value, grads } = tf.variableGrads(() => {
        const h = ops.gelu(ops.layerNorm(tf.add(tf.matMul(x, w1), b1), gamma, beta, 1e-5));
        return ops.crossEntropyLoss(tf.matMul(h, w2), labels);
      }, vars);
      vars.forEach((v, i) => {
        const [p, mm, vv] = ops.adamwUpdate(v, grads[v.name]!, m[i]!, s[i]!, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: t });
        v.assign(p);
        tf.dispose([p, m[i]!, s[i]!]);
        m[i] = mm;
        s[i] = vv;
      });
      tf.dispose(grads);
      const loss = value.dataSync()[0]!;
      value.dispose();
      return loss;
    };
    const first = step(1);
    const tensors = tf.memory().numTensors;
    const mem = nativeMemory();
    let last = first;
    for (let t = 2; t <= 6; t++) last = step(t);
    expect(last).toBeLessThan(first);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(nativeMemory().bytes).toBe(mem.bytes);
    expect(nativeMemory().numDataIds).toBe(mem.numDataIds);
    tf.dispose([...vars, ...m, ...s, x, labels]);
  });

  it('is deterministic: identical inputs give bit-identical outputs', async () => {
    const build = (r: Rand) => {
      const a = r.floats([257, 129]), b = r.floats([129, 65]);
      const q = r.floats([2, 4, 70, 16]), k = r.floats([2, 2, 70, 16]), v = r.floats([2, 2, 70, 16]);
      const x = r.floats([300, 64]), g = r.floats([64]), be = r.floats([64]);
      const att = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.square(ops.attention(qq, kk, vv, { causal: true }))))([q, k, v]);
      const ln = tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(ops.layerNorm(xx, gg, bb))))([x, g, be]);
      return [tf.matMul(a, b), tf.sum(r.floats([100003])), tf.sum(x, 0), tf.unsortedSegmentSum(x, r.ints([300], 0, 7) as tf.Tensor1D, 7), ...att, ...ln];
    };
    const one = await runOn('vlmix-cpu', 21, build);
    const two = await runOn('vlmix-cpu', 21, build);
    expectClose(one, two, 0, 0, 'determinism');
  });
});
