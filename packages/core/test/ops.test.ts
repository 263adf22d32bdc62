import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { applyRotaryHalf, applyRotaryInterleaved, ops } from '../src/index.js';
import { assertGradients, assertNoLeak, assertClose } from '../src/testkit/index.js';
import { Rng } from '../src/random.js';

const rng = new Rng('ops-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

describe('fused ops: finite-difference gradients', () => {
  it('layerNorm', () => {
    const x = randn([2, 3, 8]); const g = randn([8]); const b = randn([8]);
    assertGradients((x, g, b) => ops.layerNorm(x!, g!, b!, 1e-5), [x, g, b], { label: 'layerNorm' });
  });
  it('rmsNorm', () => {
    const x = randn([3, 8]); const g = randn([8]);
    assertGradients((x, g) => ops.rmsNorm(x!, g!, 1e-6), [x, g], { label: 'rmsNorm' });
  });
  it('attention: causal, GQA', () => {
    const q = randn([2, 4, 5, 8]); const k = randn([2, 2, 5, 8]); const v = randn([2, 2, 5, 8]);
    assertGradients((q, k, v) => ops.attention(q!, k!, v!, { causal: true }), [q, k, v], { label: 'attention causal GQA' });
  });
  it('attention: additive bias, cache offset (Tq < Tk)', () => {
    const q = randn([1, 2, 3, 4]); const k = randn([1, 2, 6, 4]); const v = randn([1, 2, 6, 4]);
    const bias = tf.where(tf.tensor([[[[1, 1, 0, 1, 1, 1]]]], undefined, 'bool'), tf.zeros([1, 1, 1, 6]), tf.fill([1, 1, 1, 6], -1e9));
    assertGradients((q, k, v) => ops.attention(q!, k!, v!, { causal: true, bias }), [q, k, v], { label: 'attention bias' });
  });
  it('softmaxCrossEntropy (with ignored rows)', () => {
    const logits = randn([4, 7]);
    const labels = tf.tensor1d([1, -100, 6, 0], 'int32');
    assertGradients((l) => ops.softmaxCrossEntropy(l!, labels), [logits], { label: 'softmaxCE' });
  });
  it('gelu (erf and tanh) and swiglu', () => {
    const x = randn([3, 5]);
    assertGradients((x) => ops.gelu(x!, 'none'), [x], { label: 'gelu' });
    assertGradients((x) => ops.gelu(x!, 'tanh'), [x], { label: 'gelu tanh' });
    const g = randn([3, 5]); const u = randn([3, 5]);
    assertGradients((g, u) => ops.swiglu(g!, u!), [g, u], { label: 'swiglu' });
  });
  it('linear', () => {
    const x = randn([2, 3, 4]); const w = randn([5, 4]); const b = randn([5]);
    assertGradients((x, w, b) => ops.linear(x!, w!, b!), [x, w, b], { label: 'linear' });
    assertGradients((x, w) => ops.linear(x!, w!), [randn([3, 4]), randn([2, 4])], { label: 'linear without bias' });
  });
});

describe('fused ops: attention heads', () => {
  it('splitHeads picks channel ranges per part, heads outermost; mergeHeads inverts it', () => {
    const x = tf.tensor3d([[[0, 1, 2, 3, 4, 5, 6, 7], [10, 11, 12, 13, 14, 15, 16, 17]]]); // [1, 2, 8]
    const [q, k] = ops.splitHeads(x, [2, 2], 2);
    expect(q!.shape).toEqual([1, 2, 2, 2]);
    expect(Array.from(q!.dataSync())).toEqual([0, 1, 10, 11, 2, 3, 12, 13]);
    expect(Array.from(k!.dataSync())).toEqual([4, 5, 14, 15, 6, 7, 16, 17]);
    expect(Array.from(ops.mergeHeads([q!, k!]).dataSync())).toEqual(Array.from(x.dataSync()));
  });
  it('finite-difference gradients', () => {
    const x = randn([2, 3, 12]);
    assertGradients((x) => tf.addN(ops.splitHeads(x!, [1, 2, 3], 2).map((p, i) => tf.mul(tf.sum(tf.square(p)), i + 1))), [x], { label: 'splitHeads' });
    assertGradients((a, b) => tf.sum(tf.sin(ops.mergeHeads([a!, b!]))), [randn([2, 1, 3, 2]), randn([2, 3, 3, 2])], { label: 'mergeHeads' });
  });
  it('names the argument and the expected shape', () => {
    expect(() => ops.splitHeads(tf.zeros([1, 2, 8]), [2, 2], 3)).toThrow(/x: expected last dim 12 \(heads \[2, 2\] x headDim 3\), got \[1, 2, 8\]/);
    expect(() => ops.mergeHeads([tf.zeros([1, 2, 3, 4]), tf.zeros([1, 2, 5, 4])])).toThrow(/xs\[1\]: expected shape \[1, \*, 3, 4\], got \[1, 2, 5, 4\]|xs\[1\]: expected shape/);
  });
});

describe('fused ops: rotary', () => {
  it('equals the rotate_half and interleaved reference forms, partial rotation passing channels through', () => {
    const x = randn([2, 3, 4, 10]);
    const ang = tf.mul(randn([2, 4, 3]), 2);
    const [c, s] = [tf.cos(ang), tf.sin(ang)];
    const full = tf.expandDims(tf.concat([ang, ang], -1), 1);
    const rot = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 6]);
    const pass = tf.slice(x, [0, 0, 0, 6], [-1, -1, -1, 4]);
    const half = tf.concat([applyRotaryHalf(rot, tf.cos(full), tf.sin(full)), pass], -1);
    assertClose(ops.rotary(x, c, s, "half"), half, { atol: 1e-6, rtol: 0 });
    const inter = tf.concat([applyRotaryInterleaved(rot, tf.expandDims(c, 1), tf.expandDims(s, 1)), pass], -1);
    assertClose(ops.rotary(x, c, s, "interleaved"), inter, { atol: 1e-6, rtol: 0 });
  });
  it('finite-difference gradients (half and interleaved, angles shared by the batch)', () => {
    const ang = randn([1, 3, 2]);
    const [c, s] = [tf.cos(ang), tf.sin(ang)];
    for (const style of ['half', 'interleaved'] as const) {
      assertGradients((x) => tf.sum(tf.square(ops.rotary(x!, c, s, style))), [randn([2, 2, 3, 6])], { label: `rotary ${style}` });
      assertGradients((x) => tf.sum(tf.mul(ops.rotary(x!, c, s, style), tf.range(0, 72).reshape([2, 2, 3, 6]))), [randn([2, 2, 3, 6])], { label: `rotary ${style} weighted` });
    }
  });
  it('names the argument and the expected shape', () => {
    expect(() => ops.rotary(tf.zeros([1, 2, 3, 4]), tf.zeros([1, 3, 3]), tf.zeros([1, 3, 3]))).toThrow(/cos: 3 rotated pairs need 2 \* 3 <= head dim 4/);
    expect(() => ops.rotary(tf.zeros([2, 2, 3, 4]), tf.zeros([3, 3, 2]), tf.zeros([3, 3, 2]))).toThrow(/cos: expected shape \[2\|1, 3, R\], got \[3, 3, 2\]/);
    expect(() => ops.rotary(tf.zeros([1, 2, 3, 4]), tf.zeros([1, 3, 2]), tf.zeros([1, 2, 2]))).toThrow(/sin: expected shape \[1, 3, 2\], got \[1, 2, 2\]/);
  });
});

describe('fused ops: values against hand-computed references', () => {
  it('layerNorm of [1,2,3,4]', () => {
    const y = ops.layerNorm(tf.tensor2d([[1, 2, 3, 4]]), tf.ones([4]), tf.zeros([4]), 0);
    const s = Math.sqrt(1.25);
    assertClose(y.flatten(), [[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]].flat(), { atol: 1e-6, name: 'ln' });
  });
  it('attention: all-masked row gives zeros, single key gives v', () => {
    const q = tf.ones([1, 1, 2, 2]); const k = tf.ones([1, 1, 2, 2]); const v = tf.tensor4d([[[[1, 2], [3, 4]]]]);
    const bias = tf.tensor4d([[[[-1e9, -1e9], [0, -1e9]]]]);
    const y = ops.attention(q, k, v, { bias });
    assertClose(y.flatten(), [0, 0, 1, 2], { atol: 1e-6, name: 'masked attention' });
  });
  it('causal attention with 1 query over 3 keys sees all keys', () => {
    const q = tf.zeros([1, 1, 1, 2]); const k = tf.zeros([1, 1, 3, 2]); const v = tf.tensor4d([[[[3, 0], [0, 3], [3, 3]]]]);
    assertClose(ops.attention(q, k, v, { causal: true }).flatten(), [2, 2], { atol: 1e-6 });
  });
  it('crossEntropyLoss equals -log softmax picked, mean over valid', () => {
    const logits = tf.tensor3d([[[0, Math.log(3)], [1, 1]]]);
    const loss = ops.crossEntropyLoss(logits, tf.tensor2d([[1, -100]], undefined, 'int32'));
    expect(loss.dataSync()[0]).toBeCloseTo(-Math.log(0.75), 6);
    // every label ignored: loss 0 and a zero gradient (the divisor is max(count, 1))
    const none = tf.tensor2d([[-100, -100]], undefined, 'int32');
    expect(ops.crossEntropyLoss(logits, none).dataSync()[0]).toBe(0);
    expect(Array.from(tf.grad((l: tf.Tensor) => ops.crossEntropyLoss(l, none))(logits).dataSync(), Math.abs)).toEqual([0, 0, 0, 0]);
    // the gradient of the mean: (softmax - onehot) / count on kept rows
    const g = tf.grad((l: tf.Tensor) => ops.crossEntropyLoss(l, tf.tensor2d([[1, 0]], undefined, 'int32')))(logits).dataSync();
    const want = [0.25 / 2, -0.25 / 2, (0.5 - 1) / 2, 0.5 / 2];
    want.forEach((w, k) => expect(g[k]).toBeCloseTo(w, 6));
  });
  it('crossEntropyLoss: finite-difference gradient, ignored rows included', () => {
    const labels = tf.tensor2d([[3, -100, 0], [1, 2, -100]], undefined, 'int32');
    assertGradients((l) => ops.crossEntropyLoss(l!, labels), [randn([2, 3, 5])], { label: 'crossEntropyLoss' });
  });
  it('adamwUpdate matches a hand-computed PyTorch AdamW step', () => {
    const [p, m, v] = ops.adamwUpdate(tf.tensor1d([1, -2]), tf.tensor1d([0.5, 0.1]), tf.zeros([2]), tf.zeros([2]),
      { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 });
    // step 1: mhat = g, vhat = g^2 -> update = sign(g) (up to eps); decay p *= 1 - lr*wd
    assertClose(p, [1 * (1 - 0.001) - 0.1 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.001) - 0.1 * (0.1 / (0.1 + 1e-8))], { atol: 1e-6 });
    assertClose(m, [0.05, 0.01], { atol: 1e-7 });
    assertClose(v, [0.00025, 0.00001], { atol: 1e-9 });
  });
  it('adamwUpdateMulti equals adamwUpdate per tensor, each with its own weight decay', () => {
    const shapes = [[3, 5], [7], [1], [2, 2, 2]];
    const groups = shapes.map((s, i) => ({
      param: randn(s), grad: randn(s), m: tf.mul(randn(s), 0.1), v: tf.abs(tf.mul(randn(s), 0.01)), weightDecay: i % 2 ? 0 : 0.1,
    }));
    const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 4 };
    const multi = ops.adamwUpdateMulti(groups, hyper);
    expect(multi).toHaveLength(shapes.length);
    groups.forEach((g, i) => {
      const one = ops.adamwUpdate(g.param, g.grad, g.m, g.v, { ...hyper, weightDecay: g.weightDecay });
      one.forEach((t, j) => assertClose(multi[i]![j]!, t, { rtol: 0, atol: 0, name: `group ${i} output ${j}` }));
    });
    expect(ops.adamwUpdateMulti([], hyper)).toEqual([]);
  });
  it('registered gradients equal autodiff through the composite bodies', () => {
    const q = randn([1, 2, 4, 4]); const k = randn([1, 1, 4, 4]); const v = randn([1, 1, 4, 4]);
    const viaKernel = tf.grads((q, k, v) => tf.sum(tf.mul(ops.attention(q!, k!, v!, { causal: true }), tf.range(0, 32).reshape([1, 2, 4, 4]))))([q, k, v]);
    const viaComposite = tf.grads((q, k, v) => tf.sum(tf.mul(ops.composite.attentionForward(q!, k!, v!, tf.zeros([0]), { scale: 0.5, causal: true }), tf.range(0, 32).reshape([1, 2, 4, 4]))))([q, k, v]);
    viaKernel.forEach((g, i) => assertClose(g, viaComposite[i]!, { rtol: 1e-4, atol: 1e-5, name: `d${'qkv'[i]}` }));
  });
});

describe('fused ops: errors and leaks', () => {
  it('names the argument, expected and actual shapes', () => {
    expect(() => ops.layerNorm(tf.zeros([2, 4]), tf.ones([3]), tf.zeros([4]))).toThrow(/gamma: expected shape \[4\], got \[3\]/);
    expect(() => ops.attention(tf.zeros([1, 3, 2, 4]), tf.zeros([1, 2, 2, 4]), tf.zeros([1, 2, 2, 4]))).toThrow(/multiple of key\/value heads/);
    expect(() => ops.attention(tf.zeros([1, 2, 2, 4]), tf.zeros([1, 2, 2, 3]), tf.zeros([1, 2, 2, 4]))).toThrow(/k: expected shape \[1, 2, 2, 4\], got \[1, 2, 2, 3\]/);
    expect(() => ops.softmaxCrossEntropy(tf.zeros([2, 3]), tf.zeros([2]))).toThrow(/labels: expected dtype int32, got float32/);
    expect(() => ops.gelu(tf.zeros([2]), 'fast' as 'none')).toThrow(/approximate: expected 'none' or 'tanh', got "fast"/);
    expect(() => ops.linear(tf.zeros([2, 3]), tf.zeros([4, 5]))).toThrow(/input last dim 3 does not match weight \[4, 5\]/);
    expect(() => ops.linear(tf.zeros([2, 5]), tf.zeros([4, 5]), tf.zeros([5]))).toThrow(/bias: expected shape \[4\], got \[5\]/);
    const z = tf.zeros([2]);
    const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, step: 1 };
    expect(() => ops.adamwUpdateMulti([{ param: z, grad: z, m: z, v: z, weightDecay: 0 }, { param: z, grad: z, m: tf.zeros([3]), v: z, weightDecay: 0 }], hyper))
      .toThrow(/groups\[1\]\.m: expected shape \[2\], got \[3\]/);
    expect(() => ops.adamwUpdateMulti([{ param: z, grad: z, m: z, v: z, weightDecay: NaN }], hyper)).toThrow(/groups\[0\]\.weightDecay: expected a finite number, got NaN/);
  });
  it('forward and backward of every op leave no tensors behind', () => {
    const x = randn([2, 4, 8]); const g = randn([8]); const b = randn([8]);
    const q = randn([1, 2, 3, 4]);
    const labels = tf.tensor1d([0, 3], 'int32');
    const rows = randn([8, 8]);
    assertNoLeak(() => {
      const gs = tf.grads((x, g, b) => tf.sum(ops.gelu(ops.layerNorm(x!, g!, b!))))([x, g, b]);
      tf.dispose(gs);
      tf.dispose(tf.grads((q) => tf.sum(ops.attention(q!, q!, q!, { causal: true })))([q]));
      tf.dispose(tf.grads((x) => tf.sum(ops.softmaxCrossEntropy(tf.reshape(x!, [2, 32]), labels)))([x]));
      tf.dispose(tf.grads((x, g) => tf.sum(ops.swiglu(ops.rmsNorm(x!, g!), x!)))([x, g]));
      tf.dispose(ops.adamwUpdate(g, g, g, g, { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 }));
      tf.dispose(ops.adamwUpdateMulti([{ param: g, grad: g, m: g, v: g, weightDecay: 0.1 }, { param: b, grad: b, m: b, v: b, weightDecay: 0 }],
        { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, step: 1 }).flat());
      tf.dispose(ops.gatherRows(rows, [7, 0, 3]));
      tf.dispose(tf.grads((r) => tf.sum(ops.gatherRows(r!, [7, 0, 3])))([rows]));
      tf.dispose(tf.grads((x, w, b) => tf.sum(ops.linear(x!, w!, b!)))([x, rows, b]));
      tf.dispose(tf.grads((x, w) => tf.sum(ops.linear(x!, w!)))([x, rows]));
    }, { label: 'ops' });
  });
});
