// The chameleon preset end to end at toy size: the VQGAN pretrains (reconstruction falls), the LM's batches
// carry its codes, and the model samples an image through the taming decoder.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { makeShapesDataset } from '@vlmix/data';
import { Vqgan } from '@vlmix/mixins';
import { createVlm, pretrainImageTokenizer } from '../src/index.js';

describe('chameleon', () => {
  it('pretrains its VQGAN, encodes batches with its codes and generates a 32x32 image', () => {
    const vlm = createVlm('chameleon', { seed: 0 });
    expect(vlm.vq!.vae).toBeInstanceOf(Vqgan);
    const data = makeShapesDataset({ seed: 2, size: 32, train: 64, heldOut: 0 });
    const hist = pretrainImageTokenizer(vlm, data.train.map((x) => x.image), { steps: 30, batchSize: 16, seed: 0 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(hist.slice(-5).map((h) => h.reconLoss))).toBeLessThan(mean(hist.slice(0, 5).map((h) => h.reconLoss)));
    // the frozen tokenizer's codes are what the batch holds at the image positions
    const b = vlm.encode([{ image: data.train[0]!.image, question: data.train[0]!.question, answer: data.train[0]!.answer }]);
    const codes = Array.from(vlm.vq!.vae.encode(vlm.pixels([data.train[0]!.image])).dataSync()).map((c) => c + vlm.vq!.vocab.codeOffset);
    const ids = b.ids[0]!;
    const start = ids.indexOf(vlm.vq!.vocab.boiId) + 1;
    expect(ids.slice(start, start + 64)).toEqual(codes);
    tf.dispose(b.tensors);
    const g = vlm.generateImage({ seed: 1 });
    expect([g.image.width, g.image.height, g.tokens.length]).toEqual([32, 32, 65]);
    vlm.dispose();
  }, 120_000);
});
