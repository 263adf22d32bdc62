/**
 * Names, inputs, attributes and outputs of vlmix's fused kernels, the way tfjs-core's kernel_names.ts
 * declares its own: per kernel a name constant, an `XInputs` type (tensors by name) and, where it has
 * any, an `XAttrs` interface. This file is the contract between the model code (ops call kernels by
 * these names), the gradients, the composite bodies and every backend that implements them natively;
 * all of them use these types (see `FusedKernels` below).
 * Conventions: float32 unless stated; "last axis" means the normalised / reduced axis; all kernels are
 * pure (never modify inputs).
 */
import type { TensorInfo } from '@tensorflow/tfjs';

type NamedInputs<K extends string> = { [name in K]: TensorInfo };

/** y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased variance).
 *  inputs {x: [..., C], gamma: [C], beta: [C]}, attrs {eps}. Output y: x.shape. */
export const LayerNorm = 'VlmixLayerNorm';
export type LayerNormInputs = NamedInputs<'x' | 'gamma' | 'beta'>;
export interface LayerNormAttrs { eps: number }
/** inputs {dy, x, gamma}, attrs {eps}. Outputs [dx: x.shape, dgamma: [C], dbeta: [C]]. */
export const LayerNormGrad = 'VlmixLayerNormGrad';
export type LayerNormGradInputs = NamedInputs<'dy' | 'x' | 'gamma'>;
export type LayerNormGradAttrs = LayerNormAttrs;

/** y = x * rsqrt(mean(x^2) + eps) * gamma over the last axis. inputs {x, gamma}, attrs {eps}. */
export const RmsNorm = 'VlmixRmsNorm';
export type RmsNormInputs = NamedInputs<'x' | 'gamma'>;
export interface RmsNormAttrs { eps: number }
/** inputs {dy, x, gamma}, attrs {eps}. Outputs [dx, dgamma]. */
export const RmsNormGrad = 'VlmixRmsNormGrad';
export type RmsNormGradInputs = NamedInputs<'dy' | 'x' | 'gamma'>;
export type RmsNormGradAttrs = RmsNormAttrs;

/**
 * A residual add and the norm after it in one kernel (the pre-norm layer's `h = x + block(x); normed = norm(h)`,
 * and post-norm's `norm(x + block(x))`): inputs {a, b, gamma, beta} with a, b [..., C] (same shape), gamma [C],
 * beta [C] for LayerNorm or empty (size 0) for RMSNorm; attrs {eps, rms}. Outputs [sum = a + b, normed =
 * LayerNorm(sum) or RmsNorm(sum)], each with the bits of the separate Add and norm kernels.
 */
export const AddNorm = 'VlmixAddNorm';
export type AddNormInputs = NamedInputs<'a' | 'b' | 'gamma' | 'beta'>;
export interface AddNormAttrs { eps: number; rms: boolean }
/**
 * inputs {dnormed, dsum, sum, gamma, beta}: dsum may be empty (size 0: the sum got no gradient, e.g. post-norm);
 * attrs as AddNorm. Outputs [da, db, dgamma, dbeta]: da and db both = dsum + the norm's dx (a backend may return
 * one buffer twice), dbeta empty for RMSNorm.
 */
export const AddNormGrad = 'VlmixAddNormGrad';
export type AddNormGradInputs = NamedInputs<'dnormed' | 'dsum' | 'sum' | 'gamma' | 'beta'>;
export type AddNormGradAttrs = AddNormAttrs;

/**
 * Scaled-dot-product attention with grouped KV heads.
 * inputs {q: [B, Hq, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], bias: [B|1, Hq|1, Tq|1, Tk] or empty}
 * attrs {scale: number, causal: boolean}
 * - Hq must be a multiple of Hkv; query head h reads kv head floor(h / (Hq / Hkv)) (repeat_interleave).
 * - bias is ALWAYS passed (tfjs saves inputs by name for backprop); an empty tensor (size 0, shape [0])
 *   means "no bias". Otherwise it is additive (0 = keep, -1e9 or -Infinity = masked) and receives a zero
 *   gradient.
 * - causal: query i may attend key j only if j <= i + (Tk - Tq) (so it works with a KV cache).
 * - A row whose keys are all masked yields zeros (not NaN).
 * Output: [B, Hq, Tq, Dv].
 */
export const Attention = 'VlmixAttention';
export type AttentionInputs = NamedInputs<'q' | 'k' | 'v' | 'bias'>;
export interface AttentionAttrs { scale: number; causal: boolean }
/** inputs {dy, q, k, v, bias} (bias possibly empty, as above), attrs as Attention. Outputs [dq, dk, dv]. */
export const AttentionGrad = 'VlmixAttentionGrad';
export type AttentionGradInputs = NamedInputs<'dy' | 'q' | 'k' | 'v' | 'bias'>;
export type AttentionGradAttrs = AttentionAttrs;

/**
 * Per-row softmax cross-entropy. inputs {logits: [N, V] float32, labels: [N] int32}, attrs {ignoreIndex}.
 * Output loss: [N] float32, 0 where labels[i] === ignoreIndex.
 */
export const SoftmaxCrossEntropy = 'VlmixSoftmaxCrossEntropy';
export type SoftmaxCrossEntropyInputs = NamedInputs<'logits' | 'labels'>;
export interface SoftmaxCrossEntropyAttrs { ignoreIndex: number }
/** inputs {dloss: [N], logits, labels}, attrs {ignoreIndex}. Output dlogits: [N, V]
 *  = dloss[i] * (softmax(logits[i]) - onehot(labels[i])), zero rows where ignored. */
export const SoftmaxCrossEntropyGrad = 'VlmixSoftmaxCrossEntropyGrad';
export type SoftmaxCrossEntropyGradInputs = NamedInputs<'dloss' | 'logits' | 'labels'>;
export type SoftmaxCrossEntropyGradAttrs = SoftmaxCrossEntropyAttrs;

/**
 * The mean over non-ignored rows of the per-row softmax cross-entropy, in one kernel (what a language-model
 * loss takes): inputs and attrs as SoftmaxCrossEntropy; output loss [] = sum of the rows' losses /
 * max(number of labels != ignoreIndex, 1) (0 when every label is ignored).
 */
export const SoftmaxCrossEntropyMean = 'VlmixSoftmaxCrossEntropyMean';
export type SoftmaxCrossEntropyMeanInputs = SoftmaxCrossEntropyInputs;
export type SoftmaxCrossEntropyMeanAttrs = SoftmaxCrossEntropyAttrs;
/** inputs {dloss: [], logits, labels}. Output dlogits: SoftmaxCrossEntropyGrad with dloss / max(count, 1) on
 *  every row. */
export const SoftmaxCrossEntropyMeanGrad = 'VlmixSoftmaxCrossEntropyMeanGrad';
export type SoftmaxCrossEntropyMeanGradInputs = SoftmaxCrossEntropyGradInputs;

/**
 * An LM head and its loss in one kernel: SoftmaxCrossEntropyMean of x W^T. inputs {x [N, C], weight [V, C],
 * labels [N] int32}, attrs as SoftmaxCrossEntropy; output loss []. The [N, V] logits need not exist: a backend
 * may compute only the rows whose label is kept (vlmix-cpu does, in chunks).
 */
export const LinearCrossEntropy = 'VlmixLinearCrossEntropy';
export type LinearCrossEntropyInputs = NamedInputs<'x' | 'weight' | 'labels'>;
export type LinearCrossEntropyAttrs = SoftmaxCrossEntropyAttrs;
/** inputs {dloss: [], x, weight, labels}, attrs as LinearCrossEntropy. Outputs dx [N, C] (zero on ignored rows),
 *  dweight [V, C]. */
export const LinearCrossEntropyGrad = 'VlmixLinearCrossEntropyGrad';
export type LinearCrossEntropyGradInputs = NamedInputs<'dloss' | 'x' | 'weight' | 'labels'>;

/** GELU. inputs {x}, attrs {approximate: 'none' | 'tanh'} ('none' = exact erf form). */
export const Gelu = 'VlmixGelu';
export type GeluInputs = NamedInputs<'x'>;
export interface GeluAttrs { approximate: 'none' | 'tanh' }
/** inputs {dy, x}, attrs {approximate}. Output dx. */
export const GeluGrad = 'VlmixGeluGrad';
export type GeluGradInputs = NamedInputs<'dy' | 'x'>;
export type GeluGradAttrs = GeluAttrs;

/** SwiGLU gate: y = silu(gate) * up, elementwise, same shapes. inputs {gate, up}. */
export const Swiglu = 'VlmixSwiglu';
export type SwigluInputs = NamedInputs<'gate' | 'up'>;
/** inputs {dy, gate, up}. Outputs [dgate, dup]. */
export const SwigluGrad = 'VlmixSwigluGrad';
export type SwigluGradInputs = NamedInputs<'dy' | 'gate' | 'up'>;

/**
 * One AdamW step (decoupled weight decay, PyTorch semantics), no gradient.
 * inputs {param, grad, m, v} (same shape), attrs {lr, beta1, beta2, eps, weightDecay, step}
 * (step is 1-based, used for bias correction):
 *   param *= 1 - lr * weightDecay
 *   m = beta1 * m + (1 - beta1) * grad
 *   v = beta2 * v + (1 - beta2) * grad^2
 *   param -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
 * Outputs [param, m, v] (new tensors).
 */
export const AdamW = 'VlmixAdamW';
export type AdamWInputs = NamedInputs<'param' | 'grad' | 'm' | 'v'>;
export interface AdamWAttrs {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number;
}

/**
 * AdamW over many tensors in one kernel call (e.g. every parameter of a model): for each group the
 * same step as AdamW. inputs: the list [param0, grad0, m0, v0, param1, grad1, m1, v1, ...] (a list of
 * tensors, as tfjs's AddN takes); attrs as AdamW, with one weightDecay per group.
 * Outputs [param0, m0, v0, param1, m1, v1, ...] (new tensors).
 */
export const AdamWMulti = 'VlmixAdamWMulti';
export type AdamWMultiInputs = TensorInfo[];
export interface AdamWMultiAttrs extends Omit<AdamWAttrs, 'weightDecay'> {
  weightDecay: number[];
  /**
   * The caller gives up param, m and v (it disposes them and never reads them again): a backend may then
   * write the step into their buffers where no other tensor shares them, and return outputs that share
   * those buffers. Backends without it (and shared buffers) compute new tensors as usual.
   */
  inPlace?: boolean;
}

/**
 * Sum of squares over many tensors, the square of their global L2 norm (gradient clipping): inputs a list
 * of float32 tensors; output a scalar: each tensor's sum of squares, then those added in list order. The
 * same arithmetic as tf.addN(xs.map((x) => tf.sum(tf.square(x)))), as one dispatch instead of 2n + 1.
 */
export const SumSquares = 'VlmixSumSquares';
export type SumSquaresInputs = TensorInfo[];

/**
 * Injective row gather whose gradient is a gather (not a scatter-add): y[i] = x[idx[i]].
 * inputs {x: [R, C] (any 4-byte dtype), idx: [n] int32 (each row of x at most once),
 *         inv: [R] int32 (inv[idx[i]] = i; n for rows never picked)}. Output y: [n, C], x's dtype.
 * inv is not read by the forward pass; it is an input so that the gradient can save it.
 */
export const GatherRows = 'VlmixGatherRows';
export type GatherRowsInputs = NamedInputs<'x' | 'idx' | 'inv'>;
/** inputs {dy: [n, C], inv: [R] int32}. Output dx: [R, C], dx[j] = inv[j] < n ? dy[inv[j]] : 0. */
export const GatherRowsGrad = 'VlmixGatherRowsGrad';
export type GatherRowsGradInputs = NamedInputs<'dy' | 'inv'>;

/**
 * Linear layer (torch.nn.functional.linear): y = x @ weight^T + bias.
 * inputs {x: [..., K], weight: [N, K], bias: [N] or empty (size 0: no bias)}. Output y: [..., N].
 * One kernel instead of tfjs's reshape / matMul / bias-add / reshape chain (fewer dispatches per layer).
 */
export const Linear = 'VlmixLinear';
export type LinearInputs = NamedInputs<'x' | 'weight' | 'bias'>;
/** inputs {dy: [..., N], x, weight, bias} (bias only for its size). Outputs [dx: x.shape = dy @ weight,
 *  dweight: [N, K] = dy^T @ x (rows flattened), dbias: bias.shape = column sums of dy (empty if no bias)]. */
export const LinearGrad = 'VlmixLinearGrad';
export type LinearGradInputs = NamedInputs<'dy' | 'x' | 'weight' | 'bias'>;

/**
 * A tanh-gated residual (Flamingo's gated cross-attention): out = x + y * tanh(gate), inputs {x, y: same shape,
 * gate: one element ([1] or [])}. The bits of tf.add(tf.mul(y, tf.tanh(gate)), x).
 */
export const GatedResidual = 'VlmixGatedResidual';
export type GatedResidualInputs = NamedInputs<'x' | 'y' | 'gate'>;
/** inputs {dy, y, gate}. Outputs [dx = dy, dgated = dy * tanh(gate), dgate = (1 - tanh(gate)^2) * sum(dy * y)], the
 *  bits of tfjs's Add, Multiply and Tanh gradients. */
export const GatedResidualGrad = 'VlmixGatedResidualGrad';
export type GatedResidualGradInputs = NamedInputs<'dy' | 'y' | 'gate'>;

/** The activations a linear layer can fuse (LinearActivation). 'gelu' is the exact erf form. */
export type FusedActivation = 'gelu' | 'gelu_tanh' | 'relu';
/**
 * A linear layer and its activation: y = act(x @ weight^T + bias). inputs as Linear, attrs {activation}.
 * Outputs [y, preactivation] (x @ weight^T + bias, kept for the gradient; callers read y), each with the bits
 * of Linear then the activation's kernel (VlmixGelu, or Relu).
 */
export const LinearActivation = 'VlmixLinearActivation';
export type LinearActivationInputs = LinearInputs;
export interface LinearActivationAttrs { activation: FusedActivation }
/** inputs {dy, x, weight, bias, preactivation}, attrs as LinearActivation. Outputs as LinearGrad, of
 *  dz = dy * act'(preactivation). */
export const LinearActivationGrad = 'VlmixLinearActivationGrad';
export type LinearActivationGradInputs = NamedInputs<'dy' | 'x' | 'weight' | 'bias' | 'preactivation'>;
export type LinearActivationGradAttrs = LinearActivationAttrs;

/**
 * Attention heads out of a projection: x [B, T, (h0 + h1 + ...) * D] -> one [B, h_i, T, D] per entry of
 * `heads` (e.g. q, k and v of a fused QKV projection), in channel order. inputs {x}, attrs {heads, headDim}.
 * One kernel for what is otherwise a split, then a reshape and a transpose per part.
 */
export const SplitHeads = 'VlmixSplitHeads';
export type SplitHeadsInputs = NamedInputs<'x'>;
export interface SplitHeadsAttrs { heads: number[]; headDim: number }
/**
 * The inverse: inputs a list [x0: [B, h0, T, D], x1: [B, h1, T, D], ...] (same B, T, D) -> y [B, T, (h0 + h1
 * + ...) * D], heads in list order (one input: the usual merge of an attention output). attrs {heads}: each
 * input's head count (x_i.shape[1]), so that the gradient needs no saved tensor.
 */
export const MergeHeads = 'VlmixMergeHeads';
export type MergeHeadsInputs = TensorInfo[];
export interface MergeHeadsAttrs { heads: number[] }

/**
 * Rotary position embedding on q or k: inputs {x: [B, H, T, D], cos: [B|1, T, R], sin: [B|1, T, R]} (the
 * angles of R channel pairs per position), attrs {interleaved, inverse}. Pair j is channels (j, j + R) (HF
 * Llama's rotate_half) or (2j, 2j + 1) when interleaved (Meta / llama2.c); channels from 2R on pass through:
 *   y_a = x_a cos - x_b sin,  y_b = x_b cos + x_a sin.
 * inverse rotates by minus the angle (the gradient, a rotation being orthogonal). cos and sin receive a zero
 * gradient (positions are not trained). Output y: x.shape.
 */
export const Rotary = 'VlmixRotary';
export type RotaryInputs = NamedInputs<'x' | 'cos' | 'sin'>;
export interface RotaryAttrs { interleaved: boolean; inverse: boolean }

/**
 * SplitHeads with the leading `rotated` parts rotated (Rotary): a fused QKV projection's q and k heads rotated in
 * the split's kernel. inputs {x: [B, T, (h0 + h1 + ...) * D], cos, sin: [B|1, T, R]}, attrs {heads, headDim,
 * rotated, interleaved}. Outputs one [B, h_i, T, D] per part, the bits of SplitHeads then Rotary on each of the
 * first `rotated` parts. cos and sin receive a zero gradient.
 */
export const SplitHeadsRotary = 'VlmixSplitHeadsRotary';
export type SplitHeadsRotaryInputs = NamedInputs<'x' | 'cos' | 'sin'>;
export interface SplitHeadsRotaryAttrs { heads: number[]; headDim: number; rotated: number; interleaved: boolean }
/** Its gradient: inputs the list [dy0, dy1, ..., cos, sin] -> dx [B, T, C]: the first `rotated` parts rotated back
 *  (Rotary with inverse), then MergeHeads. attrs as SplitHeadsRotary. */
export const MergeHeadsRotary = 'VlmixMergeHeadsRotary';
export type MergeHeadsRotaryInputs = TensorInfo[];
export type MergeHeadsRotaryAttrs = SplitHeadsRotaryAttrs;

/**
 * Token embeddings with image tokens written at the placeholders, in one kernel: inputs {table: [V, C], ids: [...]
 * int32, tokens: [..., C] (X rows), idx: [N] int32, inv: [N + X] int32} with N = ids.size and (idx, inv) a row
 * gather over [embeddings of ids; tokens] (ops.rowGather: each row picked at most once): y[i] = idx[i] < N ?
 * table[ids[idx[i]]] : tokens[idx[i] - N]. Output [...ids.shape, C]: the bits of tf.gather(table, ids), a concat and
 * ops.gatherRows.
 */
export const EmbeddingScatter = 'VlmixEmbeddingScatter';
export type EmbeddingScatterInputs = NamedInputs<'table' | 'ids' | 'tokens' | 'idx' | 'inv'>;
/** inputs {dy, ids, inv, table, tokens} (table and tokens for their shapes). Outputs [dtable: the rows of dy[inv]
 *  that came from the table summed into their ids (UnsortedSegmentSum), dtokens: tokens.shape]. */
export const EmbeddingScatterGrad = 'VlmixEmbeddingScatterGrad';
export type EmbeddingScatterGradInputs = NamedInputs<'dy' | 'ids' | 'inv' | 'table' | 'tokens'>;

/**
 * Writes a step's keys or values into a preallocated KV cache: inputs {cache: [B, H, S, D], update: [B, H, T, D],
 * position: int32 scalar p} -> the cache with positions [p, p + T) of axis 2 replaced by update (p + T <= S).
 * The position is a tensor, not an attribute, so that every decoding step dispatches the same kernel call
 * (a replayed step, capture.ts). A backend may write into the cache's own buffer and return it (vlmix-cpu
 * does: no copy of the cache per token); the composite body returns a new tensor. No gradient: inference only.
 */
export const CacheWrite = 'VlmixCacheWrite';
export type CacheWriteInputs = NamedInputs<'cache' | 'update' | 'position'>;

/** Type of every fused kernel: inputs (by name, or a list), attributes (`{}` for none) and the names of
 *  its outputs (string[]: a list). */
export interface FusedKernels {
  [LayerNorm]: { inputs: LayerNormInputs; attrs: LayerNormAttrs; outputs: ['y'] };
  [LayerNormGrad]: { inputs: LayerNormGradInputs; attrs: LayerNormGradAttrs; outputs: ['dx', 'dgamma', 'dbeta'] };
  [RmsNorm]: { inputs: RmsNormInputs; attrs: RmsNormAttrs; outputs: ['y'] };
  [RmsNormGrad]: { inputs: RmsNormGradInputs; attrs: RmsNormGradAttrs; outputs: ['dx', 'dgamma'] };
  [Attention]: { inputs: AttentionInputs; attrs: AttentionAttrs; outputs: ['y'] };
  [AttentionGrad]: { inputs: AttentionGradInputs; attrs: AttentionGradAttrs; outputs: ['dq', 'dk', 'dv'] };
  [SoftmaxCrossEntropy]: { inputs: SoftmaxCrossEntropyInputs; attrs: SoftmaxCrossEntropyAttrs; outputs: ['loss'] };
  [SoftmaxCrossEntropyGrad]: {
    inputs: SoftmaxCrossEntropyGradInputs; attrs: SoftmaxCrossEntropyGradAttrs; outputs: ['dlogits'];
  };
  [SoftmaxCrossEntropyMean]: { inputs: SoftmaxCrossEntropyMeanInputs; attrs: SoftmaxCrossEntropyMeanAttrs; outputs: ['loss'] };
  [SoftmaxCrossEntropyMeanGrad]: {
    inputs: SoftmaxCrossEntropyMeanGradInputs; attrs: SoftmaxCrossEntropyMeanAttrs; outputs: ['dlogits'];
  };
  [LinearCrossEntropy]: { inputs: LinearCrossEntropyInputs; attrs: LinearCrossEntropyAttrs; outputs: ['loss'] };
  [LinearCrossEntropyGrad]: { inputs: LinearCrossEntropyGradInputs; attrs: LinearCrossEntropyAttrs; outputs: ['dx', 'dweight'] };
  [Gelu]: { inputs: GeluInputs; attrs: GeluAttrs; outputs: ['y'] };
  [GeluGrad]: { inputs: GeluGradInputs; attrs: GeluGradAttrs; outputs: ['dx'] };
  [Swiglu]: { inputs: SwigluInputs; attrs: Record<string, never>; outputs: ['y'] };
  [SwigluGrad]: { inputs: SwigluGradInputs; attrs: Record<string, never>; outputs: ['dgate', 'dup'] };
  [AdamW]: { inputs: AdamWInputs; attrs: AdamWAttrs; outputs: ['param', 'm', 'v'] };
  [AdamWMulti]: { inputs: AdamWMultiInputs; attrs: AdamWMultiAttrs; outputs: string[] };
  [SumSquares]: { inputs: SumSquaresInputs; attrs: Record<string, never>; outputs: ['y'] };
  [GatherRows]: { inputs: GatherRowsInputs; attrs: Record<string, never>; outputs: ['y'] };
  [GatherRowsGrad]: { inputs: GatherRowsGradInputs; attrs: Record<string, never>; outputs: ['dx'] };
  [SplitHeads]: { inputs: SplitHeadsInputs; attrs: SplitHeadsAttrs; outputs: string[] };
  [MergeHeads]: { inputs: MergeHeadsInputs; attrs: MergeHeadsAttrs; outputs: ['y'] };
  [Rotary]: { inputs: RotaryInputs; attrs: RotaryAttrs; outputs: ['y'] };
  [Linear]: { inputs: LinearInputs; attrs: Record<string, never>; outputs: ['y'] };
  [LinearGrad]: { inputs: LinearGradInputs; attrs: Record<string, never>; outputs: ['dx', 'dweight', 'dbias'] };
  [CacheWrite]: { inputs: CacheWriteInputs; attrs: Record<string, never>; outputs: ['y'] };
  [AddNorm]: { inputs: AddNormInputs; attrs: AddNormAttrs; outputs: ['sum', 'normed'] };
  [AddNormGrad]: { inputs: AddNormGradInputs; attrs: AddNormGradAttrs; outputs: ['da', 'db', 'dgamma', 'dbeta'] };
  [LinearActivation]: { inputs: LinearActivationInputs; attrs: LinearActivationAttrs; outputs: ['y', 'preactivation'] };
  [EmbeddingScatter]: { inputs: EmbeddingScatterInputs; attrs: Record<string, never>; outputs: ['y'] };
  [EmbeddingScatterGrad]: { inputs: EmbeddingScatterGradInputs; attrs: Record<string, never>; outputs: ['dtable', 'dtokens'] };
  [SplitHeadsRotary]: { inputs: SplitHeadsRotaryInputs; attrs: SplitHeadsRotaryAttrs; outputs: string[] };
  [MergeHeadsRotary]: { inputs: MergeHeadsRotaryInputs; attrs: MergeHeadsRotaryAttrs; outputs: ['dx'] };
  [GatedResidual]: { inputs: GatedResidualInputs; attrs: Record<string, never>; outputs: ['y'] };
  [GatedResidualGrad]: { inputs: GatedResidualGradInputs; attrs: Record<string, never>; outputs: ['dx', 'dy', 'dgate'] };
  [LinearActivationGrad]: {
    inputs: LinearActivationGradInputs; attrs: LinearActivationGradAttrs; outputs: ['dx', 'dweight', 'dbias'];
  };
}
export type FusedKernelName = keyof FusedKernels;
export type FusedInputs<N extends FusedKernelName> = FusedKernels[N]['inputs'];
export type FusedAttrs<N extends FusedKernelName> = FusedKernels[N]['attrs'];
type EachAs<Tuple, T> = { [i in keyof Tuple]: T };
/** A kernel's result: one T for a single output, else a tuple of T (one per output name). */
export type FusedOutputs<N extends FusedKernelName, T> = FusedKernels[N]['outputs'] extends [string]
  ? T : EachAs<FusedKernels[N]['outputs'], T>;

// Typed as a record so that the compiler checks the list against FusedKernels (none missing, none extra).
const listed: { [N in FusedKernelName]: true } = {
  [LayerNorm]: true, [LayerNormGrad]: true, [RmsNorm]: true, [RmsNormGrad]: true, [Attention]: true,
  [AttentionGrad]: true, [SoftmaxCrossEntropy]: true, [SoftmaxCrossEntropyGrad]: true, [Gelu]: true,
  [GeluGrad]: true, [Swiglu]: true, [SwigluGrad]: true, [AdamW]: true, [AdamWMulti]: true, [SumSquares]: true, [GatherRows]: true,
  [GatherRowsGrad]: true, [Linear]: true, [LinearGrad]: true,
  [SplitHeads]: true, [MergeHeads]: true, [Rotary]: true, [SoftmaxCrossEntropyMean]: true,
  [SoftmaxCrossEntropyMeanGrad]: true, [CacheWrite]: true,
  [AddNorm]: true, [AddNormGrad]: true, [LinearActivation]: true, [LinearActivationGrad]: true,
  [GatedResidual]: true, [GatedResidualGrad]: true, [SplitHeadsRotary]: true, [MergeHeadsRotary]: true,
  [EmbeddingScatter]: true, [EmbeddingScatterGrad]: true, [LinearCrossEntropy]: true, [LinearCrossEntropyGrad]: true,
};
/** Every fused kernel name, forward and backward. */
export const ALL_FUSED_KERNELS: readonly FusedKernelName[] = Object.keys(listed) as FusedKernelName[];
