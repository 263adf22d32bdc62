// The LM head fused with its loss (ops.linearCrossEntropy, VlmixLinearCrossEntropy): its value and gradients
// against the unfused head + crossEntropyLoss and against finite differences, ignored rows, errors, leaks; and
// Model.loss taking it only where no mixin serves finalForward.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createModel, Mixin, ops, variableGrads, type HookImpls } from '../src/index.js';
import { assertClose, assertGradients, assertNoLeak } from '../src/testkit/index.js';

const r = (shape: number[], seed: number, scale = 1) => tf.randomNormal(shape, 0, scale, 'float32', seed);

/** Loss and its gradients wrt x and the head, through `f`. */
function lossAndGrads(f: (x: tf.Tensor, w: tf.Tensor) => tf.Scalar, x: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b))([x, w]);
  return [f(x, w), ...g];
}

const unfused = (labels: tf.Tensor, ignore: number) => (x: tf.Tensor, w: tf.Tensor) => ops.crossEntropyLoss(ops.linear(x, w), labels, ignore);
const fused = (labels: tf.Tensor, ignore: number) => (x: tf.Tensor, w: tf.Tensor) => ops.linearCrossEntropy(x, w, labels, ignore);

/** Serves finalForward by passing through: the loss must then go through the hook (unfused). */
class PassFinal extends Mixin {
  calls = 0;
  hooks(): HookImpls {
    return { finalForward: (h, ctx, next) => { this.calls++; return next(h, ctx); } };
  }
}

describe('ops.linearCrossEntropy', () => {
  it('equals the head + crossEntropyLoss, values and gradients; ignored rows get no gradient', () => {
    const [x, w] = [r([3, 5, 16], 1), r([37, 16], 2, 0.3)];
    // ignored rows scattered, one label repeated, the last row kept
    const labels = tf.tensor2d([[4, -100, 36, 0, -100], [-100, -100, 7, 7, 1], [2, -100, -100, -100, 30]], [3, 5], 'int32');
    const got = lossAndGrads(fused(labels, -100), x, w);
    const want = lossAndGrads(unfused(labels, -100), x, w);
    for (let i = 0; i < 3; i++) assertClose(got[i]!, want[i]!, { rtol: 1e-5, atol: 1e-6 });
    const dx = got[1]!.arraySync() as number[][][];
    expect(dx[0]![1]!.every((v) => v === 0) && dx[1]![0]!.every((v) => v === 0)).toBe(true);
    expect(dx[0]![0]!.some((v) => v !== 0)).toBe(true);
    tf.dispose([x, w, labels, ...got, ...want]);
  });

  it('one kept row, and every row ignored (loss 0, zero gradients)', () => {
    const [x, w] = [r([4, 8], 3), r([11, 8], 4)];
    const one = tf.tensor1d([-1, 9, -1, -1], 'int32');
    const got = lossAndGrads(fused(one, -1), x, w);
    const want = lossAndGrads(unfused(one, -1), x, w);
    for (let i = 0; i < 3; i++) assertClose(got[i]!, want[i]!, { rtol: 1e-5, atol: 1e-6 });
    const none = tf.tensor1d([-1, -1, -1, -1], 'int32');
    const [loss, dx, dw] = lossAndGrads(fused(none, -1), x, w);
    expect(loss!.dataSync()[0]).toBe(0);
    expect(Math.max(...dx!.abs().dataSync(), ...dw!.abs().dataSync())).toBe(0);
    tf.dispose([x, w, one, none, loss!, dx!, dw!, ...got, ...want]);
  });

  it('gradients against finite differences; no tensor leaks', () => {
    const [x, w] = [r([5, 6], 5), r([9, 6], 6, 0.5)];
    const labels = tf.tensor1d([3, -100, 8, 0, -100], 'int32');
    assertGradients((a, b) => ops.linearCrossEntropy(a!, b!, labels), [x, w], { label: 'linearCrossEntropy' });
    assertNoLeak(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.linearCrossEntropy(a, b, labels))([x, w]), { label: 'linearCrossEntropy' });
    tf.dispose([x, w, labels]);
  });

  it('rejects bad arguments, naming them', () => {
    const [x, w, l] = [tf.zeros([2, 3, 4]), tf.zeros([7, 4]), tf.zeros([2, 3], 'int32')];
    expect(() => ops.linearCrossEntropy(x, tf.zeros([7, 5]), l)).toThrow('x: expected shape [..., 5] to match weight [7, 5] ([V, C]), got [2, 3, 4]');
    expect(() => ops.linearCrossEntropy(x, w, tf.zeros([3, 2], 'int32'))).toThrow('labels: expected shape [2, 3] to match x [2, 3, 4], got [3, 2]');
    expect(() => ops.linearCrossEntropy(x, w, tf.zeros([2, 3]))).toThrow(/labels.*int32/);
    expect(() => ops.linearCrossEntropy(x, tf.zeros([7, 4, 1]), l)).toThrow(/weight/);
    tf.dispose([x, w, l]);
  });
});

describe('Model.loss fuses the head with the loss', () => {
  it('with sparseLabels, where the base serves finalForward: same loss and gradients as the logits path', async () => {
    const m = createModel('llama-tiny', { seed: 3 });
    const ids = tf.tensor2d([[1, 5, 9, 2, 7, 3], [4, 4, 8, 1, 0, 6]], [2, 6], 'int32');
    const labels = tf.tensor2d([[-100, -100, 9, 2, -100, 3], [-100, 8, -100, -100, -100, -100]], [2, 6], 'int32');
    const params = m.params.trainable().map((p) => p.variable);
    const viaLogits = () => ops.crossEntropyLoss(m.forward({ inputIds: ids }, { training: true }).logits, labels, -100);
    const a = variableGrads(() => m.loss({ inputIds: ids }, labels, { sparseLabels: true }), params);
    const b = variableGrads(viaLogits, params);
    assertClose(a.value, b.value, { rtol: 1e-5, atol: 1e-6 });
    for (const p of params) assertClose(a.grads[p.name]!, b.grads[p.name]!, { rtol: 1e-4, atol: 1e-6, name: p.name });
    const lossKernels = async (sparseLabels?: boolean) => {
      const info = await tf.profile(() => m.loss({ inputIds: ids }, labels, { sparseLabels }));
      tf.dispose(info.result as tf.Tensor);
      const names = info.kernels.map((k) => k.name);
      return ['VlmixLinearCrossEntropy', 'VlmixSoftmaxCrossEntropyMean'].filter((k) => names.includes(k));
    };
    // declared sparse: fused where the backend has the kernel natively (else its composite would add work)
    const native = ops.nativeFusedKernels().includes('VlmixLinearCrossEntropy');
    expect(await lossKernels(true)).toEqual([native ? 'VlmixLinearCrossEntropy' : 'VlmixSoftmaxCrossEntropyMean']);
    // by default the logits path: with dense labels, recomputing the head in the backward costs more than it saves
    expect(await lossKernels()).toEqual(['VlmixSoftmaxCrossEntropyMean']);
    // a mixin on finalForward sees the pass: the logits path, the same value
    const pass = new PassFinal();
    m.addMixin('pass-final', pass);
    const c = m.loss({ inputIds: ids }, labels, { sparseLabels: true });
    expect(pass.calls).toBe(1);
    assertClose(c, a.value, { rtol: 1e-5, atol: 1e-6 });
    tf.dispose([ids, labels, a.value, b.value, c, ...Object.values(a.grads), ...Object.values(b.grads)]);
    m.dispose();
  });
});
