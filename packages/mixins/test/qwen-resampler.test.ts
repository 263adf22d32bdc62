// Qwen-VL's attn_pool resampler + ln_post + proj against torch (nn.MultiheadAttention, MAE sin-cos table;
// scripts/fixtures/qwen_resampler.py), loaded from the reference names.
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama, readSafetensorsFileSync } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { QwenResamplerMixin, loadMixinPrefixed, qwenSincos2d } from '../src/index.js';

const fx = (f: string) => readSafetensorsFileSync(fileURLToPath(new URL(`./fixtures/qwen_resampler/${f}`, import.meta.url)));

describe('Qwen-VL resampler', () => {
  it('the sin-cos table equals the reference pos_embed; tokens equal torch; names load; no leaks; errors name the sizes', () => {
    const w = fx('weights.safetensors');
    assertClose(tf.tensor2d(qwenSincos2d(2, 8), [4, 8]), w.toTensor('attn_pool.pos_embed'), { atol: 1e-6, name: 'pos_embed' });
    const m = createLlama({ vocabSize: 32, hiddenSize: 10, numLayers: 1, numHeads: 1, seed: 0 });
    const mix = m.addMixin('visual', new QwenResamplerMixin({ imageTokenId: 30, grid: 2, embedDim: 8, heads: 2, kvDim: 6 }));
    expect(loadMixinPrefixed(m, 'visual', w, '').loaded.length).toBe(14);
    const io = fx('io.safetensors');
    const feats = io.toTensor('features');
    assertClose(mix.imageTokens(feats), io.toTensor('tokens'), { atol: 1e-5, rtol: 1e-4, name: 'resampler tokens' });
    assertNoLeak(() => mix.imageTokens(feats));
    assertGradients((f) => mix.imageTokens(f!), [feats], { label: 'resampler wrt features' });
    expect(() => mix.imageTokens(tf.zeros([1, 9, 6]))).toThrow('qwen resampler: 9 patch features, expected the 2x2 grid of the queries (4)');
    expect(() => new QwenResamplerMixin({ imageTokenId: 30, grid: 2, embedDim: 6, heads: 4, kvDim: 6 })).toThrow('qwen resampler: embedDim 6 must be divisible by heads (4) and by 4');
    m.dispose();
  });

  it('gradients reach the queries and the attention weights (a training step changes the tokens)', () => {
    const m = createLlama({ vocabSize: 32, hiddenSize: 10, numLayers: 1, numHeads: 1, seed: 0 });
    const mix = m.addMixin('visual', new QwenResamplerMixin({ imageTokenId: 30, grid: 2, embedDim: 8, heads: 2, kvDim: 6 }));
    const feats = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 3);
    const vars = m.params.trainable().filter((p) => p.component === 'visual').map((p) => p.variable);
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(mix.imageTokens(feats))) as tf.Scalar, vars);
    for (const n of ['visual.attn_pool.query', 'visual.attn_pool.attn.in_proj_weight', 'visual.proj']) {
      const g = Object.entries(grads).find(([k]) => k.includes(n))?.[1];
      expect(g, n).toBeDefined();
      expect(tf.max(tf.abs(g!)).dataSync()[0]).toBeGreaterThan(0);
    }
    tf.dispose([feats, ...Object.values(grads)]);
    m.dispose();
  });
});
