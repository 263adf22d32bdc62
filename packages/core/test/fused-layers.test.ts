// The base layer's fusions (residual add + norm, linear + activation): which kernels a pass runs, that they
// keep the unfused bits, that a mixin serving 'linear' still sees every projection, and the engine hook
// that hands a gradient function null for an output without a gradient.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createModel, kernels as K, Mixin, Model, ops, registerGradientTakingNulls, variableGrads, type HookImpls, type HookName } from '../src/index.js';
import { assertGradients, assertNoLeak } from '../src/testkit/index.js';

/** Serves 'linear' by passing through (logging the names): the base must not fuse across it. */
class PassLinear extends Mixin {
  readonly seen = new Set<string>();
  hooks(): HookImpls {
    return { linear: (name, x, ctx, next) => { this.seen.add(name); return next(name, x, ctx); } };
  }
}

async function kernelCounts(f: () => tf.TensorContainer): Promise<Record<string, number>> {
  const info = await tf.profile(() => f());
  tf.dispose(info.result as tf.TensorContainer);
  const counts: Record<string, number> = {};
  for (const k of info.kernels) counts[k.name] = (counts[k.name] ?? 0) + 1;
  return counts;
}

const bits = (t: tf.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
const ids = [[5, 9, 2, 7, 1, 3]];

function lossAndGrads(m: Model) {
  const labels = tf.tensor2d([[9, 2, 7, 1, 3, -100]], [1, 6], 'int32');
  const vars = m.params.names().map((n) => m.param(n));
  const { value, grads } = variableGrads(() => m.loss({ inputIds: ids }, labels, { training: true }), vars);
  labels.dispose();
  return [value, ...vars.map((v) => grads[v.name]!)];
}

describe('fused layer kernels', () => {
  it('a pre-norm GELU layer runs one AddNorm and one LinearActivation; a mixin serving linear sees the up projection, same bits', async () => {
    const plain = createModel('gpt2-tiny', { seed: 4 });
    const n = plain.config.numLayers;
    const counts = await kernelCounts(() => plain.forward({ inputIds: ids }).logits);
    expect([counts[K.AddNorm], counts[K.LinearActivation], counts[K.Gelu] ?? 0, counts[K.LayerNorm]]).toEqual([n, n, 0, n + 1]);

    const traced = createModel('gpt2-tiny', { seed: 4 });
    const pass = new PassLinear();
    traced.addMixin('pass', pass);
    const tracedCounts = await kernelCounts(() => traced.forward({ inputIds: ids }).logits);
    expect([tracedCounts[K.LinearActivation] ?? 0, tracedCounts[K.Gelu]]).toEqual([0, n]);
    for (let l = 0; l < n; l++) expect(pass.seen).toContain(`transformer.layers.${l}.mlp.dense_h_to_4h`);

    const [a, b] = [plain.forward({ inputIds: ids }).logits, traced.forward({ inputIds: ids }).logits];
    expect(bits(a)).toEqual(bits(b));
    const [ga, gb] = [lossAndGrads(plain), lossAndGrads(traced)];
    expect(ga.map(bits)).toEqual(gb.map(bits));
    tf.dispose([a, b, ...ga, ...gb]);
    plain.dispose();
    traced.dispose();
  });

  it('RMSNorm + SwiGLU (llama): AddNorm in RMS form, the SwiGLU projections unfused', async () => {
    const m = createModel('llama-tiny', { seed: 4 });
    const counts = await kernelCounts(() => m.forward({ inputIds: ids }).logits);
    expect([counts[K.AddNorm], counts[K.LinearActivation] ?? 0, counts[K.Swiglu], counts[K.RmsNorm]])
      .toEqual([m.config.numLayers, 0, m.config.numLayers, m.config.numLayers + 1]);
    m.dispose();
  });

  it('post-norm: both adds fused with their norms; gradients against finite differences', async () => {
    const m = new Model({ vocabSize: 13, hiddenSize: 8, numLayers: 2, numHeads: 2, maxSeqLen: 16, seed: 3, normOrder: 'post', activation: 'relu' });
    const counts = await kernelCounts(() => m.forward({ inputIds: [[1, 2, 3]] }).logits);
    expect([counts[K.AddNorm], counts[K.LinearActivation], counts[K.LayerNorm] ?? 0]).toEqual([4, 2, m.config.finalNorm ? 1 : 0]);
    m.dispose();
    // the post-norm use: the sum gets no gradient of its own (null in the gradient function)
    const [a, b, g, be] = [tf.randomNormal([3, 8], 0, 1, 'float32', 1), tf.randomNormal([3, 8], 0, 1, 'float32', 2),
      tf.randomUniform([8], 0.5, 1.5, 'float32', 3), tf.randomNormal([8], 0, 1, 'float32', 4)];
    assertGradients((x, y, gg, bb) => ops.addLayerNorm(x!, y!, gg!, bb!, 1e-5)[1], [a, b, g, be], { label: 'addLayerNorm normed' });
    assertGradients((x, y, gg) => ops.addRmsNorm(x!, y!, gg!, 1e-6)[1], [a, b, g], { label: 'addRmsNorm normed' });
    assertGradients((x, y, gg, bb) => { const [s, n] = ops.addLayerNorm(x!, y!, gg!, bb!, 1e-5); return tf.add(tf.mul(s, 0.5), n); },
      [a, b, g, be], { label: 'addLayerNorm both outputs' });
    for (const act of ['gelu', 'gelu_tanh', 'relu'] as const) {
      const [x, w, bias] = [tf.randomNormal([4, 6], 0, 1, 'float32', 5), tf.randomNormal([5, 6], 0, 0.5, 'float32', 6), tf.randomNormal([5], 0, 0.5, 'float32', 7)];
      assertGradients((xx, ww, bb) => ops.linear(xx!, ww!, bb!, act), [x, w, bias], { label: `linear + ${act}` });
      tf.dispose([x, w, bias]);
    }
    tf.dispose([a, b, g, be]);
  });

  it('RoPE: q and k rotated in the QKV split (one kernel); a mixin taking applyRotary over (no angles offered) gets the hook, same bits', async () => {
    const fused = createModel('llama-tiny', { seed: 5 });
    const n = fused.config.numLayers;
    const counts = await kernelCounts(() => fused.forward({ inputIds: ids }).logits);
    expect([counts[K.SplitHeadsRotary], counts[K.Rotary] ?? 0, counts[K.SplitHeads] ?? 0]).toEqual([n, 0, 0]);
    /** Takes applyRotary over from rope and defers to it: the base cannot know its angles, so it runs the hook. */
    class PassRotary extends Mixin {
      calls = 0;
      hooks(): HookImpls {
        return { applyRotary: (q, k, ctx, next) => { this.calls++; return next(q, k, ctx); } };
      }
      override overrides(): HookName[] { return ['applyRotary']; }
    }
    const hooked = createModel('llama-tiny', { seed: 5 });
    const pass = new PassRotary();
    hooked.addMixin('passRotary', pass);
    const hookedCounts = await kernelCounts(() => hooked.forward({ inputIds: ids }).logits);
    expect([hookedCounts[K.SplitHeadsRotary] ?? 0, hookedCounts[K.Rotary], hookedCounts[K.SplitHeads]]).toEqual([0, 2 * n, n]);
    expect(pass.calls).toBe(n);
    const [a, b] = [fused.forward({ inputIds: ids }).logits, hooked.forward({ inputIds: ids }).logits];
    expect(bits(a)).toEqual(bits(b));
    const [ga, gb] = [lossAndGrads(fused), lossAndGrads(hooked)];
    expect(ga.map(bits)).toEqual(gb.map(bits));
    tf.dispose([a, b, ...ga, ...gb]);
    fused.dispose();
    hooked.dispose();
  });

  it('gatedResidual, splitHeadsRotary and embeddingScatter: gradients against finite differences; no fused op leaks a tensor', () => {
    const r = (shape: number[], seed: number, scale = 1) => tf.randomNormal(shape, 0, scale, 'float32', seed);
    const [x, y, gate] = [r([3, 5], 11), r([3, 5], 12), r([1], 13, 0.5)];
    assertGradients((a, b, g) => ops.gatedResidual(a!, b!, g!), [x, y, gate], { label: 'gatedResidual' });
    const [qkv, cos, sin] = [r([2, 3, 32], 14), r([1, 3, 2], 15), r([1, 3, 2], 24)];
    assertGradients((q) => tf.concat(ops.splitHeadsRotary(q!, [2, 1, 1], 8, cos, sin).map((p) => tf.reshape(p, [-1]))), [qkv], { label: 'splitHeadsRotary' });
    const [table, tokens] = [r([6, 4], 16), r([1, 2, 4], 17)];
    const ids = tf.tensor2d([[1, 5, 0], [5, 2, 1]], [2, 3], 'int32');
    const plan = ops.rowGather([0, 6, 2, 3, 7, 5], 8); // positions 1 and 4 take the two tokens
    assertGradients((tb, tk) => ops.embeddingScatter(tb!, ids, tk!, plan), [table, tokens], { label: 'embeddingScatter' });
    const [a4, b4, g4, be4, w, bias] = [r([3, 4], 18), r([3, 4], 19), r([4], 20), r([4], 21), r([6, 4], 22), r([6], 23)];
    const cases: Array<[string, () => tf.Tensor[]]> = [
      ['addLayerNorm', () => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(ops.addLayerNorm(p, q, g4, be4)[1]))([a4, b4])],
      ['addRmsNorm', () => tf.grads((p: tf.Tensor, q: tf.Tensor) => { const [s2, n2] = ops.addRmsNorm(p, q, g4); return tf.add(tf.sum(s2), tf.sum(n2)); })([a4, b4])],
      ['linear + gelu', () => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(ops.linear(p, q, bias, 'gelu')))([a4, w])],
      ['gatedResidual', () => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(ops.gatedResidual(p, q, gate)))([x, y])],
      ['splitHeadsRotary', () => tf.grads((q: tf.Tensor) => tf.addN(ops.splitHeadsRotary(q, [2, 1, 1], 8, cos, sin).map((p) => tf.sum(p))))([qkv])],
      ['embeddingScatter', () => tf.grads((tb: tf.Tensor, tk: tf.Tensor) => tf.sum(ops.embeddingScatter(tb, ids, tk, plan)))([table, tokens])],
    ];
    for (const [label, f] of cases) assertNoLeak(f, { label });
    tf.dispose([x, y, gate, qkv, cos, sin, table, tokens, ids, plan.idx, plan.inv, a4, b4, g4, be4, w, bias]);
  });

  it('registerGradientTakingNulls: an output without a gradient arrives as null, in both gradient walks', () => {
    const name = 'VlmixTestTwoOutputs';
    for (const backendName of [tf.getBackend()]) {
      if (!tf.getKernel(name, backendName)) {
        tf.registerKernel({ kernelName: name, backendName, kernelFunc: ({ inputs }) => tf.tidy(() => {
          const x = inputs.x as tf.Tensor;
          return [tf.mul(x, 2), tf.mul(x, 3)];
        }) as unknown as tf.TensorInfo[] });
      }
    }
    const seen: Array<Array<tf.Tensor | null>> = [];
    registerGradientTakingNulls({
      kernelName: name,
      gradFunc: (dys) => {
        const [d0, d1] = dys as Array<tf.Tensor | null>;
        seen.push([d0 ?? null, d1 ?? null]);
        return { x: () => tf.add(d0 ? tf.mul(d0, 2) : 0, d1 ? tf.mul(d1, 3) : 0) };
      },
    });
    const two = (x: tf.Tensor) => tf.engine().runKernel(name, { x }, {}) as unknown as tf.Tensor[];
    const x = tf.variable(tf.tensor1d([1, -2, 4]));
    const g1 = tf.grad((v: tf.Tensor) => tf.sum(two(v)[0]!))(x);
    const { grads } = variableGrads(() => tf.sum(two(x)[1]!), [x]);
    const g3 = tf.grad((v: tf.Tensor) => { const [a, b] = two(v); return tf.add(tf.sum(a!), tf.sum(b!)); })(x);
    expect([Array.from(g1.dataSync()), Array.from(grads[x.name]!.dataSync()), Array.from(g3.dataSync())]).toEqual([[2, 2, 2], [3, 3, 3], [5, 5, 5]]);
    expect(seen.map(([a, b]) => [a !== null, b !== null])).toEqual([[true, false], [false, true], [true, true]]);
    tf.dispose([x, g1, g3, ...Object.values(grads)]);
  });
});
