// vlmix-cuda: availability reporting everywhere; on a GPU, device-specific checks (the op-parity and
// fused-kernel suites pick vlmix-cuda up automatically through helpers.NATIVE_BACKENDS).
import * as tf from '@tensorflow/tfjs';
import { ops } from '@vlmix/core';
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

  it('auto takes vlmix-cuda only when VLMIX_EXPERIMENTAL_CUDA=1 (not yet verified on a GPU)', async () => {
    const saved = process.env.VLMIX_EXPERIMENTAL_CUDA;
    delete process.env.VLMIX_EXPERIMENTAL_CUDA;
    const r = await useBackend('auto');
    expect(r.backend).not.toBe('vlmix-cuda');
    expect(r.reason).toMatch(/vlmix-cuda unavailable \(not verified on a GPU yet; set VLMIX_EXPERIMENTAL_CUDA=1/);
    if (saved != null) process.env.VLMIX_EXPERIMENTAL_CUDA = saved;
    await tf.setBackend(original);
  });

  it.skipIf(!info.available)('on a GPU with VLMIX_EXPERIMENTAL_CUDA=1: auto picks vlmix-cuda unless tfjs-node is installed', async () => {
    process.env.VLMIX_EXPERIMENTAL_CUDA = '1';
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

  it('gather out of range reports an error at the next read', async () => {
    await tf.setBackend('vlmix-cuda');
    const x = tf.ones([4, 3]);
    const i = tf.tensor1d([0, 7], 'int32');
    expect(() => tf.gather(x, i).dataSync()).toThrow(/index is out of range/);
    tf.dispose([x, i]);
  });
});
