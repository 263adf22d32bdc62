/**
 * The hook table: the named points where a mixin changes the model, and the whole architecture of a
 * forward pass (as SAT's HOOKS_DEFAULT). A pass runs the stages in this order:
 *
 *   host   (model.prepareInputs, once per batch, on integer arrays; no tensor is read back)
 *          tokenTypes -> positionIds -> hostInputs
 *   media  (once per pass, before the embeddings)           encodeMedia
 *   embed  (once per pass)                                  wordEmbedding -> positionEmbedding
 *   layers (per layer; see transformer.ts)                  layerForward { crossAttentionForward,
 *          attentionForward { linear, applyRotary, attentionFn }, mlpForward { linear } }
 *   final  (once per pass)                                  finalForward
 *
 * A mixin serves hooks and owns parameters, nothing more. Every implementation receives the hook's
 * arguments, its context (a `HostContext` for host hooks, the `ForwardContext` otherwise) and `next`:
 * the implementation it wraps (the base default, or the mixin added before it).
 * - chain hooks: any number of mixins may serve them; the last added is outermost.
 * - plain hooks: at most one mixin serves them (a second is an error naming both) unless the newcomer
 *   declares it overrides that hook, in which case it wraps the current one like a chain.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ForwardContext } from './context.js';
import type { HostContext } from './host.js';
import type { AttentionMask } from './masks.js';
import type { StateMap } from './state.js';

export interface HookArgs {
  /** token ids [B, T] int32 -> hidden [B, T, C] */
  wordEmbedding: [inputIds: tf.Tensor];
  /** hidden [B, T, C] -> hidden with positions added (learned positions; identity when rotary) */
  positionEmbedding: [hidden: tf.Tensor];
  /** q [B, Hq, T, D], k [B, Hkv, T, D] -> rotated [q, k] (before the KV cache) */
  applyRotary: [q: tf.Tensor, k: tf.Tensor];
  /** q, k, v (k/v include the cache) and the mask -> context [B, Hq, T, Dv] (SAT's attention_fn(q, k, v, mask)) */
  attentionFn: [q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: AttentionMask];
  /** normed hidden [B, T, C] -> attention output [B, T, C] (before the residual) */
  attentionForward: [hidden: tf.Tensor];
  /** hidden -> hidden: runs at the start of each layer; the mixin owns its norm, gate and residual */
  crossAttentionForward: [hidden: tf.Tensor];
  /** normed hidden -> MLP output (before the residual) */
  mlpForward: [hidden: tf.Tensor];
  /** every linear projection, by parameter base name (e.g. transformer.layers.0.attention.dense) */
  linear: [name: string, x: tf.Tensor];
  /** hidden -> hidden for one whole layer */
  layerForward: [hidden: tf.Tensor];
  /** last hidden [B, T, C] -> logits [B, T, V] (final norm + head) */
  finalForward: [hidden: tf.Tensor];
  /** host: token types [B * T] (0 text, 1 vision) from the ids; null = none. Base: the caller's. */
  tokenTypes: [];
  /** host: position ids [B, T] (or [3, B, T]) int32. Base: the caller's, else pastLength + 0..T-1. */
  positionIds: [];
  /** host: per-batch tensors derived from the integer arrays (placeholder, routing, media indices). */
  hostInputs: [inputs: StateMap];
  /** media: encoded media by typed key (image features, resampled latents, projected image tokens). */
  encodeMedia: [features: StateMap];
}

export type HookName = keyof HookArgs;

export interface HookResults {
  wordEmbedding: tf.Tensor;
  positionEmbedding: tf.Tensor;
  applyRotary: [tf.Tensor, tf.Tensor];
  attentionFn: tf.Tensor;
  attentionForward: tf.Tensor;
  crossAttentionForward: tf.Tensor;
  mlpForward: tf.Tensor;
  linear: tf.Tensor;
  layerForward: tf.Tensor;
  finalForward: tf.Tensor;
  tokenTypes: Int32Array | null;
  positionIds: tf.Tensor;
  hostInputs: StateMap;
  encodeMedia: StateMap;
}

/** Hooks of the host stage: they see a HostContext (integer arrays), never device tensors. */
export type HostHookName = 'tokenTypes' | 'positionIds' | 'hostInputs';

/** The context a hook's implementations receive. */
export type HookContext<H extends HookName> = H extends HostHookName ? HostContext : ForwardContext;

/** A resolved hook as callers see it. */
export type HookFn<H extends HookName> = (...args: [...HookArgs[H], HookContext<H>]) => HookResults[H];
/** What a mixin (or the base) implements. */
export type HookImpl<H extends HookName> = (...args: [...HookArgs[H], HookContext<H>, HookFn<H>]) => HookResults[H];
export type HookImpls = { [H in HookName]?: HookImpl<H> };

export const HOOK_KINDS: Record<HookName, 'chain' | 'plain'> = {
  wordEmbedding: 'chain',
  positionEmbedding: 'chain',
  applyRotary: 'plain',
  attentionFn: 'chain',
  attentionForward: 'plain',
  crossAttentionForward: 'chain',
  mlpForward: 'plain',
  linear: 'chain',
  layerForward: 'chain',
  finalForward: 'chain',
  tokenTypes: 'chain',
  positionIds: 'plain',
  hostInputs: 'chain',
  encodeMedia: 'chain',
};

export const HOOK_NAMES = Object.keys(HOOK_KINDS) as HookName[];

/** The stages of a pass and their hooks, in run order (docs, `vlmix inspect`). */
export const HOOK_STAGES: { stage: 'host' | 'media' | 'embed' | 'layer' | 'final'; hooks: HookName[] }[] = [
  { stage: 'host', hooks: ['tokenTypes', 'positionIds', 'hostInputs'] },
  { stage: 'media', hooks: ['encodeMedia'] },
  { stage: 'embed', hooks: ['wordEmbedding', 'positionEmbedding'] },
  { stage: 'layer', hooks: ['layerForward', 'crossAttentionForward', 'attentionForward', 'linear', 'applyRotary', 'attentionFn', 'mlpForward'] },
  { stage: 'final', hooks: ['finalForward'] },
];

export const HOST_HOOKS: ReadonlySet<HookName> = new Set<HookName>(['tokenTypes', 'positionIds', 'hostInputs']);

/** Hooks that run once per pass (or per batch, for host hooks) rather than per layer. */
export const GLOBAL_HOOKS: ReadonlySet<HookName> = new Set<HookName>([
  'wordEmbedding', 'positionEmbedding', 'finalForward', 'tokenTypes', 'positionIds', 'hostInputs', 'encodeMedia',
]);

export function isHookName(name: string): name is HookName {
  return Object.prototype.hasOwnProperty.call(HOOK_KINDS, name);
}
