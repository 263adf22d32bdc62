import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createModel, Model, ops, listPresets, type TransformerConfigInput } from '../src/index.js';
import { assertNoLeak } from '../src/testkit/index.js';

const small = (c: Partial<TransformerConfigInput> = {}) =>
  new Model({ vocabSize: 13, hiddenSize: 8, numLayers: 2, numHeads: 2, maxSeqLen: 16, seed: 3, ...c });

describe('model', () => {
  it('same seed -> same weights and logits; other seed -> different', () => {
    const a = createModel('llama-tiny', { seed: 7 });
    const b = createModel('llama-tiny', { seed: 7 });
    const c = createModel('llama-tiny', { seed: 8 });
    const name = 'transformer.layers.1.attention.query_key_value.weight';
    expect(Array.from(a.param(name).dataSync())).toEqual(Array.from(b.param(name).dataSync()));
    expect(Array.from(a.param(name).dataSync())).not.toEqual(Array.from(c.param(name).dataSync()));
    const la = a.forward({ inputIds: [[1, 2, 3, 4]] }).logits.dataSync();
    const lb = b.forward({ inputIds: [[1, 2, 3, 4]] }).logits.dataSync();
    expect(Array.from(la)).toEqual(Array.from(lb));
  });

  it('stable parameter names and counts per component', () => {
    const m = createModel('gpt2-tiny');
    expect(m.params.names()).toContain('transformer.layers.1.attention.query_key_value.weight');
    expect(m.param('transformer.layers.0.attention.query_key_value.weight').shape).toEqual([192, 64]);
    const c = m.params.counts();
    const sum = Object.values(c.byComponent).reduce((a, b) => a + b, 0);
    expect(sum).toBe(c.total);
    // hand count: emb 512*64 + pos 128*64 + per layer (2 LN + qkv + dense + 2 LN + mlp) + final LN
    const layer = 2 * 64 + (192 * 64 + 192) + (64 * 64 + 64) + 2 * 64 + (256 * 64 + 256) + (64 * 256 + 64);
    expect(c.total).toBe(512 * 64 + 128 * 64 + 2 * layer + 2 * 64);
    expect(c.trainable).toBe(c.total);
  });

  it('freezing by glob', () => {
    const m = createModel('llama-tiny');
    const hit = m.params.freeze('transformer.layers.*.mlp.**');
    expect(hit.length).toBe(2 * 3);
    expect(m.params.counts().trainable).toBe(m.params.counts().total - hit.reduce((s, n) => s + m.param(n).size, 0));
    expect(() => m.params.freeze('nothing.*')).toThrow(/no parameter matches "nothing\.\*"/);
  });

  it('GQA, norm orders and activations all run and differ from each other', () => {
    const outs = (['pre', 'post', 'sandwich'] as const).map((o) => small({ normOrder: o }).forward({ inputIds: [[1, 2, 3]] }).logits.dataSync());
    expect(outs[0]).not.toEqual(outs[1]);
    expect(outs[0]).not.toEqual(outs[2]);
    const g = small({ numHeads: 4, numKvHeads: 1, activation: 'swiglu', norm: 'rmsnorm' }).forward({ inputIds: [[1, 2]] }).logits;
    expect(g.shape).toEqual([1, 2, 13]);
  });

  it('post-norm (BERT order): h = LN1(x + attn(x)), out = LN2(h + mlp(h)), against the same math in tfjs ops; no leak', () => {
    const m = small({ normOrder: 'post', numLayers: 2 });
    const ids = [[1, 5, 2, 7]];
    const P = (n: string) => m.param(n);
    const lin = (x: tf.Tensor, n: string) => tf.add(tf.matMul(x, P(`${n}.weight`), false, true), P(`${n}.bias`));
    const ln = (x: tf.Tensor, n: string) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), P(`${n}.weight`)), P(`${n}.bias`));
    };
    const want = tf.tidy(() => {
      const T = 4, H = 2, D = 4;
      let h = tf.add(tf.gather(P('transformer.word_embeddings.weight'), [1, 5, 2, 7]), tf.slice(P('transformer.position_embeddings.weight'), [0, 0], [T, 8]));
      const causal = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9);
      for (let l = 0; l < 2; l++) {
        const p = `transformer.layers.${l}.`;
        const heads = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [T, H, D]), [1, 0, 2]);
        const [q, k, v] = tf.split(lin(h, `${p}attention.query_key_value`), 3, -1).map(heads);
        const probs = tf.softmax(tf.add(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(D)), causal));
        const attn = lin(tf.reshape(tf.transpose(tf.matMul(probs, v!), [1, 0, 2]), [T, 8]), `${p}attention.dense`);
        h = ln(tf.add(h, attn), `${p}input_layernorm`);
        const up = lin(h, `${p}mlp.dense_h_to_4h`);
        const gelu = tf.mul(tf.mul(up, 0.5), tf.add(1, tf.erf(tf.div(up, Math.SQRT2))));
        h = ln(tf.add(h, lin(gelu, `${p}mlp.dense_4h_to_h`)), `${p}post_attention_layernorm`);
      }
      return tf.matMul(h, P('transformer.word_embeddings.weight'), false, true); // no final norm in post order, tied head
    });
    const got = m.forward({ inputIds: ids }).logits;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.reshape(got, [4, 13]), want))).dataSync()[0]!);
    expect(diff).toBeLessThan(1e-4);
    tf.dispose([got, want]);
    assertNoLeak(() => tf.dispose(m.forward({ inputIds: ids }).logits));
  });

  it('causal mask: a later token does not change earlier logits; bidirectional does', () => {
    const m = small();
    const a = m.forward({ inputIds: [[1, 2, 3]] }).logits.slice([0, 0, 0], [1, 2, -1]).dataSync();
    const b = m.forward({ inputIds: [[1, 2, 9]] }).logits.slice([0, 0, 0], [1, 2, -1]).dataSync();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
    const c = m.forward({ inputIds: [[1, 2, 9]], mask: { kind: 'bidirectional' } }).logits.slice([0, 0, 0], [1, 2, -1]).dataSync();
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - c[i]!)))).toBeGreaterThan(1e-4);
  });

  it('prefix-LM: prefix tokens see each other, the rest is causal', () => {
    const m = small();
    const run = (ids: number[][]) => m.forward({ inputIds: ids, mask: { kind: 'prefix', prefixLength: 2 } }).logits.dataSync();
    const v = 13;
    const a = run([[1, 2, 3, 4]]);
    const b = run([[1, 5, 3, 4]]); // changing prefix token 1 changes position 0
    expect(Math.abs(a[0]! - b[0]!)).toBeGreaterThan(1e-5);
    const c = run([[1, 2, 3, 7]]); // changing a non-prefix token leaves earlier positions unchanged
    for (let i = 0; i < 3 * v; i++) expect(a[i]).toBeCloseTo(c[i]!, 5);
  });

  it('padding mask: padded keys are ignored', () => {
    const m = small();
    const a = m.forward({ inputIds: [[1, 2, 3]], attentionMask: tf.tensor2d([[1, 1, 0]], undefined, 'int32'), mask: { kind: 'bidirectional' } }).logits;
    const b = m.forward({ inputIds: [[1, 2, 8]], attentionMask: tf.tensor2d([[1, 1, 0]], undefined, 'int32'), mask: { kind: 'bidirectional' } }).logits;
    const d = tf.max(tf.abs(tf.sub(a.slice([0, 0, 0], [1, 2, -1]), b.slice([0, 0, 0], [1, 2, -1])))).dataSync()[0]!;
    expect(d).toBeLessThan(1e-5);
  });

  it('arbitrary 0/1 mask equals the causal kernel path when given the causal pattern', () => {
    const m = small();
    const tri = tf.linalg.bandPart(tf.ones([3, 3]), -1, 0).expandDims(0);
    const a = m.forward({ inputIds: [[4, 5, 6]], mask: { kind: 'bidirectional', custom: tri } }).logits.dataSync();
    const b = m.forward({ inputIds: [[4, 5, 6]] }).logits.dataSync();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
  });

  it('full LM loss: finite-difference gradient check w.r.t. parameters', () => {
    const m = small({ hiddenSize: 4, numHeads: 2, vocabSize: 7, intermediateSize: 8, initStd: 0.5 });
    const ids = tf.tensor2d([[1, 2, 3, 4]], undefined, 'int32');
    const labels = tf.tensor2d([[2, 3, 4, 5]], undefined, 'int32');
    const loss = () => m.loss({ inputIds: ids }, labels);
    for (const name of ['transformer.layers.0.attention.query_key_value.weight', 'transformer.word_embeddings.weight', 'transformer.layers.1.mlp.dense_4h_to_h.weight', 'transformer.final_layernorm.weight']) {
      const v = m.param(name);
      const { value, grads } = tf.variableGrads(loss, [v]);
      const analytic = grads[v.name]!.dataSync();
      value.dispose();
      const orig = v.dataSync().slice();
      const eps = 1e-2;
      for (const i of new Set([0, 3, Math.floor(v.size / 2), v.size - 1])) {
        const at = (d: number) => {
          const w = orig.slice();
          w[i] = orig[i]! + d;
          v.assign(tf.tensor(w, v.shape));
          return tf.tidy(() => loss().dataSync()[0]!);
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(numeric - analytic[i]!), `${name}[${i}] numeric ${numeric} analytic ${analytic[i]}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(analytic[i]!));
      }
      v.assign(tf.tensor(orig, v.shape));
    }
  });

  it('forward, backward and optimizer step leave numTensors unchanged', () => {
    const m = createModel('llama-tiny');
    const ids = tf.tensor2d([[1, 2, 3, 4, 5]], undefined, 'int32');
    const labels = tf.tensor2d([[2, 3, 4, 5, 6]], undefined, 'int32');
    const vars = m.params.list().map((p) => p.variable);
    const state: tf.Tensor[][] = vars.map((v) => [tf.zerosLike(v) as tf.Tensor, tf.zerosLike(v) as tf.Tensor]);
    let step = 0;
    assertNoLeak(() => {
      step++;
      const { value, grads } = tf.variableGrads(() => m.loss({ inputIds: ids }, labels), vars);
      value.dispose();
      vars.forEach((v, i) => {
        const [p, mm, vv] = ops.adamwUpdate(v, grads[v.name]!, state[i]![0]!, state[i]![1]!, { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, step });
        v.assign(p);
        p.dispose();
        state[i]![0]!.dispose();
        state[i]![1]!.dispose();
        state[i] = [mm, vv];
      });
      tf.dispose(grads);
    }, { label: 'train step', warmup: 1 });
  });

  it('bad input errors name argument, expected and actual', () => {
    const m = small();
    expect(() => m.forward({ inputIds: tf.tensor1d([1, 2], 'int32') })).toThrow(/inputIds: expected shape \[batch, seq\], got \[2\]/);
    expect(() => m.forward({ inputIds: tf.tensor2d([[1, 2]]) })).toThrow(/inputIds: expected dtype int32, got float32/);
    expect(() => m.forward({ inputIds: [[1, 13]] })).toThrow(/token ids must be in \[0, 13\), got values in \[1, 13\]/);
    expect(() => m.forward({ inputIds: [Array(17).fill(1)] })).toThrow(/sequence length 17 .* exceeds config.maxSeqLen 16/);
    expect(() => m.forward({ inputIds: [[1, 2]], attentionMask: tf.ones([1, 3]) })).toThrow(/attentionMask: expected shape \[1, 2\]/);
    expect(() => createModel('gpt5-tiny')).toThrow(/unknown preset 'gpt5-tiny'; available presets: gpt2-tiny, llama-tiny/);
    expect(() => new Model({ vocabSize: 10, hiddenSize: 8, numLayers: 1, numHeads: 3 })).toThrow(/config.headDim: expected a positive integer, got 2.6/);
    expect(() => new Model({ vocabSize: 10, hiddenSize: 8, numLayers: 1, numHeads: 4, numKvHeads: 3 })).toThrow(/numHeads \(4\) must be a multiple of numKvHeads \(3\)/);
    expect(() => small({ norm: 'batchnorm' as 'layernorm' })).toThrow(/config.norm: expected one of layernorm, rmsnorm, got "batchnorm"/);
    expect(listPresets().map((p) => p.name)).toEqual(expect.arrayContaining(['gpt2-tiny', 'llama-tiny']));
  });
});

describe('forward: logitsToKeep', () => {
  it('gives the last k positions of the full logits (k > T keeps all); the final hidden state is of those positions', () => {
    const m = small();
    const ids = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]];
    const full = m.forward({ inputIds: ids });
    for (const k of [1, 3, 5, 9]) {
      const out = m.forward({ inputIds: ids }, { logitsToKeep: k, outputHiddenStates: true });
      const kk = Math.min(k, 5);
      expect(out.logits.shape).toEqual([2, kk, 13]);
      const want = tf.slice(full.logits, [0, 5 - kk, 0], [-1, kk, -1]);
      const d = tf.max(tf.abs(tf.sub(out.logits, want))).dataSync()[0]!;
      expect(d).toBeLessThanOrEqual(1e-6);
      expect(out.finalHidden!.shape).toEqual([2, kk, 8]);
      expect(out.hiddenStates!.length).toBe(3);
      expect(out.hiddenStates![2]!.shape).toEqual([2, 5, 8]);
      tf.dispose([out.logits, want, out.finalHidden!, ...out.hiddenStates!]);
    }
    full.logits.dispose();
    assertNoLeak(() => m.forward({ inputIds: ids }, { logitsToKeep: 1 }).logits.dispose());
    m.dispose();
  });

  it('rejects a k that is not an integer >= 0, naming it', () => {
    const m = small();
    expect(() => m.forward({ inputIds: [[1, 2]] }, { logitsToKeep: -1 })).toThrow('logitsToKeep: expected an integer >= 0 (0 = every position), got -1');
    expect(() => m.forward({ inputIds: [[1, 2]] }, { logitsToKeep: 1.5 })).toThrow('logitsToKeep: expected an integer >= 0 (0 = every position), got 1.5');
    m.dispose();
  });
});
