/** What every hook implementation sees besides its arguments. Created once per forward pass. */
import type * as tf from '@tensorflow/tfjs';
import type { TransformerConfig } from './config.js';
import type { HookArgs, HookName, HookResults } from './hooks.js';
import type { KVCache } from './kv-cache.js';
import type { AttentionMask } from './masks.js';

export interface ContextHost {
  readonly config: TransformerConfig;
  param(name: string): tf.Variable;
  hasParam(name: string): boolean;
  resolveHook<H extends HookName>(hook: H, layer: number): (...args: [...HookArgs[H], ForwardContext]) => HookResults[H];
}

export interface ContextInit {
  inputIds: tf.Tensor;
  positionIds: tf.Tensor;
  attention: AttentionMask;
  tokenTypes: tf.Tensor | null;
  media: Record<string, unknown>;
  cache: KVCache | null;
  training: boolean;
  pastLength: number;
}

export class ForwardContext {
  /** Current layer index; -1 outside the layer stack. */
  layer = -1;
  readonly inputIds: tf.Tensor;
  /** [B, T] int32, or [3, B, T] for multimodal rotary (t, h, w). */
  positionIds: tf.Tensor;
  attention: AttentionMask;
  /** [B, T] int32: 0 = text token, 1 = vision token (visual expert routing, position rules). */
  tokenTypes: tf.Tensor | null;
  /** Inputs for mixins (images, media locations, ...), by name. */
  readonly media: Record<string, unknown>;
  readonly cache: KVCache | null;
  readonly training: boolean;
  /** Positions already in the cache before this pass. */
  readonly pastLength: number;
  /** Cross-layer outputs: a mixin stores what later hooks or layers read (e.g. encoded image features). */
  readonly state = new Map<string, unknown>();
  /** Hidden states collected when requested: embeddings, then after each layer. */
  readonly hiddenStates: tf.Tensor[] = [];

  constructor(readonly host: ContextHost, init: ContextInit) {
    this.inputIds = init.inputIds;
    this.positionIds = init.positionIds;
    this.attention = init.attention;
    this.tokenTypes = init.tokenTypes;
    this.media = init.media;
    this.cache = init.cache;
    this.training = init.training;
    this.pastLength = init.pastLength;
  }

  get config(): TransformerConfig {
    return this.host.config;
  }

  get batch(): number {
    return this.inputIds.shape[0]!;
  }

  get seqLen(): number {
    return this.inputIds.shape[1]!;
  }

  /** Name prefix of the current layer's parameters. */
  get layerPrefix(): string {
    return `transformer.layers.${this.layer}.`;
  }

  param(name: string): tf.Variable {
    return this.host.param(name);
  }

  /** Calls a hook as resolved for the current layer. */
  run<H extends HookName>(hook: H, ...args: HookArgs[H]): HookResults[H] {
    return this.host.resolveHook(hook, this.layer)(...args, this);
  }
}
