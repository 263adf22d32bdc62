// Decoding with a KV cache encodes the prompt's image once: the vision tower's features are held by the cache
// (KVCache.hold) and reused at every step, with the same tokens as recomputing them (uncached decoding).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { generate } from '@vlmix/core';
import { makeShapesDataset } from '@vlmix/data';
import { VisionEncoderMixin } from '@vlmix/mixins';
import { createVlm } from '../src/index.js';

describe('generation encodes the image once', () => {
  for (const preset of ['typeA-tiny', 'typeB-tiny', 'typeC-tiny']) {
    it(`${preset}: one tower pass for 6 tokens; cached == uncached; no leak`, () => {
      const vlm = createVlm(preset, { seed: 3 });
      const s = makeShapesDataset({ seed: 4, train: 1, heldOut: 0 }).train[0]!;
      const batch = vlm.encode([{ image: s.image, question: s.question }], { withAnswer: false });
      const encode = VisionEncoderMixin.prototype.encode;
      let calls = 0;
      VisionEncoderMixin.prototype.encode = function (this: VisionEncoderMixin, ...a: Parameters<typeof encode>) {
        calls++;
        return encode.apply(this, a);
      };
      try {
        const run = (useCache: boolean) => generate(vlm.model, batch.ids[0]!, { maxNewTokens: 6, greedy: true, useCache, inputs: { media: batch.inputs.media, tokenTypes: batch.inputs.tokenTypes ?? null } });
        const before = tf.memory().numTensors;
        const cached = run(true);
        expect(calls).toBe(1);
        expect(tf.memory().numTensors).toBe(before);
        calls = 0;
        const plain = run(false);
        expect(calls).toBe(6);
        expect(cached.newTokens).toEqual(plain.newTokens);
      } finally {
        VisionEncoderMixin.prototype.encode = encode;
        tf.dispose(batch.tensors);
        vlm.dispose();
      }
    });
  }
});
