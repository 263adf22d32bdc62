/**
 * The hook table: the named points where a mixin changes the model. A layer's forward pass is a fixed
 * sequence of hook calls (see transformer.ts); a mixin serves hooks and owns parameters, nothing more.
 *
 * Every implementation receives the hook's arguments, the forward context, and `next`: the
 * implementation it wraps (the base default, or the mixin added before it).
 * - chain hooks: any number of mixins may serve them; the last added is outermost.
 * - plain hooks: at most one mixin serves them (a second is an error naming both) unless the newcomer
 *   declares it overrides that hook, in which case it wraps the current one like a chain.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ForwardContext } from './context.js';

export interface HookArgs {
  /** token ids [B, T] int32 -> hidden [B, T, C] */
  wordEmbedding: [inputIds: tf.Tensor];
  /** hidden [B, T, C] -> hidden with positions added (learned positions; identity when rotary) */
  positionEmbedding: [hidden: tf.Tensor];
  /** q [B, Hq, T, D], k [B, Hkv, T, D] -> rotated [q, k] (before the KV cache) */
  applyRotary: [q: tf.Tensor, k: tf.Tensor];
  /** q, k, v (k/v include the cache) -> context [B, Hq, T, Dv]; the mask is ctx.attention */
  attentionFn: [q: tf.Tensor, k: tf.Tensor, v: tf.Tensor];
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
}

/** A resolved hook as callers see it. */
export type HookFn<H extends HookName> = (...args: [...HookArgs[H], ForwardContext]) => HookResults[H];
/** What a mixin (or the base) implements. */
export type HookImpl<H extends HookName> = (...args: [...HookArgs[H], ForwardContext, HookFn<H>]) => HookResults[H];
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
};

export const HOOK_NAMES = Object.keys(HOOK_KINDS) as HookName[];

/** Hooks that run once per forward pass rather than per layer. */
export const GLOBAL_HOOKS: ReadonlySet<HookName> = new Set(['wordEmbedding', 'positionEmbedding', 'finalForward']);

export function isHookName(name: string): name is HookName {
  return Object.prototype.hasOwnProperty.call(HOOK_KINDS, name);
}
