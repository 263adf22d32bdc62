/**
 * The composite body of every fused kernel: the kernel written in stock tfjs ops (composite.ts), typed
 * by its contract in kernel-names.ts. A backend without a native implementation runs these (registry.ts).
 */
import * as tf from '@tensorflow/tfjs';
import * as K from './kernel-names.js';
import * as C from './composite.js';

/** A kernel's inputs as tensors (ops and bodies see tf.Tensor where backends see TensorInfo). */
export type TensorInputs<N extends K.FusedKernelName> = K.FusedInputs<N> extends unknown[]
  ? tf.Tensor[] : { [name in keyof K.FusedInputs<N>]: tf.Tensor };
type Body<N extends K.FusedKernelName> = (inputs: TensorInputs<N>, attrs: K.FusedAttrs<N>) => K.FusedOutputs<N, tf.Tensor>;

const bodies: { [N in K.FusedKernelName]: Body<N> } = {
  [K.LayerNorm]: (i, a) => C.layerNormForward(i.x, i.gamma, i.beta, a.eps),
  [K.LayerNormGrad]: (i, a) => C.layerNormBackward(i.dy, i.x, i.gamma, a.eps),
  [K.RmsNorm]: (i, a) => C.rmsNormForward(i.x, i.gamma, a.eps),
  [K.RmsNormGrad]: (i, a) => C.rmsNormBackward(i.dy, i.x, i.gamma, a.eps),
  [K.Attention]: (i, a) => C.attentionForward(i.q, i.k, i.v, i.bias, a),
  [K.AttentionGrad]: (i, a) => C.attentionBackward(i.dy, i.q, i.k, i.v, i.bias, a),
  [K.SoftmaxCrossEntropy]: (i, a) => C.softmaxCrossEntropyForward(i.logits, i.labels, a.ignoreIndex),
  [K.SoftmaxCrossEntropyGrad]: (i, a) => C.softmaxCrossEntropyBackward(i.dloss, i.logits, i.labels, a.ignoreIndex),
  [K.SoftmaxCrossEntropyMean]: (i, a) => C.softmaxCrossEntropyMeanForward(i.logits, i.labels, a.ignoreIndex),
  [K.SoftmaxCrossEntropyMeanGrad]: (i, a) => C.softmaxCrossEntropyMeanBackward(i.dloss, i.logits, i.labels, a.ignoreIndex),
  [K.LinearCrossEntropy]: (i, a) => C.linearCrossEntropyForward(i.x, i.weight, i.labels, a.ignoreIndex),
  [K.LinearCrossEntropyGrad]: (i, a) => C.linearCrossEntropyBackward(i.dloss, i.x, i.weight, i.labels, a.ignoreIndex),
  [K.Gelu]: (i, a) => C.geluForward(i.x, a.approximate),
  [K.GeluGrad]: (i, a) => C.geluBackward(i.dy, i.x, a.approximate),
  [K.Swiglu]: (i) => C.swigluForward(i.gate, i.up),
  [K.SwigluGrad]: (i) => C.swigluBackward(i.dy, i.gate, i.up),
  [K.AdamW]: (i, a) => C.adamwStep(i.param, i.grad, i.m, i.v, a),
  [K.AdamWMulti]: (i, a) => a.weightDecay.flatMap((weightDecay, k) =>
    C.adamwStep(i[4 * k]!, i[4 * k + 1]!, i[4 * k + 2]!, i[4 * k + 3]!, { ...a, weightDecay })),
  [K.SumSquares]: (i) => C.sumSquares(i),
  [K.GatherRows]: (i) => C.gatherRowsForward(i.x, i.idx),
  [K.GatherRowsGrad]: (i) => C.gatherRowsBackward(i.dy, i.inv),
  [K.SplitHeads]: (i, a) => C.splitHeadsForward(i.x, a.heads, a.headDim),
  [K.MergeHeads]: (i) => C.mergeHeadsForward(i),
  [K.Rotary]: (i, a) => C.rotaryForward(i.x, i.cos, i.sin, a.interleaved, a.inverse),
  [K.Linear]: (i) => C.linearForward(i.x, i.weight, i.bias),
  [K.LinearGrad]: (i) => C.linearBackward(i.dy, i.x, i.weight, i.bias),
  [K.CacheWrite]: (i) => C.cacheWriteForward(i.cache, i.update, i.position),
  [K.AddNorm]: (i, a) => C.addNormForward(i.a, i.b, i.gamma, i.beta, a.eps, a.rms),
  [K.AddNormGrad]: (i, a) => C.addNormBackward(i.dnormed, i.dsum, i.sum, i.gamma, i.beta, a.eps, a.rms),
  [K.EmbeddingScatter]: (i) => C.embeddingScatterForward(i.table, i.ids, i.tokens, i.idx),
  [K.EmbeddingScatterGrad]: (i) => C.embeddingScatterBackward(i.dy, i.ids, i.inv, i.table, i.tokens),
  [K.SplitHeadsRotary]: (i, a) => C.splitHeadsRotaryForward(i.x, i.cos, i.sin, a),
  [K.MergeHeadsRotary]: (i, a) => C.mergeHeadsRotaryForward(i.slice(0, -2), i[i.length - 2]!, i[i.length - 1]!, a),
  [K.GatedResidual]: (i) => C.gatedResidualForward(i.x, i.y, i.gate),
  [K.GatedResidualGrad]: (i) => C.gatedResidualBackward(i.dy, i.y, i.gate),
  [K.LinearActivation]: (i, a) => C.linearActivationForward(i.x, i.weight, i.bias, a.activation),
  [K.LinearActivationGrad]: (i, a) => C.linearActivationBackward(i.dy, i.x, i.weight, i.bias, i.preactivation, a.activation),
};

/** The composite body of `name` as a tfjs kernel function. Ops called inside a kernel are not recorded
 *  on the gradient tape (kernelDepth > 0), and returned Tensors are adopted as the kernel's outputs. */
export function compositeKernelFunc<N extends K.FusedKernelName>(name: N): tf.KernelFunc {
  const body = bodies[name] as Body<N>;
  return ({ inputs, attrs }) =>
    tf.tidy(() => body(inputs as unknown as TensorInputs<N>, attrs as unknown as K.FusedAttrs<N>) as tf.Tensor | tf.Tensor[]) as unknown as tf.TensorInfo;
}
