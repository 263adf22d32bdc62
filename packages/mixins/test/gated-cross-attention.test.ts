import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KVCache, Model, Rng } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, atLayer, compareTensors, loadFixtureSync } from '@vlmix/core/testkit';
import {
  GatedCrossAttentionMixin, crossAttentionMasks, gatedBlockParamSpecs, gatedCrossAttentionBlock, maskedCrossAttention, type ResolvedGatedCrossAttentionOptions,
} from '../src/deep/gated-cross-attention.js';
import { PerceiverResamplerMixin } from '../src/connectors/perceiver.js';

const FIX = join(import.meta.dirname, 'fixtures', 'gated_xattn');
const rng = new Rng('gated-xattn-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
const cumsum = (loc: tf.Tensor) => tf.cumsum(tf.cast(loc, 'int32'), 1);

const FX_OPTS: ResolvedGatedCrossAttentionOptions = { dim: 32, dimVisual: 24, dimHead: 8, heads: 4, ffMult: 2, onlyAttendImmediateMedia: true, eps: 1e-5 };

/** rel. error = max |got - want| / max |want|. */
function relErr(got: tf.Tensor, want: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]! / tf.max(tf.abs(want)).dataSync()[0]!);
}

describe('gated cross-attention: fixture (torch re-implementation of open_flamingo)', () => {
  const fx = loadFixtureSync(FIX);
  const W = fx.weights!;
  const p = (n: string) => W.toTensor(n);
  const x = fx.io.toTensor('x');
  const media = fx.io.toTensor('media');
  const loc = fx.io.toTensor('media_locations');

  it('only_attend_immediate_media=True matches (rel. error <= 1e-4)', () => {
    const y = gatedCrossAttentionBlock(x, media, cumsum(loc), p, FX_OPTS);
    const want = fx.io.toTensor('y_immediate');
    expect(relErr(y, want)).toBeLessThan(1e-4);
    assertClose(y, want, { rtol: 1e-4, atol: 1e-4, name: 'y_immediate' });
  });

  it('without media locations (attend to all media) matches', () => {
    const y = gatedCrossAttentionBlock(x, media, null, p, FX_OPTS);
    expect(relErr(y, fx.io.toTensor('y_no_locations'))).toBeLessThan(1e-4);
  });

  it("only_attend_immediate_media=False matches everywhere with noMediaAttention 'reference' (default), text before the first media included", () => {
    const tt = cumsum(loc);
    const want = fx.io.toTensor('y_all');
    const y = gatedCrossAttentionBlock(x, media, tt, p, { ...FX_OPTS, onlyAttendImmediateMedia: false });
    expect(relErr(y, want)).toBeLessThan(1e-4);
    assertClose(y, want, { rtol: 1e-4, atol: 1e-4, name: 'y_all' });
    // the token before row 0's first media: a uniform average of every media value (all its scores masked)
    const first = (o: Partial<ResolvedGatedCrossAttentionOptions>) =>
      maskedCrossAttention(tf.slice(x, [0, 0, 0], [1, 1, 32]), tf.slice(media, [0, 0, 0, 0], [1, -1, -1, -1]), tf.zeros([1, 1], 'int32'), p, { ...FX_OPTS, onlyAttendImmediateMedia: false, ...o });
    const v = tf.split(tf.matMul(tf.reshape(tf.slice(media, [0, 0, 0, 0], [1, -1, -1, -1]), [6, 24]), p('attn.to_kv.weight'), false, true), 2, 1)[1]!;
    const mean = tf.matMul(tf.mean(v, 0, true), p('attn.to_out.weight'), false, true);
    assertClose(tf.reshape(first({}), [1, 32]), mean, { rtol: 1e-5, atol: 1e-5, name: 'uniform average over the media' });
    // 'zero': such tokens get no attention output; every other token is unchanged
    expect(tf.max(tf.abs(first({ noMediaAttention: 'zero' }))).dataSync()[0]).toBe(0);
    const z = gatedCrossAttentionBlock(x, media, tt, p, { ...FX_OPTS, onlyAttendImmediateMedia: false, noMediaAttention: 'zero' });
    const diff = tf.max(tf.abs(tf.sub(z, y)), 2).arraySync() as number[][];
    expect(diff[0]![0]).toBeGreaterThan(1e-3);
    expect(Math.max(...diff[0]!.slice(1), ...diff[1]!)).toBe(0);
  });

  it("immediate mode: 'reference' zeroes text_time == 0 but averages uniformly past the last media; 'zero' zeroes both", () => {
    const x1 = tf.slice(x, [0, 0, 0], [1, 2, 32]);
    const m1 = tf.slice(media, [0, 0, 0, 0], [1, -1, -1, -1]);
    const tt = tf.tensor2d([[0, 3]], [1, 2], 'int32'); // before any media; media index 3 > T_img = 2
    const ref = maskedCrossAttention(x1, m1, tt, p, FX_OPTS).arraySync() as number[][][];
    expect(Math.max(...ref[0]![0]!.map(Math.abs))).toBe(0);
    expect(Math.max(...ref[0]![1]!.map(Math.abs))).toBeGreaterThan(1e-3);
    expect(tf.max(tf.abs(maskedCrossAttention(x1, m1, tt, p, { ...FX_OPTS, noMediaAttention: 'zero' }))).dataSync()[0]).toBe(0);
  });

  it('the mixin serves crossAttentionForward with the open_flamingo names (gated_cross_attn_layers.{i}.*)', () => {
    const model = new Model({ vocabSize: 16, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 16 });
    const mixin = model.addMixin('xattn', new GatedCrossAttentionMixin({ dimVisual: 24, dimHead: 8, heads: 4, ffMult: 2, everyN: 2, prefix: 'lang_encoder.' }));
    expect(mixin.layers()).toEqual([1]);
    const sd = new Map(W.names().map((n) => [`lang_encoder.gated_cross_attn_layers.1.${n}`, W.toTensor(n)] as const));
    expect(new Set(model.params.list().filter((q) => q.component === 'xattn').map((q) => q.name))).toEqual(new Set(sd.keys()));
    model.loadStateDict(sd, { strict: false });
    const ids = tf.zeros([2, 10], 'int32');
    // the host stage computes text_time from the media locations; then one hook is called directly
    const ctx = model.passContext({ inputIds: ids, media: { mediaLocations: loc, mediaLatents: media } });
    const y = atLayer(ctx, 1).run('crossAttentionForward', x);
    expect(relErr(y, fx.io.toTensor('y_immediate'))).toBeLessThan(1e-4);
    expect(atLayer(ctx, 0).run('crossAttentionForward', x)).toBe(x); // not every layer: the base identity
    expect(model.hookOrigins().layers.map((l) => l.hooks.crossAttentionForward)).toEqual([['base'], ['xattn', 'base']]);
    model.dispose();
  });
});

// ---------------------------------------------------------------- module-level checks on random weights
const small: ResolvedGatedCrossAttentionOptions = { dim: 8, dimVisual: 6, dimHead: 3, heads: 2, ffMult: 2, onlyAttendImmediateMedia: true, eps: 1e-5 };
const smallParams = () => {
  const m = new Map(gatedBlockParamSpecs(small).map((s) => [s.name, randn(s.shape, 0.5)] as const));
  m.set('attn_gate', tf.tensor1d([0.8]));
  m.set('ff_gate', tf.tensor1d([-0.6]));
  return m;
};

describe('gated cross-attention: gradients, leaks, errors', () => {
  const params = smallParams();
  const get = (n: string) => params.get(n)!;
  const tt = tf.tensor2d([[0, 1, 1, 2], [1, 1, 2, 2]], undefined, 'int32');

  it('finite-difference gradients w.r.t. x, media, gates and weights', () => {
    const names = ['attn_gate', 'ff_gate', 'attn.to_q.weight', 'attn.to_kv.weight', 'attn.norm.weight', 'ff.1.weight'];
    for (const immediate of [true, false]) {
      const f = (...xs: tf.Tensor[]) => {
        const local = new Map(params);
        names.forEach((n, i) => local.set(n, xs[i + 2]!));
        return gatedCrossAttentionBlock(xs[0]!, xs[1]!, tt, (n) => local.get(n)!, { ...small, onlyAttendImmediateMedia: immediate });
      };
      assertGradients(f, [randn([2, 4, 8]), randn([2, 2, 2, 6]), ...names.map((n) => get(n).clone())], { label: `gated xattn (immediate=${immediate})`, maxChecks: 24 });
    }
  });

  it('precomputed masks (crossAttentionMasks, once per pass in the mixin) give the same block output', () => {
    const x = randn([2, 4, 8]);
    const media = randn([2, 2, 2, 6]);
    for (const immediate of [true, false]) {
      const o = { ...small, onlyAttendImmediateMedia: immediate };
      const masks = crossAttentionMasks(tt, 2, 2, o);
      expect(Array.from(gatedCrossAttentionBlock(x, media, tt, get, o, masks).dataSync()))
        .toEqual(Array.from(gatedCrossAttentionBlock(x, media, tt, get, o).dataSync()));
      expect(() => gatedCrossAttentionBlock(x, randn([2, 3, 2, 6]), tt, get, o, masks)).toThrow(/masks: built for 4 media tokens, media has 6/);
    }
  });

  it('does not leak (block forward and gradient)', () => {
    const x = randn([2, 4, 8]);
    const media = randn([2, 2, 2, 6]);
    assertNoLeak(() => gatedCrossAttentionBlock(x, media, tt, get, small), { label: 'block forward' });
    assertNoLeak(() => gatedCrossAttentionBlock(x, null, null, get, small), { label: 'block forward, no media' });
    assertNoLeak(() => tf.grads((a: tf.Tensor, m: tf.Tensor) => tf.sum(gatedCrossAttentionBlock(a, m, tt, get, small)))([x, media]), { label: 'block grad' });
  });

  it('errors name the argument, expected and actual', () => {
    const x = randn([2, 4, 8]);
    expect(() => gatedCrossAttentionBlock(x, randn([2, 2, 2, 5]), tt, get, small)).toThrow(/media: expected shape \[2, T_img, n, 6\], got \[2, 2, 2, 5\]/);
    expect(() => gatedCrossAttentionBlock(x, randn([2, 2, 6]), tt, get, small)).toThrow(/media: expected rank 4, got rank 3/);
    expect(() => gatedCrossAttentionBlock(x, randn([2, 2, 2, 6]), tf.zeros([2, 3], 'int32'), get, small)).toThrow(/textTime: expected shape \[2, 4\], got \[2, 3\]/);
    expect(() => new GatedCrossAttentionMixin({ everyN: 0 })).toThrow(/gatedCrossAttention.everyN: expected a positive integer, got 0/);
    expect(() => new GatedCrossAttentionMixin({ gateInit: Number.NaN })).toThrow(/gatedCrossAttention.gateInit: expected a finite number, got NaN/);
    expect(() => new GatedCrossAttentionMixin({ noMediaAttention: 'skip' as never })).toThrow(/gatedCrossAttention.noMediaAttention: expected 'reference' or 'zero', got "skip"/);
    const model = new Model({ vocabSize: 16, hiddenSize: 8, numLayers: 2, numHeads: 2 });
    expect(() => model.addMixin('x', new GatedCrossAttentionMixin({ everyN: 3 }))).toThrow(/everyN: 3 exceeds the model's 2 layers/);
    expect(() => model.addMixin('x', new GatedCrossAttentionMixin({ mediaTokenId: 16 }))).toThrow(/mediaTokenId: expected < vocabSize 16, got 16/);
    model.addMixin('x', new GatedCrossAttentionMixin({ mediaTokenId: 3, heads: 2, dimHead: 4 }));
    expect(() => model.forward({ inputIds: [[1, 3, 2]] })).toThrow(/media locations mark 1 media item\(s\) but no media latents were given/);
    expect(() => model.forward({ inputIds: [[1, 2]], media: { mediaLocations: [[true, false, false]], mediaLatents: randn([1, 1, 2, 8]) } })).not.toThrow();
    expect(() => model.forward({ inputIds: [[1, 2]], media: { mediaLocations: [[true], [false]] } })).toThrow(/ctx.media\['mediaLocations'\]: expected a \[1, seq\] tensor or nested array/);
    expect(() => model.forward({ inputIds: [[1, 2]], media: { mediaLatents: randn([1, 1, 2, 5]) } })).toThrow(/ctx.media\['mediaLatents'\]: expected shape \[1, T_img, n, 8\], got \[1, 1, 2, 5\]/);
    model.dispose();
  });
});

// ---------------------------------------------------------------- whole model: identity at init, KV cache
const MEDIA_TOKEN = 5;
function flamingo(seed: number): Model {
  const model = new Model({ vocabSize: 24, hiddenSize: 16, numLayers: 4, numHeads: 2, maxSeqLen: 32, seed });
  return model;
}
function addFlamingo(model: Model, immediate = true): GatedCrossAttentionMixin {
  model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: 12, depth: 1, dimHead: 4, heads: 2, numLatents: 3, ffMult: 2 }));
  return model.addMixin('xattn', new GatedCrossAttentionMixin({ dimVisual: 12, dimHead: 4, heads: 2, ffMult: 2, everyN: 2, mediaTokenId: MEDIA_TOKEN, onlyAttendImmediateMedia: immediate }));
}
const IDS = [
  [1, MEDIA_TOKEN, 7, 8, 9, MEDIA_TOKEN, 10, 11, 12, 13],
  [MEDIA_TOKEN, 2, 3, 4, 6, 7, MEDIA_TOKEN, 8, 9, 3],
];

describe('GatedCrossAttentionMixin in a model', () => {
  const feats = randn([2, 2, 5, 12]); // 2 media per row, 5 visual tokens each, width 12

  it('is the identity at init (gates 0): logits with and without the mixin are equal', () => {
    const model = flamingo(1);
    const before = model.forward({ inputIds: IDS }).logits;
    addFlamingo(model);
    const after = model.forward({ inputIds: IDS, media: { visionFeatures: feats } }).logits;
    assertClose(after, before, { rtol: 0, atol: 0, name: 'logits at init' });
    // and opening a gate changes them
    model.param('xattn.gated_cross_attn_layers.1.attn_gate').assign(tf.tensor1d([0.5]));
    const opened = model.forward({ inputIds: IDS, media: { visionFeatures: feats } }).logits;
    expect(compareTensors(opened, before, { atol: 1e-4 }).ok).toBe(false);
    model.dispose();
  });

  it('gateInit starts both gates of every block at the value, and the blocks then change the logits', () => {
    const model = flamingo(1);
    const before = model.forward({ inputIds: IDS }).logits;
    model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: 12, depth: 1, dimHead: 4, heads: 2, numLatents: 3, ffMult: 2 }));
    model.addMixin('xattn', new GatedCrossAttentionMixin({ dimVisual: 12, dimHead: 4, heads: 2, ffMult: 2, everyN: 2, mediaTokenId: MEDIA_TOKEN, gateInit: 0.5 }));
    const gates = model.params.list().filter((p) => /_gate$/.test(p.name));
    expect(gates.map((p) => p.name)).toEqual([
      'xattn.gated_cross_attn_layers.1.attn_gate', 'xattn.gated_cross_attn_layers.1.ff_gate',
      'xattn.gated_cross_attn_layers.3.attn_gate', 'xattn.gated_cross_attn_layers.3.ff_gate',
    ]);
    for (const g of gates) expect(Array.from(g.variable.dataSync())).toEqual([0.5]);
    const after = model.forward({ inputIds: IDS, media: { visionFeatures: feats } }).logits;
    expect(compareTensors(after, before, { atol: 1e-4 }).ok).toBe(false);
    model.dispose();
  });

  for (const immediate of [true, false]) {
    it(`KV-cached decoding equals the uncached pass, media token inside the decoded part (immediate=${immediate})`, () => {
      const model = flamingo(2);
      const mixin = addFlamingo(model, immediate);
      for (const l of mixin.layers()) {
        model.param(`${mixin.blockPrefix(l)}attn_gate`).assign(tf.tensor1d([0.7]));
        model.param(`${mixin.blockPrefix(l)}ff_gate`).assign(tf.tensor1d([-0.5]));
      }
      const media = { visionFeatures: feats };
      const full = model.forward({ inputIds: IDS, media }).logits;
      const cache = new KVCache(4);
      const P = 4; // row 0's second media token (index 5) and row 1's (index 6) arrive during decoding
      const parts = [model.forward({ inputIds: IDS.map((r) => r.slice(0, P)), media, cache }).logits];
      for (let j = P; j < IDS[0]!.length; j++) parts.push(model.forward({ inputIds: IDS.map((r) => [r[j]!]), media, cache }).logits);
      const cached = tf.concat(parts, 1);
      assertClose(cached, full, { rtol: 1e-4, atol: 1e-5, name: 'cached vs uncached logits' });
      expect(cache.meta.get('xattn.textTime')).toEqual([2, 2]);
      cache.dispose();
      // prompt-only media locations (as generate() passes them every step) work too
      const cache2 = new KVCache(4);
      const locs = IDS.map((r) => r.map((t) => t === MEDIA_TOKEN));
      const prompt = { visionFeatures: feats, mediaLocations: locs.map((r) => r.slice(0, 7)) };
      const idsNoTok = IDS.map((r) => r.map((t) => (t === MEDIA_TOKEN ? 4 : t)));
      const fullLoc = model.forward({ inputIds: idsNoTok, media: { visionFeatures: feats, mediaLocations: locs } }).logits;
      const parts2 = [model.forward({ inputIds: idsNoTok.map((r) => r.slice(0, 7)), media: prompt, cache: cache2 }).logits];
      for (let j = 7; j < 10; j++) parts2.push(model.forward({ inputIds: idsNoTok.map((r) => [r[j]!]), media: prompt, cache: cache2 }).logits);
      assertClose(tf.concat(parts2, 1), fullLoc, { rtol: 1e-4, atol: 1e-5, name: 'cached (prompt locations) vs uncached' });
      cache2.dispose();
      model.dispose();
    });
  }

  it('trains the gates and blocks; no tensor leak in forward or a training step', () => {
    const model = flamingo(3);
    addFlamingo(model);
    const media = { visionFeatures: feats };
    assertNoLeak(() => model.forward({ inputIds: IDS, media }).logits, { label: 'flamingo forward' });
    const gate = model.param('xattn.gated_cross_attn_layers.3.attn_gate');
    const vars = model.params.trainable().filter((q) => q.component === 'xattn' || q.component === 'perceiver').map((q) => q.variable);
    const labels = tf.tensor2d(IDS.map((r) => [...r.slice(1), 0]), undefined, 'int32');
    const opt = tf.train.adam(0.01);
    const step = () => opt.minimize(() => model.loss({ inputIds: IDS, media }, labels), false, vars);
    step();
    expect(Math.abs(gate.dataSync()[0]!)).toBeGreaterThan(0); // the gate moves off 0
    assertNoLeak(step, { label: 'flamingo training step' });
    opt.dispose();
    model.dispose();
  });
});
