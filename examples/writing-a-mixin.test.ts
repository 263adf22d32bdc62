import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { KVCache, createLlama, generate } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, countHostReads } from '@vlmix/core/testkit';
import { IMAGE, QUERIES, QueryPoolerMixin, SharedImagePositionsMixin, buildModel, sharedImagePositions } from './writing-a-mixin.js';

const ids = [[1, IMAGE, IMAGE, IMAGE, IMAGE, 7, 8, 9], [IMAGE, IMAGE, IMAGE, IMAGE, 5, 6, 7, 8]];
const pixels = () => tf.randomUniform([2, 3, 16, 16], 0, 1, 'float32', 3);

describe('examples/writing-a-mixin: a position encoding', () => {
  it('image runs share one position (hand-computed), continued across passes', () => {
    expect(Array.from(sharedImagePositions([1, IMAGE, IMAGE, 5, IMAGE, 6], IMAGE))).toEqual([0, 1, 1, 2, 3, 4]);
    expect(Array.from(sharedImagePositions([IMAGE, 7], IMAGE, { pos: 4, image: true }))).toEqual([4, 5]); // the run goes on
    expect(Array.from(sharedImagePositions([IMAGE, 7], IMAGE, { pos: 4, image: false }))).toEqual([5, 6]);
  });

  it('serves positionIds over RoPE (overrides), as the hook table shows; without overrides() addMixin fails', () => {
    const model = buildModel();
    expect(model.hookOrigins().global.positionIds).toEqual(['positions', 'rope', 'base']);
    const p = model.prepareInputs({ inputIds: ids });
    expect(p.positionIds.arraySync()).toEqual([[0, 1, 1, 1, 1, 2, 3, 4], [0, 0, 0, 0, 1, 2, 3, 4]]);
    p.dispose();
    class NoOverride extends SharedImagePositionsMixin {
      override overrides() {
        return [];
      }
    }
    const lm = createLlama({ vocabSize: 320, hiddenSize: 32, numLayers: 1, numHeads: 4 });
    expect(() => lm.addMixin('p', new NoOverride(IMAGE))).toThrow(/hook 'positionIds' is already served by mixin 'rope'; mixin 'p' cannot also serve it/);
    [model, lm].forEach((m) => m.dispose());
  });

  it('cached decoding equals the uncached pass; cached and uncached generation agree', () => {
    const model = buildModel(1);
    const media = { pixels: pixels() };
    const full = model.forward({ inputIds: ids, media }).logits;
    const cache = new KVCache(2);
    // the prompt holds every placeholder (the connector needs them in one pass); the rest is decoded in steps
    const parts = [model.forward({ inputIds: ids.map((r) => r.slice(0, 5)), media, cache }).logits];
    for (let s = 5; s < 8; s++) parts.push(model.forward({ inputIds: ids.map((r) => [r[s]!]), media, cache }).logits);
    assertClose(tf.concat(parts, 1), full, { atol: 1e-5, rtol: 1e-4, name: 'cached vs full' });
    cache.dispose();
    const a = generate(model, ids, { maxNewTokens: 3, greedy: true, inputs: { media } });
    const b = generate(model, ids, { maxNewTokens: 3, greedy: true, useCache: false, inputs: { media } });
    expect(a.sequences).toEqual(b.sequences);
    model.dispose();
  });
});

describe('examples/writing-a-mixin: a Q-Former variant', () => {
  it('one query over uniform keys pools the mean feature (hand-computed)', () => {
    const model = buildModel();
    const m = model.getMixin<QueryPoolerMixin>('pooler');
    const C = 24;
    const feats = tf.randomNormal([1, 5, C], 0, 1, 'float32', 5);
    const eye = tf.eye(C);
    // zero keys: every feature gets weight 1/N; identity value/output/projection; LM width 32 = [C | 0]
    const overrides = {
      'attn.k_proj.weight': tf.zeros([C, C]), 'attn.v_proj.weight': eye, 'attn.out_proj.weight': eye,
      'ln_kv.weight': tf.ones([C]), 'ln_kv.bias': tf.zeros([C]), queries: tf.zeros([QUERIES, C]),
      'proj.weight': tf.concat([eye, tf.zeros([32 - C, C])], 0), 'proj.bias': tf.zeros([32]),
    };
    const got = m.imageTokens(feats, overrides);
    const lnMean = tf.tidy(() => {
      const mu = tf.mean(feats, -1, true);
      const ln = tf.div(tf.sub(feats, mu), tf.sqrt(tf.add(tf.mean(tf.square(tf.sub(feats, mu)), -1, true), 1e-5)));
      return tf.mean(ln, 1); // [1, C]
    });
    const want = tf.concat([tf.tile(tf.expandDims(lnMean, 1), [1, QUERIES, 1]), tf.zeros([1, QUERIES, 32 - C])], 2);
    assertClose(got, want, { atol: 1e-5, name: 'pooled mean' });
    expect(m.pooler.scope.localNames()).toContain('attn.q_proj.weight');
    expect(model.params.param('pooler.proj.weight').component).toBe('pooler');
    model.dispose();
  });

  it('finite-difference gradients w.r.t. the features and the weights', () => {
    const model = buildModel();
    const m = model.getMixin<QueryPoolerMixin>('pooler');
    const feats = tf.randomNormal([1, 3, 24], 0, 1, 'float32', 7);
    const names = ['queries', 'attn.q_proj.weight', 'attn.k_proj.weight', 'proj.weight'];
    assertGradients((f, ...ws) => m.imageTokens(f!, Object.fromEntries(names.map((n, i) => [n, ws[i]!]))),
      [feats, ...names.map((n) => tf.mul(model.param(`pooler.${n}`), 10))], { label: 'query pooler', maxChecks: 16 });
    model.dispose();
  });

  it('before attach: a clear error; in a model: image tokens at the placeholders, a training step reads nothing back, no leak', () => {
    expect(() => new QueryPoolerMixin({ imageTokenId: IMAGE, visionSize: 24, numQueries: 4 }).pooler).toThrow(/QueryPoolerMixin: not attached to a model yet; its query pooler is built by model.addMixin/);
    const model = buildModel(2);
    const media = { pixels: pixels() };
    const prepared = model.prepareInputs({ inputIds: ids, media });
    const inputIds = tf.tensor2d(ids, undefined, 'int32');
    const labels = tf.tensor2d(ids.map((r) => [...r.slice(1), -1].map((t) => (t === IMAGE ? -1 : t))), undefined, 'int32');
    const vars = model.params.trainable().map((p) => p.variable);
    const opt = tf.train.adam(1e-2);
    const step = () => opt.minimize(() => model.loss({ inputIds, media, prepared }, labels, { ignoreIndex: -1 }), true, vars)!;
    const first = step();
    const l0 = first.dataSync()[0]!;
    first.dispose();
    const { reads, result } = countHostReads(step);
    expect(reads).toBe(0);
    result.dispose();
    assertNoLeak(() => step(), { label: 'training step' });
    let last = Infinity;
    for (let i = 0; i < 15; i++) {
      const l = step();
      last = l.dataSync()[0]!;
      l.dispose();
    }
    expect(last).toBeLessThan(l0);
    tf.dispose([inputIds, labels, media.pixels, ...prepared.tensors()]);
    opt.dispose();
    model.dispose();
  });
});
