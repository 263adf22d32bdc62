/**
 * vlmix's fused kernels the tfjs-core way: an op runs a named kernel (runFusedKernel), and a gradient
 * registered per kernel name (backend independent) calls the named backward kernel. Which
 * implementation a backend runs — its native one or the composite body — is settled by registry.ts.
 */
import * as tf from '@tensorflow/tfjs';
import * as K from './kernel-names.js';
import type { TensorInputs } from './bodies.js';
import { ensureFusedKernels } from './registry.js';

export { ensureFusedKernels, nativeFusedKernels } from './registry.js';

/** Runs a fused kernel on the current backend (its composite body is registered first if needed). */
export function runFusedKernel<N extends K.FusedKernelName>(name: N, inputs: TensorInputs<N>,
  attrs: K.FusedAttrs<N>): K.FusedOutputs<N, tf.Tensor> {
  ensureFusedKernels();
  return tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap,
    attrs as unknown as tf.NamedAttrMap) as unknown as K.FusedOutputs<N, tf.Tensor>;
}
const run = runFusedKernel;

/** Registers the gradient of a single-output fused kernel: `saved` holds the inputs listed in `save`
 *  by name, and the result has a gradient function for every input. */
function grad<N extends K.FusedKernelName, S extends keyof K.FusedInputs<N> & string>(
  name: N, save: S[],
  fn: (dy: tf.Tensor, saved: { [s in S]: tf.Tensor }, attrs: K.FusedAttrs<N>) => { [i in keyof K.FusedInputs<N>]: () => tf.Tensor },
): void {
  tf.registerGradient({
    kernelName: name,
    inputsToSave: save,
    gradFunc: (dy, saved, attrs) => {
      const named = Object.fromEntries(save.map((s, i) => [s, saved[i]!])) as { [s in S]: tf.Tensor };
      return fn(dy as tf.Tensor, named, attrs as unknown as K.FusedAttrs<N>);
    },
  });
}

grad(K.LayerNorm, ['x', 'gamma', 'beta'], (dy, { x, gamma }, a) => {
  const [dx, dg, db] = run(K.LayerNormGrad, { dy, x, gamma }, a);
  return { x: () => dx, gamma: () => dg, beta: () => db };
});
grad(K.RmsNorm, ['x', 'gamma'], (dy, { x, gamma }, a) => {
  const [dx, dg] = run(K.RmsNormGrad, { dy, x, gamma }, a);
  return { x: () => dx, gamma: () => dg };
});
grad(K.Attention, ['q', 'k', 'v', 'bias'], (dy, { q, k, v, bias }, a) => {
  const [dq, dk, dv] = run(K.AttentionGrad, { dy, q, k, v, bias }, a);
  return { q: () => dq, k: () => dk, v: () => dv, bias: () => tf.zerosLike(bias) };
});
grad(K.SoftmaxCrossEntropy, ['logits', 'labels'], (dy, { logits, labels }, a) => {
  const dl = run(K.SoftmaxCrossEntropyGrad, { dloss: dy, logits, labels }, a);
  return { logits: () => dl, labels: () => tf.zerosLike(labels) };
});
grad(K.Gelu, ['x'], (dy, { x }, a) => {
  const dx = run(K.GeluGrad, { dy, x }, a);
  return { x: () => dx };
});
grad(K.Swiglu, ['gate', 'up'], (dy, { gate, up }) => {
  const [dg, du] = run(K.SwigluGrad, { dy, gate, up }, {});
  return { gate: () => dg, up: () => du };
});
// idx and inv are integer index tensors: tfjs never asks for their gradients (no path from them).
grad(K.GatherRows, ['idx', 'inv'], (dy, { idx, inv }) => {
  const dx = run(K.GatherRowsGrad, { dy, inv }, {});
  return { x: () => dx, idx: () => tf.zerosLike(idx), inv: () => tf.zerosLike(inv) };
});

ensureFusedKernels('cpu');
