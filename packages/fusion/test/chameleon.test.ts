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

describe('emu3', () => {
  it('its image spans end every row of codes with <eol> (h * (w + 1) tokens); generation emits <eol> at row ends', () => {
    const vlm = createVlm('emu3', { seed: 0 });
    const { vocab } = vlm.vq!;
    expect(vocab.eolId).toBe(vlm.tokenizer.special['<eol>']);
    const data = makeShapesDataset({ seed: 3, size: 32, train: 2, heldOut: 0 });
    const s = data.train[0]!;
    const b = vlm.encode([{ image: s.image, question: s.question, answer: s.answer }]);
    const codes = Array.from(vlm.vq!.vae.encode(vlm.pixels([s.image])).dataSync()).map((c) => c + vocab.codeOffset);
    const ids = b.ids[0]!;
    const start = ids.indexOf(vocab.boiId) + 1;
    const want: number[] = [];
    for (let r = 0; r < 8; r++) want.push(...codes.slice(r * 8, (r + 1) * 8), vocab.eolId!);
    expect(ids.slice(start, start + 72)).toEqual(want);
    expect(ids[start + 72]).toBe(vocab.eoiId);
    tf.dispose(b.tensors);
    const g = vlm.generateImage({ seed: 1 });
    expect([g.image.width, g.image.height, g.tokens.length]).toEqual([32, 32, 73]);
    g.tokens.slice(0, 72).forEach((t, i) => expect(t === vocab.eolId).toBe(i % 9 === 8));
    expect(g.tokens[72]).toBe(vocab.eoiId);
    vlm.dispose();
  }, 120_000);
});
