import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { ForwardContext, Model, Rng, createGpt2, createLlama, type HookFn } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, atLayer } from '@vlmix/core/testkit';
import { LoraMixin, fuseQkvLora, llamaLoraBase, loraOnly, peftLoraName } from '../src/peft/lora.js';

const rng = new Rng('lora-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

const tinyLlama = () => createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 1, intermediateSize: 24, maxSeqLen: 32, seed: 3 });
const IDS = [[1, 5, 7, 2, 9, 11], [3, 3, 8, 0, 1, 39]];
const QKV = 'transformer.layers.*.attention.query_key_value';

let models: Model[] = [];
const track = (m: Model) => (models.push(m), m);
afterEach(() => {
  models.forEach((m) => m.dispose());
  models = [];
});

function logits(m: Model, ids = IDS): tf.Tensor {
  return m.forward({ inputIds: ids }).logits;
}

/** Gives every LoRA B a random nonzero value so the LoRA path matters. */
function randomiseB(m: Model, scale = 0.3): void {
  for (const n of m.params.names()) if (n.endsWith('.lora_B.weight')) {
    const v = m.param(n);
    tf.tidy(() => v.assign(randn(v.shape, scale)));
  }
}

function makeCtx(m: Model, training = false): ForwardContext {
  const ids = tf.tensor2d([[0]], [1, 1], 'int32');
  const ctx = new ForwardContext(m, {
    inputIds: ids, positionIds: tf.zeros([1, 1], 'int32'), attention: { causal: true, bias: null },
    tokenTypes: null, media: {}, cache: null, training, pastLength: 0,
  });
  return ctx;
}

describe('LoraMixin', () => {
  it('creates A [r, in] kaiming-uniform and B [out, r] zeros under the linear name, component = mixin name', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 4, alpha: 8, targets: [QKV, 'transformer.layers.1.mlp.dense_4h_to_h'] }));
    const lora = m.getMixin<LoraMixin>('lora');
    expect(lora.targets.sort()).toEqual([
      'transformer.layers.0.attention.query_key_value', 'transformer.layers.1.attention.query_key_value', 'transformer.layers.1.mlp.dense_4h_to_h',
    ]);
    const a = m.param('transformer.layers.0.attention.query_key_value.lora_A.weight');
    const b = m.param('transformer.layers.0.attention.query_key_value.lora_B.weight');
    expect(a.shape).toEqual([4, 16]);
    expect(b.shape).toEqual([(2 + 2) * 8, 4]);
    const av = a.dataSync();
    const bound = 1 / Math.sqrt(16);
    expect(Math.max(...av.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...av.map(Math.abs))).toBeGreaterThan(bound / 2);
    expect(Math.max(...b.dataSync().map(Math.abs))).toBe(0);
    expect(m.params.param('transformer.layers.1.mlp.dense_4h_to_h.lora_A.weight').component).toBe('lora');
    expect(m.param('transformer.layers.1.mlp.dense_4h_to_h.lora_A.weight').shape).toEqual([4, 24]);
    expect(lora.scale).toBe(2);
    // removing the mixin removes its parameters
    m.removeMixin('lora');
    expect(m.hasParam('transformer.layers.0.attention.query_key_value.lora_A.weight')).toBe(false);
  });

  it('identity: a fresh LoRA (B = 0) gives the base logits', () => {
    const m = track(tinyLlama());
    const base = logits(m);
    m.addMixin('lora', new LoraMixin({ r: 2, alpha: 16, targets: ['transformer.layers.*.*.*'] }));
    assertClose(logits(m), base, { atol: 0, rtol: 0, name: 'B=0 logits' });
  });

  it('linear hook equals a hand computation: W x + b + (alpha/r) B A x', () => {
    const m = track(createGpt2({ vocabSize: 10, hiddenSize: 4, numLayers: 1, numHeads: 1, maxSeqLen: 8 }));
    m.addMixin('lora', new LoraMixin({ r: 2, alpha: 3, targets: ['transformer.layers.0.attention.dense'] }));
    const W = [[1, 0, 2, 0], [0, 1, 0, -1], [1, 1, 1, 1], [0, 0, 0, 3]];
    const bias = [0.5, -1, 0, 2];
    const A = [[1, 2, 0, -1], [0, 1, 1, 0]];
    const B = [[1, 0], [0, 2], [-1, 1], [3, 0]];
    const x = [[1, -1, 2, 0.5]];
    const n = 'transformer.layers.0.attention.dense';
    m.param(`${n}.weight`).assign(tf.tensor2d(W));
    m.param(`${n}.bias`).assign(tf.tensor1d(bias));
    m.param(`${n}.lora_A.weight`).assign(tf.tensor2d(A));
    m.param(`${n}.lora_B.weight`).assign(tf.tensor2d(B));
    // By hand: Wx + b = [5.5, -2.5, 2.5, 3.5]; Ax = [-1.5, 1]; B(Ax) = [-1.5, 2, 2.5, -4.5]; * 1.5
    const expected = [5.5 - 2.25, -2.5 + 3, 2.5 + 3.75, 3.5 - 6.75];
    const ctx = atLayer(makeCtx(m), 0);
    const y = ctx.run('linear', n, tf.tensor2d(x));
    assertClose(y, { shape: [1, 4], data: expected }, { atol: 1e-6, name: 'lora linear' });
    // untargeted linears are untouched
    const qkv = 'transformer.layers.0.attention.query_key_value';
    assertClose(ctx.run('linear', qkv, tf.tensor2d(x)), tf.add(tf.matMul(tf.tensor2d(x), m.param(`${qkv}.weight`), false, true), m.param(`${qkv}.bias`)), { atol: 1e-6 });
  });

  it('finite-difference gradients w.r.t. x, A and B through the linear hook', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 3, alpha: 6, targets: [QKV] }));
    const name = 'transformer.layers.0.attention.query_key_value';
    const lora = m.getMixin<LoraMixin>('lora');
    const impl = lora.hooks().linear!;
    const W = m.param(`${name}.weight`);
    const x = randn([2, 3, 16]);
    const A = randn([3, 16], 0.5);
    const B = randn([32, 3], 0.5);
    const f = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => {
      const fake = { param: (n: string) => (n.endsWith('lora_A.weight') ? a : n.endsWith('lora_B.weight') ? b : W), training: false } as unknown as ForwardContext;
      const next = ((_n: string, xx: tf.Tensor) => tf.matMul(tf.reshape(xx, [-1, 16]), W, false, true).reshape([...xx.shape.slice(0, -1), 32])) as unknown as HookFn<'linear'>;
      return impl(name, x, fake, next);
    };
    assertGradients((x, a, b) => f(x!, a!, b!), [x, A, B], { label: 'lora linear grads' });
  });

  it('merge() folds B A scale into the weight: same logits; unmerge() restores the base weight', () => {
    const m = track(tinyLlama());
    const base = logits(m);
    const w0 = m.param('transformer.layers.1.mlp.dense_h_to_4h.weight').clone();
    m.addMixin('lora', new LoraMixin({ r: 2, alpha: 4, targets: [QKV, 'transformer.layers.*.mlp.*'] }));
    randomiseB(m);
    const lora = m.getMixin<LoraMixin>('lora');
    const unmerged = logits(m);
    expect(tf.max(tf.abs(tf.sub(unmerged, base))).dataSync()[0]).toBeGreaterThan(1e-3);
    lora.merge();
    expect(lora.merged).toBe(true);
    assertClose(logits(m), unmerged, { atol: 1e-5, rtol: 1e-4, name: 'merged logits' });
    expect(() => lora.merge()).toThrow(/already merged/);
    lora.unmerge();
    assertClose(m.param('transformer.layers.1.mlp.dense_h_to_4h.weight'), w0, { atol: 1e-6, name: 'unmerged weight' });
    assertClose(logits(m), unmerged, { atol: 1e-5, rtol: 1e-4, name: 'unmerged logits' });
    expect(() => lora.unmerge()).toThrow(/not merged/);
    // merged then removed: the model returns to the base
    lora.merge();
    m.removeMixin('lora');
    assertClose(logits(m), base, { atol: 1e-5, rtol: 1e-4, name: 'base after removal' });
  });

  it('mergeAndUnload() keeps the adapted weights and drops the adapter (not the base, as removeMixin does)', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 2, alpha: 4, targets: [QKV, 'transformer.layers.*.mlp.*'] }));
    randomiseB(m);
    const adapted = logits(m);
    const lora = m.getMixin<LoraMixin>('lora');
    const before = tf.memory().numTensors;
    expect(lora.mergeAndUnload()).toBe(m);
    expect(m.mixinNames()).not.toContain('lora');
    expect(m.params.names().filter((n) => n.includes('lora_'))).toEqual([]);
    expect(tf.memory().numTensors).toBeLessThan(before); // the adapter's parameters were freed
    assertClose(logits(m), adapted, { atol: 1e-5, rtol: 1e-4, name: 'merged-and-unloaded logits' });
    expect(() => lora.mergeAndUnload()).toThrow(/not attached/);
  });

  it('layers restricts the adapted layers', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 2, targets: [QKV], layers: [1] }));
    expect(m.getMixin<LoraMixin>('lora').targets).toEqual(['transformer.layers.1.attention.query_key_value']);
    expect(m.hookOrigins().layers[0]!.hooks.linear).toEqual(['base']);
    expect(m.hookOrigins().layers[1]!.hooks.linear).toEqual(['lora', 'base']);
  });

  it('dropout applies only in training', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 2, targets: [QKV], dropout: 0.5 }));
    randomiseB(m, 1);
    const a = m.forward({ inputIds: IDS }).logits;
    const b = m.forward({ inputIds: IDS }).logits;
    assertClose(a, b, { atol: 0, rtol: 0 });
    const t = m.forward({ inputIds: IDS }, { training: true }).logits;
    expect(tf.max(tf.abs(tf.sub(t, a))).dataSync()[0]).toBeGreaterThan(1e-4);
  });

  it('clear errors: rank, targets, layers, not attached', () => {
    expect(() => new LoraMixin({ r: 0, targets: [QKV] })).toThrow(/lora\.r: expected a positive integer, got 0/);
    expect(() => new LoraMixin({ r: 2, targets: [] })).toThrow(/lora\.targets/);
    expect(() => new LoraMixin({ r: 2, targets: [QKV], dropout: 1 })).toThrow(/lora\.dropout.*got 1/);
    const m = track(tinyLlama());
    expect(() => m.addMixin('lora', new LoraMixin({ r: 2, targets: ['transformer.layers.*.attention.qkv'] }))).toThrow(/'transformer\.layers\.\*\.attention\.qkv' matches no linear layer.*query_key_value/);
    expect(m.hasMixin('lora')).toBe(false);
    expect(() => m.addMixin('lora', new LoraMixin({ r: 2, targets: [QKV], layers: [5] }))).toThrow(/layer 5 out of range; the model has 2 layers/);
    expect(() => new LoraMixin({ r: 2, targets: [QKV] }).merge()).toThrow(/not attached/);
  });

  it('two LoRAs on one linear are a mixin conflict naming both; disjoint targets coexist', () => {
    const m = track(tinyLlama());
    m.addMixin('lora_a', new LoraMixin({ r: 2, targets: [QKV], layers: [0] }));
    const before = m.params.names().length;
    expect(() => m.addMixin('lora_b', new LoraMixin({ r: 2, targets: [QKV] }))).toThrow(
      /mixin conflict: LoRA mixins 'lora_a' and 'lora_b' both adapt 'transformer\.layers\.0\.attention\.query_key_value'; a linear takes one LoRA/);
    expect(m.hasMixin('lora_b')).toBe(false);
    expect(m.params.names().length).toBe(before); // nothing half-created
    m.addMixin('lora_c', new LoraMixin({ r: 2, targets: [QKV], layers: [1] }));
    expect(m.hookOrigins().layers.map((l) => l.hooks.linear)).toEqual([['lora_a', 'base'], ['lora_c', 'base']]);
    expect(m.params.param('transformer.layers.1.attention.query_key_value.lora_A.weight').component).toBe('lora_c');
  });

  it('loraOnly freezes everything but LoRA; a training step changes only LoRA params and lowers the loss; no leak', () => {
    const m = track(tinyLlama());
    expect(() => loraOnly(m)).toThrow(/no LoRA parameters/);
    m.addMixin('lora', new LoraMixin({ r: 4, alpha: 8, targets: [QKV, 'transformer.layers.*.mlp.dense_4h_to_h'] }));
    const names = loraOnly(m);
    expect(names).toHaveLength(8);
    const trainable = m.params.trainable();
    expect(trainable.map((p) => p.name).sort()).toEqual([...names].sort());
    const before = new Map(m.params.list().map((p) => [p.name, p.variable.clone()]));
    const ids = tf.tensor2d(IDS, undefined, 'int32');
    const labels = tf.tensor2d(IDS.map((r) => [...r.slice(1), -100]), undefined, 'int32');
    const opt = tf.train.adam(0.02);
    const vars = trainable.map((p) => p.variable);
    const step = () => opt.minimize(() => m.loss({ inputIds: ids }, labels), true, vars)!;
    const l0 = step().dataSync()[0]!;
    assertNoLeak(() => step(), { label: 'lora train step' });
    for (let i = 0; i < 20; i++) step().dispose();
    const l1 = m.loss({ inputIds: ids }, labels).dataSync()[0]!;
    expect(l1).toBeLessThan(l0 - 0.05);
    for (const p of m.params.list()) {
      const same = tf.tidy(() => tf.max(tf.abs(tf.sub(p.variable, before.get(p.name)!))).dataSync()[0]!) === 0;
      expect([p.name, same]).toEqual([p.name, !names.includes(p.name)]);
    }
    before.forEach((t) => t.dispose());
    opt.dispose();
  });

  it('forward does not leak tensors', () => {
    const m = track(tinyLlama());
    m.addMixin('lora', new LoraMixin({ r: 2, targets: ['transformer.layers.*.**'] }));
    assertNoLeak(() => m.forward({ inputIds: IDS }).logits, { label: 'lora forward' });
    const lora = m.getMixin<LoraMixin>('lora');
    assertNoLeak(() => { lora.merge(); lora.unmerge(); }, { label: 'merge/unmerge' });
  });
});

describe('PEFT interop', () => {
  it('peftLoraName maps PEFT names through a base map', () => {
    expect(peftLoraName('base_model.model.model.layers.3.self_attn.o_proj.lora_A.weight', llamaLoraBase)).toBe('transformer.layers.3.attention.dense.lora_A.weight');
    expect(peftLoraName('base_model.model.model.layers.0.mlp.gate_proj.lora_B.default.weight', llamaLoraBase)).toBe('transformer.layers.0.mlp.dense_h_to_4h_gate.lora_B.weight');
    expect(peftLoraName('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', llamaLoraBase)).toBeNull();
    expect(peftLoraName('base_model.model.model.embed_tokens.weight', llamaLoraBase)).toBeNull();
  });

  it('fuseQkvLora: a rank-3r fused LoRA equals separate q/k/v LoRAs', () => {
    const r = 2;
    const x = randn([5, 16]);
    const a = [randn([r, 16]), randn([r, 16]), randn([r, 16])] as [tf.Tensor, tf.Tensor, tf.Tensor];
    const b = [randn([16, r]), randn([8, r]), randn([8, r])] as [tf.Tensor, tf.Tensor, tf.Tensor];
    const sep = tf.concat([0, 1, 2].map((i) => tf.matMul(tf.matMul(x, a[i]!, false, true), b[i]!, false, true)), 1);
    const { loraA, loraB } = fuseQkvLora(a, b);
    expect(loraA.shape).toEqual([3 * r, 16]);
    expect(loraB.shape).toEqual([32, 3 * r]);
    assertClose(tf.matMul(tf.matMul(x, loraA, false, true), loraB, false, true), sep, { atol: 1e-5, name: 'fused qkv lora' });
    expect(() => fuseQkvLora([a[0], randn([3, 16]), a[2]], b)).toThrow(/a\[1\]: expected shape \[2, 16\]/);
  });
});
