import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { KVCache, Rng, createLlama, generate } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import {
  IMAGE_CODES, VqImageTokenizerMixin, VqTokenMixin, VqVae, checkVqVocab, codesToTokens, imageTokens, parseImageTokens, stopGradient, straightThrough,
  tokensToImages, vqTrainStep, type VqVocab,
} from '../src/image-tokenizer/vq.js';

const rng = new Rng('vq-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

const CODEBOOK = [[0, 0], [1, 0], [0, 2]];
let vqs: VqVae[] = [];
const make = (cfg: Partial<ConstructorParameters<typeof VqVae>[0]> = {}) => {
  const v = new VqVae({ hidden: [4], codebookSize: 3, codeDim: 2, seed: 1, ...cfg });
  vqs.push(v);
  return v;
};
afterEach(() => {
  vqs.forEach((v) => v.dispose());
  vqs = [];
});

describe('VQ quantisation', () => {
  it('picks the nearest code (hand-computed; ties go to the lower index)', () => {
    const vq = make();
    vq.params.get('quantize.embedding.weight').assign(tf.tensor2d(CODEBOOK));
    const z = tf.tensor4d([[[[0.4, 0.1], [0.9, 0.3], [0.2, 1.4], [0.5, 0]]]]);
    const q = vq.quantize(z);
    expect(Array.from(q.codes.dataSync())).toEqual([0, 1, 2, 0]);
    expect(q.codes.shape).toEqual([1, 1, 4]);
    expect(q.codes.dtype).toBe('int32');
    assertClose(q.zq, { shape: [1, 1, 4, 2], data: [0, 0, 1, 0, 0, 2, 0, 0] }, { atol: 1e-7, name: 'z_q' });
  });

  it('codebook and commitment losses and their gradients, hand-computed', () => {
    const vq = make({ beta: 0.25 });
    const E = tf.tensor2d(CODEBOOK);
    const z = tf.tensor4d([[[[0.4, 0.1], [0.9, 0.3], [0.2, 1.4]]]]);
    // z - z_q = (0.4, 0.1), (-0.1, 0.3), (0.2, -0.6): squared sum 0.67 over 6 elements
    const q = vq.withParams({ 'quantize.embedding.weight': E }, () => vq.quantize(z));
    expect(q.codebookLoss.dataSync()[0]).toBeCloseTo(0.67 / 6, 6);
    expect(q.commitmentLoss.dataSync()[0]).toBeCloseTo(0.25 * 0.67 / 6, 6);
    const grads = (which: 'codebookLoss' | 'commitmentLoss') =>
      tf.grads((zz, ee) => vq.withParams({ 'quantize.embedding.weight': ee! }, () => vq.quantize(zz!)[which]))([z, E]);
    const [dzCb, dECb] = grads('codebookLoss');
    assertClose(dzCb!, tf.zerosLike(z), { atol: 0, name: 'd codebook / dz = 0 (stop-gradient)' });
    // d/d e_k = sum over its points of 2 (e_k - z) / 6
    assertClose(dECb!, { shape: [3, 2], data: [-0.8, -0.2, 0.2, -0.6, -0.4, 1.2].map((d) => d / 6) }, { atol: 1e-6, name: 'd codebook / dE' });
    const [dzCm, dECm] = grads('commitmentLoss');
    assertClose(dzCm!, { shape: z.shape, data: [0.4, 0.1, -0.1, 0.3, 0.2, -0.6].map((d) => (0.25 * 2 * d) / 6) }, { atol: 1e-6, name: 'd commitment / dz' });
    assertClose(dECm!, tf.zerosLike(E), { atol: 0, name: 'd commitment / dE = 0' });
  });

  it('straight-through: value z_q, d out / d z = identity; stopGradient blocks', () => {
    const z = randn([2, 3]);
    const zq = randn([2, 3]);
    assertClose(straightThrough(z, zq), zq, { atol: 1e-6 });
    const P = randn([2, 3]);
    const [dz, dzq] = tf.grads((a, b) => tf.sum(tf.mul(straightThrough(a!, b!), P)))([z, zq]);
    assertClose(dz!, P, { atol: 0, rtol: 0, name: 'dz = upstream' });
    assertClose(dzq!, tf.zerosLike(zq), { atol: 0, name: 'dzq = 0' });
    const g = tf.grad((x) => tf.sum(tf.mul(stopGradient(x), x)))(z);
    assertClose(g, z, { atol: 0, name: 'd(sg(x) x)/dx = sg(x)' });
    // through the module: gradient of the quantised output w.r.t. the encoder input is non-zero
    const vq = make();
    const px = randn([1, 3, 4, 4]);
    const dpx = tf.grad((x) => tf.sum(vq.quantize(vq.encodeContinuous(x)).zq))(px);
    expect(tf.max(tf.abs(dpx)).dataSync()[0]).toBeGreaterThan(0);
  });
});

describe('VQ encoder / decoder', () => {
  it('shapes and PyTorch-layout parameter names', () => {
    const vq = make({ hidden: [4, 6], codebookSize: 5, codeDim: 3 });
    expect(vq.paramNames()).toEqual([
      'encoder.down.0.conv.weight', 'encoder.down.0.conv.bias', 'encoder.down.1.conv.weight', 'encoder.down.1.conv.bias',
      'quant_conv.weight', 'quant_conv.bias', 'quantize.embedding.weight', 'post_quant_conv.weight', 'post_quant_conv.bias',
      'decoder.up.0.conv.weight', 'decoder.up.0.conv.bias', 'decoder.up.1.conv.weight', 'decoder.up.1.conv.bias',
      'decoder.conv_out.weight', 'decoder.conv_out.bias',
    ]);
    expect(vq.params.get('encoder.down.1.conv.weight').shape).toEqual([6, 4, 4, 4]);
    expect(vq.params.get('decoder.up.0.conv.weight').shape).toEqual([4, 6, 3, 3]);
    expect(vq.params.get('decoder.conv_out.weight').shape).toEqual([3, 4, 3, 3]);
    const px = randn([2, 3, 8, 12]);
    expect(vq.encodeContinuous(px).shape).toEqual([2, 2, 3, 3]);
    const codes = vq.encode(px);
    expect(codes.shape).toEqual([2, 2, 3]);
    expect(vq.decode(codes).shape).toEqual([2, 3, 8, 12]);
    const l = vq.loss(px);
    expect(l.recon.shape).toEqual([2, 3, 8, 12]);
    expect(l.loss.dataSync()[0]).toBeCloseTo(l.reconLoss.dataSync()[0]! + l.codebookLoss.dataSync()[0]! + l.commitmentLoss.dataSync()[0]!, 5);
  });

  it('finite-difference gradients: encoder w.r.t. pixels and weights, decoder w.r.t. latents and weights', () => {
    const vq = make({ hidden: [3, 4], codebookSize: 4, codeDim: 2 });
    const px = randn([1, 3, 4, 4]);
    const w0 = vq.params.get('encoder.down.0.conv.weight').clone();
    const qc = vq.params.get('quant_conv.weight').clone();
    assertGradients((x, w, q) => vq.withParams({ 'encoder.down.0.conv.weight': w!, 'quant_conv.weight': q! }, () => vq.encodeContinuous(x!)), [px, w0, qc], { label: 'encoder', maxChecks: 24 });
    const zq = randn([1, 1, 1, 2]);
    const up = vq.params.get('decoder.up.1.conv.weight').clone();
    const out = vq.params.get('decoder.conv_out.bias').clone();
    assertGradients((z, w, b) => vq.withParams({ 'decoder.up.1.conv.weight': w!, 'decoder.conv_out.bias': b! }, () => vq.decodeLatent(z!)), [zq, up, out], { label: 'decoder', maxChecks: 24 });
    // reconstruction loss w.r.t. a decoder weight, through quantisation (codes do not change under the perturbation)
    const pq = vq.params.get('post_quant_conv.weight').clone();
    assertGradients((w) => vq.withParams({ 'post_quant_conv.weight': w! }, () => vq.loss(px).reconLoss), [pq], { label: 'recon loss' });
  });

  it('a few training steps lower the reconstruction loss on a tiny synthetic set (seeded)', () => {
    const vq = make({ hidden: [8], codebookSize: 8, codeDim: 4, seed: 7 });
    // 8 images 8x8 made of four 4x4 cells, each one of four palette colours
    const r = new Rng('vq-data');
    const palette = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]];
    const data = new Float32Array(8 * 3 * 8 * 8);
    for (let n = 0; n < 8; n++) {
      const cells = [0, 1, 2, 3].map(() => palette[r.int(4)]!);
      for (let c = 0; c < 3; c++) for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) {
        data[((n * 3 + c) * 8 + y) * 8 + x] = cells[(y >> 2) * 2 + (x >> 2)]![c]!;
      }
    }
    const px = tf.tensor4d(data, [8, 3, 8, 8]);
    vq.initCodebookFromData(px, 1);
    expect(new Set(vq.encode(px).dataSync()).size).toBeGreaterThan(3);
    const opt = tf.train.adam(0.01);
    const first = vqTrainStep(vq, opt, px);
    let last = first;
    for (let i = 0; i < 30; i++) last = vqTrainStep(vq, opt, px);
    expect(Number.isFinite(last.loss)).toBe(true);
    expect(last.reconLoss).toBeLessThan(0.8 * first.reconLoss);
    assertNoLeak(() => vqTrainStep(vq, opt, px), { label: 'vq train step' });
    opt.dispose();
  });

  it('does not leak: loss, encode, decode', () => {
    const vq = make({ hidden: [4, 4], codebookSize: 6, codeDim: 3 });
    const px = randn([2, 3, 4, 8]);
    assertNoLeak(() => vq.loss(px), { label: 'vq loss' });
    assertNoLeak(() => vq.encode(px), { label: 'vq encode' });
    const codes = vq.encode(px);
    assertNoLeak(() => vq.decode(codes), { label: 'vq decode' });
    assertNoLeak(() => tf.grads((x) => vq.loss(x!).loss)([px]), { label: 'vq grads' });
  });

  it('clear errors', () => {
    expect(() => new VqVae({ hidden: [], codebookSize: 4, codeDim: 2 })).toThrow(/vq\.hidden: expected a non-empty array/);
    expect(() => new VqVae({ hidden: [4], codebookSize: 0, codeDim: 2 })).toThrow(/vq\.codebookSize: expected a positive integer, got 0/);
    const vq = make({ hidden: [4, 4] });
    expect(() => vq.encode(tf.zeros([1, 3, 6, 8]))).toThrow(/multiples of 4 \(the tokenizer's downsampling factor\), got 6x8/);
    expect(() => vq.encode(tf.zeros([1, 8, 8, 3]))).toThrow(/pixels: expected shape \[B, 3, H, W\] \(NCHW\), got \[1, 8, 8, 3\]/);
    expect(() => vq.decode(tf.tensor3d([[[0, 3]]], undefined, 'int32'))).toThrow(/codes: expected values in \[0, 3\), got values in \[0, 3\]/);
    expect(() => vq.decode(tf.tensor3d([[[0, 1]]]))).toThrow(/codes: expected dtype int32, got float32/);
    expect(() => vq.quantize(tf.zeros([1, 3]))).toThrow(/z: expected last dimension 2/);
  });

  it('can live in a model\'s ParamStore under a prefix', async () => {
    const { Model } = await import('@vlmix/core');
    const m = new Model({ vocabSize: 8, hiddenSize: 8, numLayers: 1, numHeads: 1 });
    const vq = new VqVae({ hidden: [2], codebookSize: 3, codeDim: 2 }, { params: m.params, prefix: 'vq_tokenizer' });
    expect(m.hasParam('vq_tokenizer.quantize.embedding.weight')).toBe(true);
    expect(vq.variables()).toHaveLength(vq.paramNames().length);
    vq.dispose();
    expect(m.hasParam('vq_tokenizer.quantize.embedding.weight')).toBe(false);
    m.dispose();
  });
});

describe('VQ vocabulary mapping', () => {
  const vocab: VqVocab = { codeOffset: 22, codebookSize: 8, boiId: 20, eoiId: 21 };

  it('checks the vocabulary layout', () => {
    expect(() => checkVqVocab(vocab, 30)).not.toThrow();
    expect(() => checkVqVocab(vocab, 29)).toThrow(/ids up to 29 do not fit the LM vocabulary of 29/);
    expect(() => checkVqVocab({ ...vocab, boiId: 25 })).toThrow(/vqVocab\.boiId: 25 lies inside the code range \[22, 30\)/);
    expect(() => checkVqVocab({ ...vocab, eoiId: 20 })).toThrow(/boiId and eoiId must differ/);
  });

  it('image tokens and parsing; malformed spans name position and value', () => {
    expect(imageTokens([0, 7, 3], vocab)).toEqual([20, 22, 29, 25, 21]);
    expect(() => imageTokens([8], vocab)).toThrow(/codes\[0\]: expected an integer code in \[0, 8\), got 8/);
    const seq = [1, 2, 20, 22, 23, 21, 5, 20, 29, 29, 21];
    expect(parseImageTokens(seq, vocab)).toEqual({ codes: [[0, 1], [7, 7]], spans: [{ start: 2, end: 5 }, { start: 7, end: 10 }] });
    expect(() => parseImageTokens([20, 22, 5, 21], vocab)).toThrow(/position 2: token 5 is not an image code \(expected \[22, 30\) or <eoi> 21\)/);
    expect(() => parseImageTokens([20, 22, 20], vocab)).toThrow(/position 2: <boi> \(20\) inside the image span opened at position 0/);
    expect(() => parseImageTokens([3, 21], vocab)).toThrow(/position 1: <eoi> \(21\) without an open image span/);
    expect(() => parseImageTokens([20, 22, 23], vocab)).toThrow(/opened at position 0 is not closed by <eoi> \(21\); 2 codes so far/);
    expect(() => parseImageTokens([20, 22, 21], vocab, { tokensPerImage: 4 })).toThrow(/positions 0\.\.2 has 1 codes, expected 4/);
  });

  it('round trip: encode -> tokens -> parse -> decode equals decode(encode(x))', () => {
    const vq = make({ hidden: [4, 4], codebookSize: 8, codeDim: 3 });
    const px = randn([2, 3, 8, 8]);
    const codes = vq.encode(px);
    const toks = codesToTokens(codes, vocab);
    expect(toks[0]).toHaveLength(2 + 4);
    const seq = [7, ...toks[0]!, 3, 4, ...toks[1]!];
    const parsed = parseImageTokens(seq, vocab, { tokensPerImage: 4 });
    expect(parsed.codes.flat()).toEqual(Array.from(codes.dataSync()));
    const imgs = tokensToImages(vq, seq, vocab, [2, 2]);
    assertClose(imgs, vq.decode(codes), { atol: 0, rtol: 0, name: 'decoded images' });
    expect(() => tokensToImages(vq, [1, 2], vocab, [2, 2])).toThrow(/no <boi> \.\.\. <eoi> span/);
  });
});

describe('VqTokenMixin: constrained generation', () => {
  const vocab: VqVocab = { codeOffset: 22, codebookSize: 8, boiId: 20, eoiId: 21 };
  const isCode = (t: number) => t >= 22 && t < 30;

  it('classifies positions (outside / codes only / eoi only), carrying state across chunks', () => {
    const mx = new VqTokenMixin({ vocab, tokensPerImage: 2 });
    const { cls, end } = mx.classify([[1, 20, 22, 23, 21, 4]]);
    expect(Array.from(cls)).toEqual([0, 1, 1, 2, 0, 0]);
    const a = mx.classify([[1, 20, 22]]);
    const b = mx.classify([[23, 21]], a.end);
    expect([...a.cls, ...b.cls]).toEqual([0, 1, 1, 2, 0]);
    expect(end).toEqual([{ open: false, count: 2, row: 2 }]);
  });

  it('with an end-of-line token (Emu3): <eol> after every row, the last included; tokens, parsing and generation agree', () => {
    const ev: VqVocab = { ...vocab, eolId: 19 };
    // 2x2 codes: <boi> c c <eol> c c <eol> <eoi>
    expect(imageTokens([1, 2, 3, 4], ev, 2)).toEqual([20, 23, 24, 19, 25, 26, 19, 21]);
    expect(parseImageTokens([5, 20, 23, 24, 19, 25, 26, 19, 21], ev, { tokensPerImage: 4, rowLength: 2 }).codes).toEqual([[1, 2, 3, 4]]);
    expect(() => parseImageTokens([20, 23, 24, 25, 19, 26, 19, 21], ev, { rowLength: 2 })).toThrow('image tokens: position 3: a row of 2 codes must end with <eol> (19)');
    expect(() => parseImageTokens([20, 23, 19, 24, 25, 19, 21], ev, { rowLength: 2 })).toThrow('image tokens: position 2: <eol> after 1 codes in the row, expected 2');
    expect(() => imageTokens([1, 2, 3], ev, 2)).toThrow('imageTokens: with vocab.eolId the row length must be a positive divisor of the 3 codes, got 2');
    expect(() => checkVqVocab({ ...ev, eolId: 21 })).toThrow('vqVocab: eolId 21 must differ from boiId 20 and eoiId 21');
    expect(() => checkVqVocab({ ...ev, eolId: 24 })).toThrow('vqVocab.eolId: 24 lies inside the code range [22, 30)');
    expect(() => new VqTokenMixin({ vocab: ev, tokensPerImage: 4 })).toThrow('vqToken.rowLength: with vocab.eolId expected a positive divisor of tokensPerImage 4, got undefined');
    const mx = new VqTokenMixin({ vocab: ev, tokensPerImage: 4, rowLength: 2 });
    // classes for the token after each position: 1 codes, 3 <eol>, 2 <eoi>, 0 outside
    expect(Array.from(mx.classify([[1, 20, 23, 24, 19, 25, 26, 19, 21]]).cls)).toEqual([0, 1, 1, 3, 1, 1, 3, 2, 0]);
    const m = createLlama({ vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, maxSeqLen: 64, seed: 5 });
    try {
      m.addMixin('vqtok', mx);
      for (const useCache of [true, false]) {
        const g = generate(m, [[1, 2, 20]], { maxNewTokens: 8, temperature: 1.3, seed: 7, useCache }).newTokens[0]!;
        expect(g.slice(0, 7).map((t) => (isCode(t) ? 'c' : t))).toEqual(['c', 'c', 19, 'c', 'c', 19, 21]);
        expect(parseImageTokens([20, ...g], ev, { tokensPerImage: 4, rowLength: 2 }).codes[0]!.length).toBe(4);
      }
    } finally {
      m.dispose();
    }
  });

  it('inside <boi> only codes then <eoi> are generated; cached == uncached; the result decodes', () => {
    const m = createLlama({ vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, maxSeqLen: 64, seed: 4 });
    try {
      expect(() => m.addMixin('vqtok', new VqTokenMixin({ vocab: { ...vocab, codebookSize: 16 }, tokensPerImage: 4 }))).toThrow(/do not fit the LM vocabulary of 30/);
      m.addMixin('vqtok', new VqTokenMixin({ vocab, tokensPerImage: 4 }));
      const prompts = [[1, 2, 3, 20], [5, 6, 7, 8]];
      const a = generate(m, prompts, { maxNewTokens: 9, greedy: true, useCache: true });
      const b = generate(m, prompts, { maxNewTokens: 9, greedy: true, useCache: false });
      expect(a.sequences).toEqual(b.sequences);
      const s = a.newTokens[0]!;
      expect(s.slice(0, 4).every(isCode)).toBe(true);
      expect(s[4]).toBe(21);
      expect(s.slice(5).some((t) => isCode(t) || t === 21)).toBe(false);
      expect(a.newTokens[1]!.some((t) => isCode(t) || t === 21)).toBe(false);
      // sampling too
      const c = generate(m, prompts, { maxNewTokens: 9, temperature: 1.5, seed: 3 });
      expect(c.newTokens[0]!.slice(0, 4).every(isCode)).toBe(true);
      expect(c.newTokens[0]![4]).toBe(21);
      const vq = make({ hidden: [4, 4], codebookSize: 8, codeDim: 3 });
      const img = tokensToImages(vq, a.sequences[0]!, vocab, [2, 2]);
      expect(img.shape).toEqual([1, 3, 8, 8]);
      // training passes are unmasked by default
      const ids = tf.tensor2d([[1, 20, 22]], undefined, 'int32');
      const lt = m.forward({ inputIds: ids }, { training: true }).logits;
      expect(tf.min(lt).dataSync()[0]).toBeGreaterThan(-1e3);
      assertNoLeak(() => m.forward({ inputIds: ids }).logits, { label: 'vq token mixin forward' });
      assertNoLeak(() => {
        const cache = new KVCache(2);
        m.forward({ inputIds: ids, cache }).logits.dispose();
        m.forward({ inputIds: [[23]], cache }).logits.dispose();
        cache.dispose();
      }, { label: 'vq token mixin cached' });
    } finally {
      m.dispose();
    }
  });
});

describe('VqImageTokenizerMixin: the image tokenizer in a model', () => {
  it('owns a VqVae in the model (component = its name) and serves encodeMedia: pixels -> IMAGE_CODES', () => {
    const m = createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 1, numHeads: 2, seed: 2 });
    try {
      const mixin = new VqImageTokenizerMixin({ vq: { hidden: [4], codebookSize: 3, codeDim: 2 } });
      expect(() => mixin.vae).toThrow(/VqImageTokenizerMixin: not attached to a model yet; its VQ-VAE is built by model.addMixin/);
      m.addMixin('tok', mixin);
      expect(m.hookOrigins().global.encodeMedia).toEqual(['tok', 'base']);
      expect(m.params.param('tok.quantize.embedding.weight').component).toBe('tok');
      const px = randn([2, 3, 4, 4]);
      const codes = m.encodeMedia({ pixels: px }, 2).require(IMAGE_CODES, 'test');
      expect(codes.shape).toEqual([2, 2, 2]);
      expect(Array.from(codes.dataSync())).toEqual(Array.from(mixin.vae.encode(px).dataSync()));
      expect(m.encodeMedia({}, 2).has(IMAGE_CODES)).toBe(false); // no pixels: nothing to encode
      m.removeMixin('tok');
      expect(m.params.names().some((n) => n.startsWith('tok.'))).toBe(false);
    } finally {
      m.dispose();
    }
  });
});
