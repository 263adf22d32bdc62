/**
 * Names, inputs and attributes of vlmix's fused kernels. This file is the contract between the model
 * code (which calls ops by these names) and every backend that implements them natively.
 * Conventions: float32 unless stated; "last axis" means the normalised / reduced axis; all kernels are
 * pure (never modify inputs).
 */

/** y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased variance).
 *  inputs {x: [..., C], gamma: [C], beta: [C]}, attrs {eps}. Output y: x.shape. */
export const LayerNorm = 'VlmixLayerNorm';
/** inputs {dy, x, gamma}, attrs {eps}. Outputs [dx: x.shape, dgamma: [C], dbeta: [C]]. */
export const LayerNormGrad = 'VlmixLayerNormGrad';

/** y = x * rsqrt(mean(x^2) + eps) * gamma over the last axis. inputs {x, gamma}, attrs {eps}. */
export const RmsNorm = 'VlmixRmsNorm';
/** inputs {dy, x, gamma}, attrs {eps}. Outputs [dx, dgamma]. */
export const RmsNormGrad = 'VlmixRmsNormGrad';

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
/** inputs {dy, q, k, v, bias} (bias possibly empty, as above), attrs as Attention. Outputs [dq, dk, dv]. */
export const AttentionGrad = 'VlmixAttentionGrad';

/**
 * Per-row softmax cross-entropy. inputs {logits: [N, V] float32, labels: [N] int32}, attrs {ignoreIndex}.
 * Output loss: [N] float32, 0 where labels[i] === ignoreIndex.
 */
export const SoftmaxCrossEntropy = 'VlmixSoftmaxCrossEntropy';
/** inputs {dloss: [N], logits, labels}, attrs {ignoreIndex}. Output dlogits: [N, V]
 *  = dloss[i] * (softmax(logits[i]) - onehot(labels[i])), zero rows where ignored. */
export const SoftmaxCrossEntropyGrad = 'VlmixSoftmaxCrossEntropyGrad';

/** GELU. inputs {x}, attrs {approximate: 'none' | 'tanh'} ('none' = exact erf form). */
export const Gelu = 'VlmixGelu';
/** inputs {dy, x}, attrs {approximate}. Output dx. */
export const GeluGrad = 'VlmixGeluGrad';

/** SwiGLU gate: y = silu(gate) * up, elementwise, same shapes. inputs {gate, up}. */
export const Swiglu = 'VlmixSwiglu';
/** inputs {dy, gate, up}. Outputs [dgate, dup]. */
export const SwigluGrad = 'VlmixSwigluGrad';

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

export const ALL_FUSED_KERNELS = [
  LayerNorm, LayerNormGrad, RmsNorm, RmsNormGrad, Attention, AttentionGrad,
  SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad, Gelu, GeluGrad, Swiglu, SwigluGrad, AdamW,
] as const;

export interface LayerNormAttrs { eps: number }
export interface AttentionAttrs { scale: number; causal: boolean }
export interface SoftmaxCrossEntropyAttrs { ignoreIndex: number }
export interface GeluAttrs { approximate: 'none' | 'tanh' }
export interface AdamWAttrs {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number;
}
