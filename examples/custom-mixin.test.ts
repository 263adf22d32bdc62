import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { IMAGE, buildModel, colourBatch, train } from './custom-mixin.js';

describe('examples/custom-mixin', () => {
  it('serves encodeMedia and wordEmbedding outermost, owns its parameter, and is removable', () => {
    const model = buildModel();
    const o = model.hookOrigins();
    expect(o.global.encodeMedia).toEqual(['colour', 'base']);
    expect(o.global.wordEmbedding).toEqual(['colour', 'base']);
    expect(o.layers[0]!.hooks.applyRotary).toEqual(['rope', 'base']);
    expect(o.layers[1]!.hooks.linear).toEqual(['base']);
    expect(model.params.counts().byComponent.colour).toBe(32 * 12);
    model.removeMixin('colour');
    expect(model.hookOrigins().global.wordEmbedding).toEqual(['base']);
    model.dispose();
  });

  it('changes logits only at and after the <image> token, and only when pixels are given', () => {
    const model = buildModel();
    const b = colourBatch([0, 2]);
    const withPx = model.forward({ inputIds: b.inputIds, media: { pixels: b.pixels } }).logits;
    const without = model.forward({ inputIds: b.inputIds }).logits;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(withPx, without)), [0, 2]).arraySync() as number[]);
    expect(diff[0]).toBe(0); // <bos> comes before the image: causal, untouched
    expect(diff[1]!).toBeGreaterThan(1e-3);
    expect(diff[2]!).toBeGreaterThan(1e-3);
    // Different colours give different logits at the image token.
    const rows = tf.tidy(() => tf.max(tf.abs(tf.sub(withPx.slice([0, 1, 0], [1, 1, -1]), withPx.slice([1, 1, 0], [1, 1, -1])))).dataSync()[0]!);
    expect(rows).toBeGreaterThan(1e-3);
    expect(IMAGE).toBe(3);
    tf.dispose([withPx, without, b.inputIds, b.pixels, b.targets]);
    model.dispose();
  });

  it('trains: the loss on the colour answers falls', async () => {
    const model = buildModel();
    const before = tf.memory().numTensors;
    const losses = await train(model, 25);
    expect(losses).toHaveLength(25);
    expect(losses.every(Number.isFinite)).toBe(true);
    // ln 3 is the best a model blind to the image can do on three equally likely colours.
    expect(losses[losses.length - 1]!).toBeLessThan(Math.log(3) / 2);
    expect(tf.memory().numTensors).toBe(before); // the example leaks nothing
    model.dispose();
  });
});
