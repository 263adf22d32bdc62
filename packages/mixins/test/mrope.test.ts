import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ForwardState, KVCache, Mixin, Model, Rng, StateMap, createLlama, generate, rotaryAngles, rotaryInvFreq, type ForwardContext } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { CACHE_ROPE_DELTAS, MRopeMixin, applyMultimodalRotary, getRopeIndex, mropeAxisCosSin, mropeChannelAxes, mropeCosSin } from '../src/positions/mrope.js';

const FIX = join(import.meta.dirname, 'fixtures', 'mrope');
const rng = new Rng('mrope-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

// llama-tiny shape (headDim 16) with a small vocab; image token 30, video token 31.
const IMG = 30;
const VID = 31;
const tiny = () => createLlama({ vocabSize: 40, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 48, maxSeqLen: 64, seed: 9 });
const mrope = (o: Partial<ConstructorParameters<typeof MRopeMixin>[0]> = {}) =>
  new MRopeMixin({ mropeSection: [2, 3, 3], imageTokenId: IMG, videoTokenId: VID, ...o });

/** Masks the placeholder logits so generation never emits an image/video token. */
class NoPlaceholders extends Mixin {
  hooks() {
    return {
      finalForward: (h: tf.Tensor, ctx: ForwardContext, next: (h: tf.Tensor, ctx: ForwardContext) => tf.Tensor) => {
        const logits = next(h, ctx);
        const v = logits.shape[2]!;
        const bias = tf.tensor1d(Array.from({ length: v }, (_, i) => (i === IMG || i === VID ? -1e9 : 0)));
        return tf.add(logits, bias);
      },
    };
  }
}

let models: Model[] = [];
const track = (m: Model) => (models.push(m), m);
afterEach(() => {
  models.forEach((m) => m.dispose());
  models = [];
});

/** [3, B, T] rows as nested arrays for readable expectations. */
function axes(idx: ReturnType<typeof getRopeIndex>): number[][][] {
  const [, B, T] = idx.shape;
  return [0, 1, 2].map((a) => Array.from({ length: B }, (_, b) => Array.from(idx.positionIds.slice((a * B + b) * T, (a * B + b + 1) * T))));
}

describe('M-RoPE vs the HF Qwen2-VL fixture', () => {
  const fx = loadFixtureSync(FIX);
  const t = (n: string) => fx.io.toTensor(n);

  it('inv_freq, per-axis cos/sin (1e-5)', () => {
    const inv = rotaryInvFreq(16, 10000);
    assertClose(inv, fx.io.toFloat32('inv_freq'), { atol: 1e-7, rtol: 1e-6, name: 'inv_freq' });
    const ang = rotaryAngles(t('position_ids'), inv); // [3, B, T, 8]
    const emb = tf.concat([ang, ang], -1);
    assertClose(tf.cos(emb), t('cos'), { atol: 1e-5, rtol: 0, name: 'cos' });
    assertClose(tf.sin(emb), t('sin'), { atol: 1e-5, rtol: 0, name: 'sin' });
    // the exported helper gives the same [3, B, T, D] per-axis cos/sin (Qwen2VLRotaryEmbedding's output)
    const axis = mropeAxisCosSin(t('position_ids'), inv);
    assertClose(axis.cos, t('cos'), { atol: 1e-5, rtol: 0, name: 'mropeAxisCosSin cos' });
    assertClose(axis.sin, t('sin'), { atol: 1e-5, rtol: 0, name: 'mropeAxisCosSin sin' });
    expect(() => mropeAxisCosSin(tf.zeros([2, 1, 4], 'int32'), inv)).toThrow(/positionIds: expected shape \[3, B, T\], got \[2, ?1, ?4\]/);
  });

  it('section-merged cos/sin and q/k embeddings (1e-4)', () => {
    const inv = rotaryInvFreq(16, 10000);
    const { cos, sin } = mropeCosSin(t('position_ids'), inv, [2, 3, 3]);
    assertClose(cos, t('cos_merged'), { atol: 1e-5, rtol: 0, name: 'cos_merged' });
    assertClose(sin, t('sin_merged'), { atol: 1e-5, rtol: 0, name: 'sin_merged' });
    const [qe, ke] = applyMultimodalRotary(t('q'), t('k'), cos, sin);
    assertClose(qe, t('q_embed'), { atol: 1e-4, rtol: 0, name: 'q_embed' });
    assertClose(ke, t('k_embed'), { atol: 1e-4, rtol: 0, name: 'k_embed' });
  });

  it('the mixin hook reproduces q_embed/k_embed from [3, B, T] positionIds', () => {
    const m = new Model({ vocabSize: 8, hiddenSize: 32, numLayers: 1, numHeads: 2, positionEmbedding: 'none' });
    try {
      m.addMixin('mrope', new MRopeMixin({ mropeSection: [2, 3, 3] }));
      const impl = m.getMixin<MRopeMixin>('mrope').hooks().applyRotary!;
      const ctx = { positionIds: t('position_ids'), state: new ForwardState(StateMap.empty) } as unknown as ForwardContext;
      const [qe, ke] = impl(t('q'), t('k'), ctx, null as never);
      assertClose(qe, t('q_embed'), { atol: 1e-4, rtol: 0, name: 'q_embed (hook)' });
      assertClose(ke, t('k_embed'), { atol: 1e-4, rtol: 0, name: 'k_embed (hook)' });
    } finally {
      m.dispose();
    }
  });
});

describe('channel sections', () => {
  it('mropeSection * 2 over (t, h, w)', () => {
    expect(Array.from(mropeChannelAxes([2, 3, 3], 16))).toEqual([0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(() => mropeChannelAxes([2, 3, 2], 16)).toThrow(/must sum to headDim \/ 2 = 8, got \[2,3,2\] \(sum 7\)/);
    expect(() => mropeChannelAxes([2, 3] as never, 10)).toThrow(/three non-negative integers/);
  });
});

describe('getRopeIndex (Qwen2-VL get_rope_index)', () => {
  it('text-only: arange on all axes, delta 0; with padding: cumsum - 1, pads at 1', () => {
    const idx = getRopeIndex({ inputIds: [[5, 6, 7, 8]] });
    expect(axes(idx)).toEqual([[[0, 1, 2, 3]], [[0, 1, 2, 3]], [[0, 1, 2, 3]]]);
    expect(idx.ropeDeltas).toEqual([0]);
    const pad = getRopeIndex({ inputIds: [[0, 0, 6, 7], [5, 6, 7, 8]], attentionMask: [[0, 0, 1, 1], [1, 1, 1, 1]] });
    expect(axes(pad)[0]).toEqual([[1, 1, 0, 1], [0, 1, 2, 3]]);
    expect(pad.ropeDeltas).toEqual([-2, 0]);
  });

  it('an image (grid 1x4x4, merge 2) and a video (grid 2x2x4) between text, hand-computed', () => {
    //          a  b  vs  img img img img ve  c  vs  vid vid vid vid  d
    const ids = [1, 2, 3, IMG, IMG, IMG, IMG, 4, 5, 3, VID, VID, VID, VID, 6];
    const idx = getRopeIndex({ inputIds: [ids], imageGridThw: [[1, 4, 4]], videoGridThw: [[2, 2, 4]], spatialMergeSize: 2, imageTokenId: IMG, videoTokenId: VID });
    const [t, h, w] = axes(idx).map((a) => a[0]);
    // text 0..2; image at st=3: t=3, h=3+[0,0,1,1], w=3+[0,1,0,1]; then text 5, 6, 7; video st=8: t=8+[0,0,1,1], h=8, w=8+[0,1,0,1]; then 10
    expect(t).toEqual([0, 1, 2, 3, 3, 3, 3, 5, 6, 7, 8, 8, 9, 9, 10]);
    expect(h).toEqual([0, 1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 8, 8, 8, 10]);
    expect(w).toEqual([0, 1, 2, 3, 4, 3, 4, 5, 6, 7, 8, 9, 8, 9, 10]);
    expect(idx.ropeDeltas).toEqual([11 - 15]);
  });

  it('grids are consumed in order across the batch', () => {
    const idx = getRopeIndex({ inputIds: [[1, IMG, 2], [IMG, IMG, IMG]], imageGridThw: [[1, 1, 1], [1, 1, 3]], spatialMergeSize: 1, imageTokenId: IMG });
    expect(axes(idx)[2]).toEqual([[0, 1, 2], [0, 1, 2]]);
    expect(axes(idx)[1]).toEqual([[0, 1, 2], [0, 0, 0]]);
    expect(idx.ropeDeltas).toEqual([0, 0]);
  });

  it('no grids given: HF fallback, placeholders count as text (arange / cumsum - 1, padding 1, delta from the row max incl. padding)', () => {
    const plain = getRopeIndex({ inputIds: [[1, IMG, IMG, 2], [IMG, 3, 4, 5]], imageTokenId: IMG });
    expect(axes(plain)).toEqual([0, 1, 2].map(() => [[0, 1, 2, 3], [0, 1, 2, 3]]));
    expect(plain.ropeDeltas).toEqual([0, 0]);
    // torch: m = [[0,0,1,1],[0,0,0,1],[1,1,1,1]]; p = m.cumsum(-1) - 1; p.masked_fill_(m == 0, 1)
    // -> [[1,1,0,1],[1,1,1,0],[0,1,2,3]]; deltas = p.max(-1) + 1 - 4 = [-2, -2, 0]
    const masked = getRopeIndex({
      inputIds: [[0, 0, IMG, 7], [0, 0, 0, IMG], [5, IMG, IMG, 8]], imageTokenId: IMG,
      attentionMask: [[0, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]],
    });
    expect(axes(masked)[1]).toEqual([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 2, 3]]);
    expect(masked.ropeDeltas).toEqual([-2, -2, 0]);
  });

  it('errors name the argument, the position and the counts', () => {
    expect(() => getRopeIndex({ inputIds: [[1, IMG, IMG]], imageGridThw: [], imageTokenId: IMG })).toThrow(/imageGridThw: row 0 has a image placeholder at position 1 but only 0 image grid\(s\)/);
    expect(() => getRopeIndex({ inputIds: [[1, IMG, IMG]], imageGridThw: [[1, 4, 4]], imageTokenId: IMG })).toThrow(/position 1 \(grid \[1, 4, 4\], merge 2\) needs 4 placeholder tokens, found 2/);
    expect(() => getRopeIndex({ inputIds: [[1, IMG]], imageGridThw: [[1, 3, 2]], imageTokenId: IMG })).toThrow(/imageGridThw\[0\]: .*divisible by spatialMergeSize 2, got \[1,3,2\]/);
    expect(() => getRopeIndex({ inputIds: [[1, 2]], imageGridThw: [[1, 2, 2]], imageTokenId: IMG })).toThrow(/1 grid\(s\) given but 0 image\(s\) found/);
  });
});

describe('MRopeMixin in a model', () => {
  const IDS = [[1, 5, 7, 2, 9, 11, 4, 8], [3, 3, 8, 0, 1, 29, 12, 6]];

  it('clash with rope names both mixins; override: true takes applyRotary over', () => {
    const m = track(tiny());
    expect(() => m.addMixin('mrope', mrope())).toThrow(/'applyRotary' is already served by mixin 'rope'; mixin 'mrope' cannot also serve it/);
    expect(m.hasMixin('mrope')).toBe(false);
    m.addMixin('mrope', mrope({ override: true }));
    expect(m.hookOrigins().layers[0]!.hooks.applyRotary).toEqual(['mrope', 'rope', 'base']);
  });

  it('text-only input: logits equal 1-D RoPE (rope removed, or overridden)', () => {
    const m = track(tiny());
    const ref = m.forward({ inputIds: IDS }).logits;
    m.addMixin('mrope', mrope({ override: true }));
    assertClose(m.forward({ inputIds: IDS }).logits, ref, { atol: 1e-6, rtol: 1e-5, name: 'mrope (override) vs rope' });
    m.removeMixin('mrope');
    m.removeMixin('rope');
    m.addMixin('mrope', mrope());
    assertClose(m.forward({ inputIds: IDS }).logits, ref, { atol: 1e-6, rtol: 1e-5, name: 'mrope vs rope' });
  });

  it('explicit [3, B, T] positionIds are used; equal t/h/w = 1-D positions', () => {
    const m = track(tiny());
    const pos2 = tf.tensor2d([[0, 2, 3, 5, 6, 9, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8]], undefined, 'int32');
    const ref = m.forward({ inputIds: IDS, positionIds: pos2 }).logits;
    m.removeMixin('rope');
    m.addMixin('mrope', mrope());
    const pos3 = tf.stack([pos2, pos2, pos2]);
    assertClose(m.forward({ inputIds: IDS, positionIds: pos3 }).logits, ref, { atol: 1e-6, rtol: 1e-5 });
    expect(() => m.forward({ inputIds: IDS, positionIds: tf.zeros([3, 2, 5], 'int32') })).toThrow(/positionIds: expected shape \[3, 2, 8\], got \[3, 2, 5\]/);
  });

  it('image positions change the output vs treating the placeholders as text', () => {
    const m = track(tiny());
    m.removeMixin('rope');
    m.addMixin('mrope', mrope());
    const ids = [[1, 2, IMG, IMG, IMG, IMG, 5, 6]];
    const a = m.forward({ inputIds: ids, media: { imageGridThw: [[1, 4, 4]] } }).logits;
    const b = m.forward({ inputIds: ids, positionIds: tf.tile(tf.range(0, 8, 1, 'int32').reshape([1, 1, 8]), [3, 1, 1]) }).logits;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-4);
    expect(() => m.forward({ inputIds: ids })).toThrow(/imageGridThw/);
  });

  it('decoding with a cache: rope deltas stored at prefill; cached == uncached logits and generation', () => {
    const m = track(tiny());
    m.removeMixin('rope');
    m.addMixin('mrope', mrope());
    const ids = [[1, 2, IMG, IMG, IMG, IMG, 5, 6], [7, IMG, IMG, IMG, IMG, IMG, IMG, 8]];
    const media = { imageGridThw: [[1, 4, 4], [1, 4, 6]] };
    const full = [[...ids[0]!, 9, 10, 11], [...ids[1]!, 12, 13, 14]];
    const ref = m.forward({ inputIds: full, media }).logits;
    const cache = new KVCache(m.config.numLayers);
    const parts = [m.forward({ inputIds: ids, media, cache }).logits];
    expect(cache.meta.get(CACHE_ROPE_DELTAS)).toEqual([-2, -3]);
    for (let s = 8; s < 11; s++) parts.push(m.forward({ inputIds: full.map((r) => r.slice(s, s + 1)), media, cache }).logits);
    assertClose(tf.concat(parts, 1), ref, { atol: 1e-5, rtol: 1e-4, name: 'cached vs full' });
    cache.dispose();
    // generated tokens must be text: forbid the placeholder ids (their grids are part of the prompt only)
    m.addMixin('noMedia', new NoPlaceholders());
    const a = generate(m, ids, { maxNewTokens: 6, greedy: true, useCache: true, inputs: { media } });
    const b = generate(m, ids, { maxNewTokens: 6, greedy: true, useCache: false, inputs: { media } });
    expect(a.sequences).toEqual(b.sequences);
  });

  it('gradients through the applyRotary hook (finite differences) and no leaks', () => {
    const m = track(tiny());
    m.removeMixin('rope');
    m.addMixin('mrope', mrope());
    const impl = m.getMixin<MRopeMixin>('mrope').hooks().applyRotary!;
    const pos = tf.tensor3d([[[0, 1, 2]], [[0, 1, 1]], [[0, 0, 2]]], undefined, 'int32');
    const q = randn([1, 2, 3, 16]);
    const k = randn([1, 1, 3, 16]);
    const f = (q: tf.Tensor, k: tf.Tensor) => {
      const ctx = { positionIds: pos, state: new ForwardState(StateMap.empty) } as unknown as ForwardContext;
      const [a, b] = impl(q, k, ctx, null as never);
      return tf.concat([a.reshape([-1]), b.reshape([-1])]);
    };
    assertGradients((q, k) => f(q!, k!), [q, k], { label: 'mrope grads' });
    const ids = [[1, 2, IMG, IMG, IMG, IMG, 5, 6]];
    const media = { imageGridThw: [[1, 4, 4]] };
    assertNoLeak(() => m.forward({ inputIds: ids, media }).logits, { label: 'mrope forward' });
    const labels = tf.tensor2d([[2, IMG, -100, -100, -100, 5, 6, -100]], undefined, 'int32');
    const opt = tf.train.sgd(0.1);
    const vars = m.params.trainable().map((p) => p.variable);
    assertNoLeak(() => opt.minimize(() => m.loss({ inputIds: ids, media }, labels), true, vars), { label: 'mrope train step' });
    assertNoLeak(() => {
      const c = new KVCache(m.config.numLayers);
      m.forward({ inputIds: ids, media, cache: c }).logits.dispose();
      m.forward({ inputIds: [[3]], media, cache: c }).logits.dispose();
      c.dispose();
    }, { label: 'mrope cached forward' });
    opt.dispose();
  });
});
