// InternVL's pixel shuffle + mlp1 against the plain-torch reference (scripts/fixtures/internvl_pixel_shuffle.py).
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama, readSafetensorsFileSync } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { PixelShuffleProjectorMixin, internvlPixelShuffle, loadMixinPrefixed } from '../src/index.js';

const fx = (f: string) => readSafetensorsFileSync(fileURLToPath(new URL(`./fixtures/pixel_shuffle/${f}`, import.meta.url)));

describe('InternVL pixel shuffle connector', () => {
  it('pixel_shuffle and mlp1 equal the reference; mlp1.* names load; gradients by finite differences; no leaks', () => {
    const io = fx('io.safetensors');
    const feats = io.toTensor('features');
    const [b, n, c] = feats.shape as [number, number, number];
    assertClose(internvlPixelShuffle(tf.reshape(feats, [b, 4, 4, c])), io.toTensor('shuffled'), { atol: 0, name: 'pixel_shuffle' });
    const m = createLlama({ vocabSize: 32, hiddenSize: 12, numLayers: 1, numHeads: 2, seed: 0 });
    const mix = m.addMixin('connector', new PixelShuffleProjectorMixin({ imageTokenId: 30, inputSize: c }));
    const r = loadMixinPrefixed(m, 'connector', fx('weights.safetensors'), '');
    expect(r.loaded.length).toBe(6);
    assertClose(mix.imageTokens(feats), io.toTensor('tokens'), { atol: 1e-5, rtol: 1e-5, name: 'mlp1 tokens' });
    expect(n / 4).toBe(4); // 4x fewer tokens
    assertGradients((x) => internvlPixelShuffle(x!), [tf.randomNormal([1, 4, 2, 3], 0, 1, 'float32', 1)], { label: 'pixel shuffle' });
    assertNoLeak(() => mix.imageTokens(feats));
    expect(() => internvlPixelShuffle(tf.zeros([1, 3, 4, 2]))).toThrow('pixelShuffle: the 3x4 patch grid is not divisible by 2');
    m.dispose();
  });
});
