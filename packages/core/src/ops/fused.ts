/**
 * vlmix's fused kernels the tfjs-core way: an op runs a named kernel (runFusedKernel), and a gradient
 * registered per kernel name (backend independent) calls the named backward kernel. Which
 * implementation a backend runs — its native one or the composite body — is settled by registry.ts.
 */
import * as tf from '@tensorflow/tfjs';
import * as K from './kernel-names.js';
import type { TensorInputs } from './bodies.js';
import { ensureFusedKernels } from './registry.js';
import { registerGradientTakingNulls } from '../engine-internals.js';

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
grad(K.SoftmaxCrossEntropyMean, ['logits', 'labels'], (dy, { logits, labels }, a) => {
  const dl = run(K.SoftmaxCrossEntropyMeanGrad, { dloss: dy, logits, labels }, a);
  return { logits: () => dl, labels: () => tf.zerosLike(labels) };
});
grad(K.LinearCrossEntropy, ['x', 'weight', 'labels'], (dy, { x, weight, labels }, a) => {
  const [dx, dw] = run(K.LinearCrossEntropyGrad, { dloss: dy, x, weight, labels }, a);
  return { x: () => dx, weight: () => dw, labels: () => tf.zerosLike(labels) };
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
grad(K.Linear, ['x', 'weight', 'bias'], (dy, { x, weight, bias }) => {
  const [dx, dw, db] = run(K.LinearGrad, { dy, x, weight, bias }, {});
  return { x: () => dx, weight: () => dw, bias: () => db };
});
grad(K.GatedResidual, ['y', 'gate'], (dy, { y, gate }) => {
  const [dx, dgated, dgate] = run(K.GatedResidualGrad, { dy, y, gate }, {});
  return { x: () => dx, y: () => dgated, gate: () => dgate };
});
// ids, idx and inv are integer index tensors (no gradient path, as GatherRows's)
grad(K.EmbeddingScatter, ['table', 'ids', 'tokens', 'idx', 'inv'], (dy, { table, ids, tokens, idx, inv }) => {
  const [dtable, dtokens] = run(K.EmbeddingScatterGrad, { dy, ids, inv, table, tokens }, {});
  return { table: () => dtable, tokens: () => dtokens, ids: () => tf.zerosLike(ids), idx: () => tf.zerosLike(idx), inv: () => tf.zerosLike(inv) };
});
grad(K.Rotary, ['cos', 'sin'], (dy, { cos, sin }, a) => {
  const dx = run(K.Rotary, { x: dy, cos, sin }, { ...a, inverse: !a.inverse });
  return { x: () => dx, cos: () => tf.zerosLike(cos), sin: () => tf.zerosLike(sin) };
});

// Outputs that got no gradient arrive as null (engine-internals: registerGradientTakingNulls), or as zeros.
const none = (t: tf.Tensor | null | undefined): t is null | undefined => t == null;
registerGradientTakingNulls({
  kernelName: K.AddNorm,
  inputsToSave: ['gamma', 'beta'],
  outputsToSave: [true, false],
  gradFunc: (dys, saved, attrs) => {
    const [dsum, dnormed] = dys as (tf.Tensor | null)[];
    const [gamma, beta, sum] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
    const [da, db, dg, dbeta] = run(K.AddNormGrad, {
      dnormed: none(dnormed) ? tf.zerosLike(sum) : dnormed, dsum: none(dsum) ? tf.zeros([0]) : dsum, sum, gamma, beta,
    }, attrs as unknown as K.AddNormAttrs);
    return { a: () => da, b: () => db, gamma: () => dg, beta: () => dbeta };
  },
});
// The preactivation is the kernel's own state for this gradient: the op never hands it out, so it has none.
registerGradientTakingNulls({
  kernelName: K.LinearActivation,
  inputsToSave: ['x', 'weight', 'bias'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (dys as (tf.Tensor | null)[])[0];
    const [x, weight, bias, preactivation] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const [dx, dw, db] = run(K.LinearActivationGrad, { dy: none(dy) ? tf.zerosLike(preactivation) : dy, x, weight, bias, preactivation },
      attrs as unknown as K.LinearActivationAttrs);
    return { x: () => dx, weight: () => dw, bias: () => db };
  },
});

// a rotation is orthogonal: the split-and-rotate's adjoint rotates back and merges
tf.registerGradient({
  kernelName: K.SplitHeadsRotary,
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dys, saved, attrs) => {
    const [cos, sin] = saved as [tf.Tensor, tf.Tensor];
    const list = Array.isArray(dys) ? dys : [dys];
    const dx = run(K.MergeHeadsRotary, [...list, cos, sin], attrs as unknown as K.SplitHeadsRotaryAttrs);
    return { x: () => dx, cos: () => tf.zerosLike(cos), sin: () => tf.zerosLike(sin) };
  },
});

// split and merge are each other's adjoints: a copy of channels one way, back the other
tf.registerGradient({
  kernelName: K.SplitHeads,
  gradFunc: (dys, _saved, attrs) => {
    const list = Array.isArray(dys) ? dys : [dys];
    return { x: () => run(K.MergeHeads, list, { heads: (attrs as unknown as K.SplitHeadsAttrs).heads }) };
  },
});
tf.registerGradient({
  kernelName: K.MergeHeads,
  gradFunc: (dy, _saved, attrs) => {
    const { heads } = attrs as unknown as K.MergeHeadsAttrs;
    const y = dy as tf.Tensor;
    const headDim = y.shape[2]! / heads.reduce((a, h) => a + h, 0);
    const parts = run(K.SplitHeads, { x: y }, { heads, headDim });
    return Object.fromEntries(parts.map((p, i) => [i, () => p]));
  },
});

ensureFusedKernels('cpu');
