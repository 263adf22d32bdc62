import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { KVCache, Model, Rng, createLlama, generate, ops, type AttentionMask, type ForwardContext, type HookFn } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { PrefixTuningMixin } from '../src/peft/prefix.js';

const rng = new Rng('prefix-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

const tinyLlama = () => createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 24, maxSeqLen: 64, seed: 5 });
const IDS = [[1, 5, 7, 2, 9, 11, 4], [3, 3, 8, 0, 1, 39, 12]];

let models: Model[] = [];
const track = (m: Model) => (models.push(m), m);
afterEach(() => {
  models.forEach((m) => m.dispose());
  models = [];
});

/** Plain softmax attention over explicit keys with a 0/1 `allowed` [Tq, Tk] (per row: [B][Tq][Tk]). */
function refAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, allowed: number[][][]): tf.Tensor {
  return tf.tidy(() => {
    const d = q.shape[3]!;
    const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(d));
    const mask = tf.expandDims(tf.tensor3d(allowed), 1);
    const masked = tf.where(tf.cast(mask, 'bool'), scores, tf.fill(scores.shape, -1e9));
    return tf.matMul(tf.softmax(masked, -1), v);
  });
}

function fakeCtx(prefix: tf.Tensor): ForwardContext {
  return { layer: 0, param: () => prefix } as unknown as ForwardContext;
}

// the base attentionFn: the mask arrives as an argument (SAT's attention_fn(q, k, v, mask))
const baseAttention = ((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: AttentionMask) =>
  ops.attention(q, k, v, { bias: mask.bias, causal: mask.causal })) as unknown as HookFn<'attentionFn'>;

function withPrefixHook(mixin: PrefixTuningMixin) {
  const impl = mixin.hooks().attentionFn!;
  return (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, prefix: tf.Tensor, bias: tf.Tensor | null, causal: boolean) =>
    tf.tidy(() => impl(q, k, v, { causal, bias }, fakeCtx(prefix), baseAttention));
}

describe('PrefixTuningMixin: the attentionFn hook', () => {
  const P = 3;
  const mixin = new PrefixTuningMixin({ prefixLen: P });
  mixin.name = 'prefix';
  const hook = withPrefixHook(mixin);

  it('causal with a cache offset: every query sees the whole prefix and its causal keys', () => {
    const [B, H, Tq, Tk, D] = [2, 2, 3, 5, 4];
    const q = randn([B, H, Tq, D]); const k = randn([B, H, Tk, D]); const v = randn([B, H, Tk, D]);
    const prefix = randn([2, H, P, D]);
    const out = hook(q, k, v, prefix, null, true);
    const allowed = Array.from({ length: B }, () => Array.from({ length: Tq }, (_, i) =>
      Array.from({ length: P + Tk }, (_, j) => (j < P || j - P <= i + (Tk - Tq) ? 1 : 0))));
    const [pk, pv] = tf.unstack(prefix);
    const kk = tf.concat([tf.tile(tf.expandDims(pk!, 0), [B, 1, 1, 1]), k], 2);
    const vv = tf.concat([tf.tile(tf.expandDims(pv!, 0), [B, 1, 1, 1]), v], 2);
    assertClose(out, refAttention(q, kk, vv, allowed), { atol: 1e-5, name: 'prefix causal' });
  });

  it('padding bias: padded keys stay hidden, the prefix stays visible', () => {
    const [B, H, T, D] = [2, 2, 4, 4];
    const q = randn([B, H, T, D]); const k = randn([B, H, T, D]); const v = randn([B, H, T, D]);
    const prefix = randn([2, H, P, D]);
    const pad = [[1, 1, 1, 1], [0, 1, 1, 1]];
    const bias = tf.tensor4d(pad.flat().map((x) => (x ? 0 : -1e9)), [B, 1, 1, T]);
    const out = hook(q, k, v, prefix, bias, true);
    const allowed = pad.map((row) => Array.from({ length: T }, (_, i) =>
      Array.from({ length: P + T }, (_, j) => (j < P || (j - P <= i && row[j - P] === 1) ? 1 : 0))));
    const [pk, pv] = tf.unstack(prefix);
    const kk = tf.concat([tf.tile(tf.expandDims(pk!, 0), [B, 1, 1, 1]), k], 2);
    const vv = tf.concat([tf.tile(tf.expandDims(pv!, 0), [B, 1, 1, 1]), v], 2);
    assertClose(out, refAttention(q, kk, vv, allowed), { atol: 1e-5, name: 'prefix padded' });
    // the mask is an argument: the hook passes an extended copy to next and leaves the caller's alone
    const mask = Object.freeze({ causal: true, bias });
    let seen: AttentionMask | null = null;
    const spy = ((q2: tf.Tensor, k2: tf.Tensor, v2: tf.Tensor, m: AttentionMask) => ((seen = m), baseAttention(q2, k2, v2, m, null as never))) as unknown as HookFn<'attentionFn'>;
    tf.tidy(() => mixin.hooks().attentionFn!(q, k, v, mask, fakeCtx(prefix), spy));
    expect(mask.bias).toBe(bias);
    expect(seen!.bias!.shape).toEqual([...bias.shape.slice(0, 3), P + bias.shape[3]!]);
  });

  it('finite-difference gradients w.r.t. the prefix and q, k, v', () => {
    const [B, H, T, D] = [1, 2, 3, 4];
    const q = randn([B, H, T, D]); const k = randn([B, H, T, D]); const v = randn([B, H, T, D]);
    const prefix = randn([2, H, P, D], 0.5);
    const bias = tf.tensor4d([0, -1e9, 0], [1, 1, 1, 3]);
    assertGradients((q, k, v, p) => hook(q!, k!, v!, p!, bias, true), [q, k, v, prefix], { label: 'prefix hook grads' });
    assertGradients((p) => hook(q, k, v, p!, null, false), [prefix], { label: 'prefix hook grads, bidirectional' });
  });
});

describe('PrefixTuningMixin in a model', () => {
  it('creates per-layer params [2, Hkv, P, D], component = mixin name; rejects prefixLen 0', () => {
    const m = track(tinyLlama());
    m.addMixin('ptuning', new PrefixTuningMixin({ prefixLen: 5 }));
    expect(m.param('ptuning.prefix.0').shape).toEqual([2, 2, 5, 4]);
    expect(m.param('ptuning.prefix.1').shape).toEqual([2, 2, 5, 4]);
    expect(m.params.param('ptuning.prefix.1').component).toBe('ptuning');
    expect(() => new PrefixTuningMixin({ prefixLen: 0 })).toThrow(/prefix\.prefixLen: expected a positive integer.*got 0/);
    expect(() => new PrefixTuningMixin({ prefixLen: 2.5 })).toThrow(/got 2\.5/);
    const m2 = track(tinyLlama());
    m2.addMixin('pt', new PrefixTuningMixin({ prefixLen: 2, layers: [1] }));
    expect(m2.hasParam('pt.prefix.0')).toBe(false);
    expect(m2.hookOrigins().layers[0]!.hooks.attentionFn).toEqual(['base']);
    expect(() => track(tinyLlama()).addMixin('pt', new PrefixTuningMixin({ prefixLen: 2, layers: [7] }))).toThrow(/layer 7 out of range/);
  });

  it('changes the output when the prefix is nonzero; removing it restores the base', () => {
    const m = track(tinyLlama());
    const base = m.forward({ inputIds: IDS }).logits;
    m.addMixin('prefix', new PrefixTuningMixin({ prefixLen: 4, initStd: 1 }));
    const withP = m.forward({ inputIds: IDS }).logits;
    expect(tf.max(tf.abs(tf.sub(withP, base))).dataSync()[0]).toBeGreaterThan(1e-3);
    m.removeMixin('prefix');
    assertClose(m.forward({ inputIds: IDS }).logits, base, { atol: 0, rtol: 0 });
  });

  it('a padding mask hides padded keys but not the prefix (bidirectional, right padding)', () => {
    const m = track(tinyLlama());
    m.addMixin('prefix', new PrefixTuningMixin({ prefixLen: 3, initStd: 1 }));
    const short = m.forward({ inputIds: [[4, 9, 2, 6]], mask: { kind: 'bidirectional' } }).logits;
    const padded = m.forward({
      inputIds: [[4, 9, 2, 6, 0, 0]], mask: { kind: 'bidirectional' },
      attentionMask: tf.tensor2d([[1, 1, 1, 1, 0, 0]], undefined, 'int32'),
    }).logits;
    assertClose(tf.slice(padded, [0, 0, 0], [1, 4, -1]), short, { atol: 1e-5, name: 'padded vs short' });
  });

  it('KV cache: prefill + steps give the uncached logits; cached and uncached generate agree', () => {
    const m = track(tinyLlama());
    m.addMixin('prefix', new PrefixTuningMixin({ prefixLen: 3, initStd: 1 }));
    const full = m.forward({ inputIds: IDS }).logits;
    const cache = new KVCache(m.config.numLayers);
    const parts = [m.forward({ inputIds: IDS.map((r) => r.slice(0, 4)), cache }).logits];
    for (let t = 4; t < 7; t++) parts.push(m.forward({ inputIds: IDS.map((r) => r.slice(t, t + 1)), cache }).logits);
    cache.dispose();
    assertClose(tf.concat(parts, 1), full, { atol: 1e-5, name: 'cached logits' });
    const a = generate(m, IDS, { maxNewTokens: 8, greedy: true, useCache: true });
    const b = generate(m, IDS, { maxNewTokens: 8, greedy: true, useCache: false });
    expect(a.sequences).toEqual(b.sequences);
  });

  it('gradients reach every prefix param; training only the prefix lowers the loss; no leaks', () => {
    const m = track(createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 24, maxSeqLen: 64, seed: 5, initStd: 0.3 }));
    m.addMixin('prefix', new PrefixTuningMixin({ prefixLen: 2, initStd: 0.1 }));
    m.params.freeze('**');
    m.params.unfreeze('prefix.prefix.*');
    const vars = m.params.trainable().map((p) => p.variable);
    expect(vars).toHaveLength(2);
    const ids = tf.tensor2d(IDS, undefined, 'int32');
    const labels = tf.tensor2d(IDS.map((r) => [...r.slice(1), -100]), undefined, 'int32');
    const { grads, value } = tf.variableGrads(() => m.loss({ inputIds: ids }, labels), vars);
    for (const g of Object.values(grads)) expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
    const l0 = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    const opt = tf.train.adam(0.1);
    const step = () => opt.minimize(() => m.loss({ inputIds: ids }, labels), true, vars)!;
    step().dispose();
    assertNoLeak(() => step(), { label: 'prefix train step' });
    for (let i = 0; i < 25; i++) step().dispose();
    const l1 = m.loss({ inputIds: ids }, labels).dataSync()[0]!;
    expect(l1).toBeLessThan(l0 - 0.1);
    assertNoLeak(() => m.forward({ inputIds: IDS }).logits, { label: 'prefix forward' });
    const cache = new KVCache(m.config.numLayers);
    m.forward({ inputIds: IDS, cache }).logits.dispose();
    assertNoLeak(() => {
      const c = new KVCache(m.config.numLayers);
      m.forward({ inputIds: IDS, cache: c }).logits.dispose();
      c.dispose();
    }, { label: 'prefix cached forward' });
    cache.dispose();
    opt.dispose();
  });
});
