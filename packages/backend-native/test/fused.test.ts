// vlmix fused kernels: native vlmix-cpu vs the composite reference (@vlmix/core ops on tfjs 'cpu'),
// forward and backward (gradients go through the *Grad kernels).
import * as tf from '@tensorflow/tfjs';
import { ops } from '@vlmix/core';
import * as K from '@vlmix/core/kernel-names';
import { afterAll, describe, expect, it } from 'vitest';
import { CPU_ONLY_FUSED_KERNELS } from '../src/fused.js';
import { NATIVE_BACKENDS, Rand, availability, expectClose, runOn } from './helpers.js';

const original = tf.getBackend();
afterAll(async () => {
  await tf.setBackend(original);
});

type Build = (r: Rand) => tf.Tensor | tf.Tensor[];
const TOL = { rtol: 2e-4, atol: 2e-5 };

async function compareOn(backend: string, name: string, seed: number, build: Build, tol = TOL) {
  const expected = await runOn('cpu', seed, build);
  const actual = await runOn(backend, seed, build);
  expectClose(actual, expected, tol.rtol, tol.atol, name);
}

/** Value and gradients of sum(f(xs) * w) wrt xs. */
function withGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, make: (r: Rand) => tf.Tensor[]): Build {
  return (r) => {
    const xs = make(r);
    const y = f(...xs);
    const w = r.floats(y.shape, -1, 1);
    const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs);
    return [y, ...g];
  };
}

for (const backend of NATIVE_BACKENDS) {
const av = availability(backend);
const compare = (name: string, seed: number, build: Build, tol = TOL) => compareOn(backend, name, seed, build, tol);
describe.skipIf(!av.ok)(`fused kernels on ${backend}${av.ok ? '' : ` (skipped: ${av.reason})`}`, () => {
  it(`all fused kernels are native on ${backend}`, async () => {
    await tf.setBackend(backend);
    const cpuOnly = backend === 'vlmix-cpu' ? [] : CPU_ONLY_FUSED_KERNELS;
    expect(ops.nativeFusedKernels(backend).sort()).toEqual(K.ALL_FUSED_KERNELS.filter((n) => !cpuOnly.includes(n)).sort());
  });

  for (const shape of [[7, 33], [2, 5, 129], [1, 1]]) {
    it(`layerNorm ${JSON.stringify(shape)}`, () => compare('layerNorm', 1, withGrads((x, g, b) => ops.layerNorm(x, g, b, 1e-5),
      (r) => [r.floats(shape, -3, 3), r.floats([shape[shape.length - 1]], 0.5, 1.5), r.floats([shape[shape.length - 1]])])));
    it(`rmsNorm ${JSON.stringify(shape)}`, () => compare('rmsNorm', 2, withGrads((x, g) => ops.rmsNorm(x, g, 1e-6),
      (r) => [r.floats(shape, -3, 3), r.floats([shape[shape.length - 1]], 0.5, 1.5)])));
  }
  it('layerNorm many rows (chunked dgamma)', () => compare('layerNorm rows', 3, withGrads((x, g, b) => ops.layerNorm(x, g, b, 1e-5),
    (r) => [r.floats([300, 16]), r.floats([16]), r.floats([16])]), { rtol: 5e-4, atol: 1e-4 }));

  const ATT: Array<{ tag: string; B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; Dv: number;
    causal: boolean; bias?: number[]; maskFrac?: number }> = [
    { tag: 'mha', B: 2, Hq: 2, Hkv: 2, Tq: 7, Tk: 7, D: 8, Dv: 8, causal: false },
    { tag: 'gqa causal', B: 1, Hq: 4, Hkv: 2, Tq: 33, Tk: 33, D: 16, Dv: 8, causal: true },
    { tag: 'mqa, >1 query block', B: 1, Hq: 3, Hkv: 1, Tq: 70, Tk: 70, D: 8, Dv: 4, causal: true },
    { tag: 'kv cache offset', B: 2, Hq: 2, Hkv: 1, Tq: 3, Tk: 11, D: 8, Dv: 8, causal: true },
    { tag: 'Tq > Tk (masked rows -> 0)', B: 1, Hq: 2, Hkv: 2, Tq: 9, Tk: 5, D: 4, Dv: 4, causal: true },
    { tag: 'bias [B,1,Tq,Tk]', B: 2, Hq: 2, Hkv: 2, Tq: 5, Tk: 6, D: 4, Dv: 4, causal: false, bias: [2, 1, 5, 6] },
    { tag: 'padding bias [B,1,1,Tk] + causal', B: 2, Hq: 4, Hkv: 2, Tq: 6, Tk: 6, D: 4, Dv: 4, causal: true, bias: [2, 1, 1, 6], maskFrac: 0.4 },
    { tag: 'bias masking whole rows', B: 1, Hq: 2, Hkv: 1, Tq: 6, Tk: 4, D: 4, Dv: 4, causal: false, bias: [1, 2, 6, 1], maskFrac: 0.5 },
  ];
  for (const c of ATT) {
    it(`attention ${c.tag}`, () => compare(`attention ${c.tag}`, 4, (r) => {
      const q = r.floats([c.B, c.Hq, c.Tq, c.D]), k = r.floats([c.B, c.Hkv, c.Tk, c.D]), v = r.floats([c.B, c.Hkv, c.Tk, c.Dv]);
      let bias: tf.Tensor | null = null;
      if (c.bias) {
        const shape = c.bias[3] === 1 ? [...c.bias.slice(0, 3), c.Tk] : c.bias;
        if (c.maskFrac) {
          // rows of -1e9: with bias [..,Tq,1] broadcast over keys, a masked row masks every key.
          const m = tf.less(r.floats(c.bias, 0, 1), c.maskFrac);
          bias = tf.broadcastTo(tf.where(m, tf.fill(c.bias, -1e9), tf.zeros(c.bias)), shape);
        } else {
          bias = r.floats(shape, -1, 1);
        }
      }
      const f = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => ops.attention(qq, kk, vv, { bias, causal: c.causal });
      return withGrads(f, () => [q, k, v])(r);
    }));
  }

  it('softmaxCrossEntropy with ignoreIndex', () => compare('sce', 5, (r) => {
    const logits = r.floats([33, 129], -4, 4);
    const labels = tf.where(tf.less(r.floats([33], 0, 1), 0.2), tf.fill([33], -100, 'int32'), r.ints([33], 0, 129));
    return withGrads((l) => ops.softmaxCrossEntropy(l, labels, -100), () => [logits])(r);
  }));
  for (const [tag, frac] of [['some ignored', 0.3], ['none ignored', 0], ['all ignored', 1]] as Array<[string, number]>) {
    it(`crossEntropyLoss (mean kernel), ${tag}`, () => compare(`ce mean ${tag}`, 15, (r) => {
      const logits = r.floats([3, 11, 37], -4, 4);
      const labels = tf.where(tf.less(r.floats([3, 11], 0, 1), frac), tf.fill([3, 11], -1, 'int32'), r.ints([3, 11], 0, 37));
      return withGrads((l) => ops.crossEntropyLoss(l, labels, -1), () => [logits])(r);
    }));
  }
  for (const approximate of ['none', 'tanh'] as const) {
    it(`gelu ${approximate}`, () => compare(`gelu ${approximate}`, 6, withGrads((x) => ops.gelu(x, approximate), (r) => [r.floats([33, 7], -5, 5)])));
  }
  it('swiglu', () => compare('swiglu', 7, withGrads((g, u) => ops.swiglu(g, u), (r) => [r.floats([7, 33], -6, 6), r.floats([7, 33])])));
  // linear: the GEMM with the weight transposed, the bias row, and the three gradients in one kernel each way
  for (const [tag, xs, n, bias] of [['2-D with bias', [7, 33], 5, true], ['3-D without bias', [2, 5, 17], 9, false],
    ['one row', [1, 1, 8], 3, true], ['no rows', [0, 6], 4, true], ['no input features', [3, 0], 4, true]] as Array<[string, number[], number, boolean]>) {
    it(`linear ${tag}`, () => compare(`linear ${tag}`, 11, withGrads((x, w, b) => ops.linear(x, w, b ?? null),
      (r) => [r.floats(xs), r.floats([n, xs[xs.length - 1]!]), ...(bias ? [r.floats([n])] : [])])));
  }
  // The backward kernel runs its two GEMMs side by side (one thread each) below 4 M multiply-adds, and one
  // after the other (each split over the threads) above: either way the bits of the plain matmuls.
  for (const [M, N, Kd] of [[68, 64, 64], [300, 200, 100]]) {
    it(`linear gradient ${M}x${N}x${Kd}: the same bits as the matmuls it stands for`, async () => {
      if (!NATIVE_BACKENDS.includes('vlmix-cpu')) return;
      await tf.setBackend('vlmix-cpu');
      const r = new Rand(21);
      const [dy, x, w, b] = [r.floats([M, N]), r.floats([M, Kd]), r.floats([N, Kd]), r.floats([N])];
      const [dx, dw, db] = tf.engine().runKernel(K.LinearGrad, { dy, x, weight: w, bias: b }) as tf.Tensor[];
      const bits = (t: tf.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
      const [mx, mw, mb] = [tf.matMul(dy, w), tf.matMul(dy, x, true, false), tf.sum(dy, 0)];
      expect(bits(dx!)).toEqual(bits(mx));
      expect(bits(dw!)).toEqual(bits(mw));
      expect(bits(db!)).toEqual(bits(mb));
      tf.dispose([dy, x, w, b, dx!, dw!, db!, mx, mw, mb]);
    });
  }
  // residual add + norm: both outputs carry a gradient (pre-norm), or only the normed one (post-norm)
  for (const [tag, shape] of [['2-D', [7, 33]], ['3-D', [2, 5, 129]], ['one element', [1, 1]]] as Array<[string, number[]]>) {
    const c = shape[shape.length - 1]!;
    it(`addLayerNorm ${tag}`, () => compare(`addLayerNorm ${tag}`, 16, (r) => {
      const [a, b, g, be, w] = [r.floats(shape, -3, 3), r.floats(shape, -3, 3), r.floats([c], 0.5, 1.5), r.floats([c]), r.floats(shape)];
      const f = (x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => ops.addLayerNorm(x, y, gg, bb, 1e-5);
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const [sum, normed] = f(x, y, gg, bb);
        return tf.add(tf.sum(tf.mul(normed, w)), tf.sum(tf.mul(sum, sum)));
      })([a, b, g, be]);
      return [...f(a, b, g, be), ...grads];
    }));
    it(`addRmsNorm ${tag}, the sum without a gradient (post-norm)`, () => compare(`addRmsNorm ${tag}`, 17, (r) => {
      const [a, b, g, w] = [r.floats(shape, -3, 3), r.floats(shape, -3, 3), r.floats([c], 0.5, 1.5), r.floats(shape)];
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor) => tf.sum(tf.mul(ops.addRmsNorm(x, y, gg, 1e-6)[1], w)))([a, b, g]);
      return [...ops.addRmsNorm(a, b, g, 1e-6), ...grads];
    }));
  }
  // linear + activation: the forward kernel's two outputs, and the gradients through the stashed preactivation
  for (const [tag, xs, n, bias, act] of [['gelu 2-D with bias', [7, 33], 5, true, 'gelu'], ['gelu_tanh 3-D without bias', [2, 5, 17], 9, false, 'gelu_tanh'],
    ['relu one row', [1, 1, 8], 3, true, 'relu'], ['gelu no rows', [0, 6], 4, true, 'gelu']] as Array<[string, number[], number, boolean, K.FusedActivation]>) {
    it(`linear + ${tag}`, () => compare(`linear + ${tag}`, 18, withGrads((x, w, b) => ops.linear(x, w, b ?? null, act),
      (r) => [r.floats(xs, -2, 2), r.floats([n, xs[xs.length - 1]!]), ...(bias ? [r.floats([n])] : [])])));
  }
  // The fused kernels run the addon functions of the kernels they replace: the same bits, values and gradients.
  it('addLayerNorm / addRmsNorm / linear + activation: the bits of the unfused ops, values and gradients', async () => {
    await tf.setBackend(backend);
    const r = new Rand(19);
    const bits = (ts: tf.Tensor[]) => ts.map((t) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer)));
    const [a, b, g, be, w1, w2] = [r.floats([6, 40], -3, 3), r.floats([6, 40], -3, 3), r.floats([40], 0.5, 1.5), r.floats([40]), r.floats([6, 40]), r.floats([6, 40])];
    const loss = (sum: tf.Tensor, normed: tf.Tensor) => tf.add(tf.sum(tf.mul(normed, w1)), tf.sum(tf.mul(sum, w2)));
    for (const rms of [false, true]) {
      const fused = (x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => (rms ? ops.addRmsNorm(x, y, gg, 1e-6) : ops.addLayerNorm(x, y, gg, bb, 1e-5));
      const plain = (x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const sum = tf.add(x, y);
        return [sum, rms ? ops.rmsNorm(sum, gg, 1e-6) : ops.layerNorm(sum, gg, bb, 1e-5)] as [tf.Tensor, tf.Tensor];
      };
      const run = (f: typeof fused) => {
        const out = f(a, b, g, be);
        const grads = tf.grads((x: tf.Tensor, y: tf.Tensor, gg: tf.Tensor, bb?: tf.Tensor) => loss(...f(x, y, gg, bb ?? be)))(rms ? [a, b, g] : [a, b, g, be]);
        return [...out, ...grads];
      };
      expect(bits(run(fused)), `rms ${rms}`).toEqual(bits(run(plain)));
    }
    const [x, wt, bias] = [r.floats([5, 24], -2, 2), r.floats([16, 24]), r.floats([16])];
    const plainAct = { gelu: (z: tf.Tensor) => ops.gelu(z, 'none'), gelu_tanh: (z: tf.Tensor) => ops.gelu(z, 'tanh'), relu: (z: tf.Tensor) => tf.relu(z) };
    for (const act of ['gelu', 'gelu_tanh', 'relu'] as const) {
      const w = r.floats([5, 16]);
      const run = (f: (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.Tensor) =>
        [f(x, wt, bias), ...tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(f(xx, ww, bb), w)))([x, wt, bias])];
      expect(bits(run((xx, ww, bb) => ops.linear(xx, ww, bb, act))), act).toEqual(bits(run((xx, ww, bb) => plainAct[act](ops.linear(xx, ww, bb)))));
    }
  });
  for (const [tag, shape, gateShape] of [['[2, 5, 9], gate [1]', [2, 5, 9], [1]], ['[3, 4], scalar gate', [3, 4], []]] as Array<[string, number[], number[]]>) {
    it(`gatedResidual ${tag}`, () => compare(`gatedResidual ${tag}`, 20, withGrads((x, y, g) => ops.gatedResidual(x, y, g),
      (r) => [r.floats(shape), r.floats(shape), r.floats(gateShape, -1, 1)])));
  }
  it('gatedResidual: the bits of tf.add(tf.mul(y, tf.tanh(gate)), x), values and gradients', async () => {
    await tf.setBackend(backend);
    const r = new Rand(22);
    const bits = (ts: tf.Tensor[]) => ts.map((t) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer)));
    const [x, y, g, w] = [r.floats([4, 6, 8]), r.floats([4, 6, 8]), r.floats([1], -1, 1), r.floats([4, 6, 8])];
    const run = (f: (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor) =>
      [f(x, y, g), ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), w)))([x, y, g])];
    expect(bits(run(ops.gatedResidual))).toEqual(bits(run((a, b, c) => tf.add(tf.mul(b, tf.tanh(c)), a))));
  });
  // split + rotary: q and k of a fused QKV projection rotated in the split's kernel (GQA, partial rotation, both pair layouts)
  for (const [tag, B, T, heads, D, R, Bc, style] of [['half gqa', 2, 5, [4, 2, 2], 8, 4, 2, 'half'], ['interleaved partial', 1, 3, [2, 2, 2], 10, 3, 1, 'interleaved']] as
    Array<[string, number, number, number[], number, number, number, 'half' | 'interleaved']>) {
    const C = heads.reduce((a, h) => a + h, 0) * D;
    it(`splitHeadsRotary ${tag}`, () => compare(`splitHeadsRotary ${tag}`, 23, (r) => {
      const [x, cos, sin] = [r.floats([B, T, C]), r.floats([Bc, T, R]), r.floats([Bc, T, R])];
      const ws = heads.map((h) => r.floats([B, h, T, D]));
      const f = (xx: tf.Tensor) => ops.splitHeadsRotary(xx, heads, D, cos, sin, style);
      const [dx] = tf.grads((xx: tf.Tensor) => tf.addN(f(xx).map((p, i) => tf.sum(tf.mul(p, ws[i]!)))))([x]);
      return [...f(x), dx!];
    }));
  }
  it('splitHeadsRotary: the bits of splitHeads then rotary, values and gradients', async () => {
    await tf.setBackend(backend);
    const r = new Rand(24);
    const bits = (ts: tf.Tensor[]) => ts.map((t) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer)));
    const [x, cos, sin] = [r.floats([2, 7, 64]), r.floats([2, 7, 4]), r.floats([2, 7, 4])];
    const ws = [r.floats([2, 4, 7, 8]), r.floats([2, 2, 7, 8]), r.floats([2, 2, 7, 8])];
    const run = (f: (xx: tf.Tensor) => tf.Tensor[]) => [...f(x), ...tf.grads((xx: tf.Tensor) => tf.addN(f(xx).map((p, i) => tf.sum(tf.mul(p, ws[i]!)))))([x])];
    const fused = run((xx) => ops.splitHeadsRotary(xx, [4, 2, 2], 8, cos, sin));
    const plain = run((xx) => ops.splitHeads(xx, [4, 2, 2], 8).map((p, i) => (i < 2 ? ops.rotary(p, cos, sin) : p)));
    expect(bits(fused)).toEqual(bits(plain));
  });
  // embedding + placeholder scatter: text rows from the table (ids repeat), image rows from the tokens
  const scatterPlan = () => ops.rowGather([0, 10, 2, 11, 12, 5, 6, 13, 8, 9], 14); // 10 ids, 4 tokens
  const scatterIds = () => tf.tensor2d([[3, 7, 3, 7, 7, 1], [0, 7, 3, 2, 2, 7]].flat().slice(0, 10), [2, 5], 'int32');
  it('embeddingScatter', () => compare('embeddingScatter', 25, (r) => {
    const [table, tokens, w] = [r.floats([9, 6]), r.floats([2, 2, 6]), r.floats([2, 5, 6])];
    const [ids, plan] = [scatterIds(), scatterPlan()];
    const f = (tb: tf.Tensor, tk: tf.Tensor) => ops.embeddingScatter(tb, ids, tk, plan);
    return [f(table, tokens), ...tf.grads((tb: tf.Tensor, tk: tf.Tensor) => tf.sum(tf.mul(f(tb, tk), w)))([table, tokens])];
  }));
  it('embeddingScatter: the bits of tf.gather, tf.concat and gatherRows, values and gradients', async () => {
    await tf.setBackend(backend);
    const r = new Rand(26);
    const bits = (ts: tf.Tensor[]) => ts.map((t) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer)));
    const [table, tokens, w, ids, plan] = [r.floats([9, 6]), r.floats([2, 2, 6]), r.floats([2, 5, 6]), scatterIds(), scatterPlan()];
    const run = (f: (tb: tf.Tensor, tk: tf.Tensor) => tf.Tensor) => [f(table, tokens), ...tf.grads((tb: tf.Tensor, tk: tf.Tensor) => tf.sum(tf.mul(f(tb, tk), w)))([table, tokens])];
    const fused = run((tb, tk) => ops.embeddingScatter(tb, ids, tk, plan));
    const plain = run((tb, tk) => tf.reshape(ops.gatherRows(tf.concat([tf.reshape(tf.gather(tb, ids), [10, 6]), tf.reshape(tk, [4, 6])]), plan), [2, 5, 6]));
    expect(bits(fused)).toEqual(bits(plain));
  });
  // the head with its loss: rows ignored, a label repeated; then more rows than one chunk of logits (16 MiB)
  const lceLabels = () => tf.tensor1d([5, -100, 0, 36, -100, 5, 12, -100], 'int32');
  it('linearCrossEntropy', () => compare('linearCrossEntropy', 27, (r) => {
    const [x, w, labels] = [r.floats([8, 24]), r.floats([37, 24], -0.3, 0.3), lceLabels()];
    return [ops.linearCrossEntropy(x, w, labels), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.linearCrossEntropy(a, b, labels))([x, w])];
  }));
  it('linearCrossEntropy over several chunks of rows', () => compare('linearCrossEntropy chunks', 28, (r) => {
    const [x, w] = [r.floats([6, 3]), r.floats([1 << 20, 3])]; // 4 rows per chunk at V = 2^20: 5 kept rows, 2 chunks
    const labels = tf.tensor1d([7, 1048575, -1, 3, 524288, 9], 'int32');
    return [ops.linearCrossEntropy(x, w, labels, -1), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.linearCrossEntropy(a, b, labels, -1))([x, w])];
  }));
  it('addLayerNorm, addRmsNorm, gatedResidual and linear reject bad arguments, naming them', () => {
    expect(() => ops.embeddingScatter(tf.zeros([9, 6]), scatterIds(), tf.zeros([3, 6]), scatterPlan())).toThrow('plan: expected a row gather over 13 rows (10 ids + 3 tokens), got 14');
    expect(() => ops.embeddingScatter(tf.zeros([9, 6]), scatterIds(), tf.zeros([4, 5]), scatterPlan())).toThrow('tokens: expected last dim 6 (the table\'s width), got [4, 5]');
    expect(() => ops.splitHeadsRotary(tf.zeros([1, 2, 16]), [1, 1], 8, tf.zeros([1, 2, 5]), tf.zeros([1, 2, 5]))).toThrow('cos: 5 rotated pairs need 2 * 5 <= head dim 8');
    expect(() => ops.splitHeadsRotary(tf.zeros([1, 2, 16]), [1, 1], 8, tf.zeros([1, 3, 4]), tf.zeros([1, 3, 4]))).toThrow('cos: expected shape [*, 2, *], got [1, 3, 4]');
    expect(() => ops.splitHeadsRotary(tf.zeros([1, 2, 16]), [1, 1], 8, tf.zeros([1, 2, 4]), tf.zeros([1, 2, 4]), 'half', 3)).toThrow('rotated: expected an integer in [0, 2], got 3');
    expect(() => ops.gatedResidual(tf.zeros([2, 3]), tf.zeros([2, 3]), tf.zeros([2]))).toThrow('gate: expected one element ([1] or a scalar), got [2]');
    expect(() => ops.gatedResidual(tf.zeros([2, 3]), tf.zeros([3, 2]), tf.zeros([1]))).toThrow('y: expected shape [2, 3], got [3, 2]');
    const [a, g] = [tf.zeros([2, 4]), tf.ones([4])];
    expect(() => ops.addLayerNorm(a, tf.zeros([2, 3]), g, g)).toThrow(/b: expected shape \[2, 4\], got \[2, 3\]/);
    expect(() => ops.addRmsNorm(a, a, tf.ones([3]))).toThrow(/gamma: expected shape \[4\], got \[3\]/);
    expect(() => ops.addLayerNorm(a, tf.zeros([2, 4], 'int32'), g, g)).toThrow(/b: expected dtype float32, got int32/);
    expect(() => ops.linear(a, tf.zeros([3, 4]), null, 'silu' as K.FusedActivation)).toThrow("activation: expected one of 'gelu', 'gelu_tanh', 'relu', got \"silu\"");
  });
  // rotary: both pair layouts, partial rotation, per-row or shared angles, and the inverse as the gradient
  for (const [tag, B, H, T, D, R, Bc, style] of [['half', 2, 3, 5, 8, 4, 2, 'half'], ['interleaved', 2, 2, 4, 8, 4, 1, 'interleaved'],
    ['partial half', 1, 2, 3, 10, 3, 1, 'half'], ['partial interleaved', 2, 1, 6, 6, 2, 2, 'interleaved']] as Array<[string, number, number, number, number, number, number, 'half' | 'interleaved']>) {
    it(`rotary ${tag}`, () => compare(`rotary ${tag}`, 14, (r) => {
      // cos/sin made on the host: the backends' own cos/sin may differ in the last bit (CUDA's cosf/sinf), and
      // this test is about the rotation.
      const ang = r.floats([Bc, T, R], -3, 3), a = ang.dataSync();
      const [c, s] = [tf.tensor(Float32Array.from(a, Math.cos), ang.shape), tf.tensor(Float32Array.from(a, Math.sin), ang.shape)];
      return withGrads((x) => ops.rotary(x, c, s, style), () => [r.floats([B, H, T, D])])(r);
    }, { rtol: 0, atol: 1e-7 }));
  }
  // split / merge heads: strided channel copies, each the other's gradient
  for (const [tag, B, T, heads, D] of [['qkv', 2, 5, [4, 2, 2], 8], ['one part', 3, 1, [3], 4], ['kv', 1, 7, [2, 2], 16]] as Array<[string, number, number, number[], number]>) {
    const C = heads.reduce((a, h) => a + h, 0) * D;
    it(`splitHeads ${tag}`, () => compare(`splitHeads ${tag}`, 12, (r) => {
      const x = r.floats([B, T, C]);
      const ws = heads.map((h) => r.floats([B, h, T, D]));
      const f = (y: tf.Tensor) => tf.addN(ops.splitHeads(y, heads, D).map((p, i) => tf.sum(tf.mul(p, ws[i]!))));
      return [...ops.splitHeads(x, heads, D), tf.grad(f)(x)];
    }, { rtol: 0, atol: 0 }));
    it(`mergeHeads ${tag}`, () => compare(`mergeHeads ${tag}`, 13, withGrads((...xs) => ops.mergeHeads(xs),
      (r) => heads.map((h) => r.floats([B, h, T, D]))), { rtol: 0, atol: 0 }));
  }
  // gatherRows: forward is a gather, backward the inverse gather with a zero row (VlmixGatherRowsGrad).
  for (const [tag, rows, idx] of [['permutation', 9, [3, 0, 8, 1, 7, 2, 6, 4, 5]], ['subset', 40, [39, 0, 17, 5]],
    ['empty', 6, []], ['all rows in order', 5, [0, 1, 2, 3, 4]]] as Array<[string, number, number[]]>) {
    it(`gatherRows ${tag}`, () => compare(`gatherRows ${tag}`, 9, withGrads((x) => ops.gatherRows(x, idx),
      (r) => [r.floats([rows, 33])]), { rtol: 0, atol: 0 }));
  }
  it('gatherRows of int32 rows keeps the dtype', () => compare('gatherRows int32', 10,
    (r) => ops.gatherRows(r.ints([7, 5], -9, 9), [6, 2, 0]), { rtol: 0, atol: 0 }));
  it('VlmixGatherRowsGrad rejects an inverse index past the zero row', async () => {
    await tf.setBackend(backend);
    const dy = tf.ones([2, 3]);
    const inv = tf.tensor1d([0, 3, 1], 'int32');
    if (backend === 'vlmix-cuda') {
      // Checked on the GPU: the launch returns, and the next read reports it.
      const dx = tf.engine().runKernel(K.GatherRowsGrad, { dy, inv }) as tf.Tensor;
      expect(() => dx.dataSync()).toThrow(/VlmixGatherRowsGrad: an index is past the zero row/);
      dx.dispose();
    } else {
      expect(() => tf.engine().runKernel(K.GatherRowsGrad, { dy, inv })).toThrow(/index 3 at 1 is not in \[0, 2\]/);
    }
    tf.dispose([dy, inv]);
  });
  it('adamwMulti (one call, per-tensor weight decay) matches the composite, and adamw per tensor bit for bit', async () => {
    const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 };
    const groupsOf = (r: Rand) => [[33, 7], [129], [1], [4, 300]].map((s, i) => ({
      param: r.floats(s), grad: r.floats(s), m: r.floats(s, -0.1, 0.1), v: r.floats(s, 0, 0.1), weightDecay: i === 1 ? 0 : 0.1,
    }));
    const multi = (r: Rand) => ops.adamwUpdateMulti(groupsOf(r), hyper).flat();
    await compare('adamwMulti', 11, multi);
    const single = (r: Rand) => groupsOf(r).flatMap((g) => ops.adamwUpdate(g.param, g.grad, g.m, g.v, { ...hyper, weightDecay: g.weightDecay }));
    expectClose(await runOn(backend, 11, multi), await runOn(backend, 11, single), 0, 0, 'adamwMulti vs adamw');
  });
  it('sumSquares (one call) matches tfjs, and equals tf.addN of each sum of squares bit for bit', async () => {
    const xsOf = (r: Rand) => [[33, 7], [129], [], [4, 300], [0, 5]].map((sh) => r.floats(sh));
    const fused = (r: Rand) => ops.sumSquares(xsOf(r));
    await compare('sumSquares', 16, fused);
    const plain = (r: Rand) => tf.addN(xsOf(r).map((x) => tf.sum(tf.square(x))));
    expectClose(await runOn(backend, 16, fused), await runOn(backend, 16, plain), 0, 0, 'sumSquares vs addN of sums');
    const one = (r: Rand) => ops.sumSquares([r.floats([65, 3])]);
    expectClose(await runOn(backend, 17, one), await runOn(backend, 17, (r) => tf.sum(tf.square(r.floats([65, 3])))), 0, 0, 'one tensor');
    await tf.setBackend(backend);
    const zero = ops.sumSquares([]);
    expect(zero.shape).toEqual([]);
    expect(zero.dataSync()[0]).toBe(0);
    zero.dispose();
    const n = tf.ones([2], 'int32');
    expect(() => ops.sumSquares([tf.ones([3]), n])).toThrow(/xs\[1\].*float32/);
    n.dispose();
  });
  it('adamwMulti inPlace: the same bits written into unshared param/m/v buffers; a shared buffer is left alone', async () => {
    await tf.setBackend(backend);
    const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3 };
    const make = (seed: number) => {
      const r = new Rand(seed);
      return [[33, 7], [129], [4, 300]].map((sh, i) => ({
        param: r.floats(sh), grad: r.floats(sh), m: r.floats(sh, -0.1, 0.1), v: r.floats(sh, 0, 0.1), weightDecay: i === 1 ? 0 : 0.1,
      }));
    };
    const pure = make(12);
    const want = ops.adamwUpdateMulti(pure, hyper).map((o) => o.map((t) => Array.from(t.dataSync())));
    const owned = make(12);
    const shared = tf.clone(owned[1]!.param); // group 1's param is shared: computed out of place
    const oldShared = Array.from(shared.dataSync());
    const got = ops.adamwUpdateMulti(owned, { ...hyper, inPlace: true });
    expect(got.map((o) => o.map((t) => Array.from(t.dataSync())))).toEqual(want);
    if (backend === 'vlmix-cpu') {
      // groups 0 and 2 updated in place: their outputs share the inputs' data; group 1 did not
      expect(got[0]![0]!.dataId).toBe(owned[0]!.param.dataId);
      expect(got[2]![2]!.dataId).toBe(owned[2]!.v.dataId);
      expect(got[1]![0]!.dataId).not.toBe(owned[1]!.param.dataId);
    }
    expect(Array.from(shared.dataSync())).toEqual(oldShared);
    tf.dispose([...pure.flatMap((g) => [g.param, g.grad, g.m, g.v]), ...owned.flatMap((g) => [g.param, g.grad, g.m, g.v]), shared, ...got.flat()]);
  });
  it('adamw', () => compare('adamw', 8, (r) => {
    const p = r.floats([33, 7]), g = r.floats([33, 7]), m = r.floats([33, 7], -0.1, 0.1), v = r.floats([33, 7], 0, 0.1);
    return ops.adamwUpdate(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 });
  }));
});
}
