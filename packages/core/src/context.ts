/**
 * What every device-side hook implementation sees besides its arguments. Created once per forward pass
 * from the prepared inputs and read-only afterwards: position ids, token types and the attention mask
 * are fixed by the host stage (mixins change them through the `positionIds` / `tokenTypes` hooks, and a
 * hook that needs another mask passes it to `attentionFn`), and `state` holds typed, write-once values.
 */
import type * as tf from '@tensorflow/tfjs';
import type { TransformerConfig } from './config.js';
import type { HookArgs, HookFn, HookName, HookResults } from './hooks.js';
import type { KVCache } from './kv-cache.js';
import type { AttentionMask } from './masks.js';
import { collectTensors, ForwardState, StateMap } from './state.js';

export interface ContextHost {
  readonly config: TransformerConfig;
  param(name: string): tf.Variable;
  hasParam(name: string): boolean;
  resolveHook<H extends HookName>(hook: H, layer: number): HookFn<H>;
  /** The mixins serving `hook` at `layer`, outermost (runs first) first; empty when the base's implementation runs. */
  hookServers?(hook: HookName, layer: number): readonly object[];
}

export interface ContextInit {
  inputIds: tf.Tensor;
  positionIds: tf.Tensor;
  attention: AttentionMask;
  tokenTypes: tf.Tensor | null;
  media: Record<string, unknown>;
  cache: KVCache | null;
  training: boolean;
  /** Seeds this pass's dropout masks (training passes). */
  dropoutSeed?: number;
  pastLength: number;
  /** The host stage's typed values (`hostInputs` hooks). */
  state?: StateMap;
}

/** Hook names a ForwardContext can run (the host hooks run in model.prepareInputs). */
export type DeviceHookName = Exclude<HookName, 'tokenTypes' | 'positionIds' | 'hostInputs'>;

/** Outputs collected during a pass when requested. */
export interface PassOutputs {
  /** Embeddings, then each layer's output (with outputHiddenStates). */
  hiddenStates: tf.Tensor[];
  /** The final-normed hidden state, set by the base finalForward. */
  finalHidden: tf.Tensor | null;
}

export class ForwardContext {
  readonly inputIds: tf.Tensor;
  /** Inputs for mixins (images, ...), by name. Frozen. */
  readonly media: Readonly<Record<string, unknown>>;
  readonly cache: KVCache | null;
  readonly training: boolean;
  /** Seed of this pass's dropout masks; each site derives its own (see dropout()). */
  readonly dropoutSeed: number;
  /** Positions already in the cache before this pass. */
  readonly pastLength: number;
  readonly outputs: PassOutputs = { hiddenStates: [], finalHidden: null };
  #layer = -1;
  #residual: tf.Tensor | null = null;
  readonly #positionIds: tf.Tensor;
  readonly #tokenTypes: tf.Tensor | null;
  readonly #attention: AttentionMask;
  #state: ForwardState;

  constructor(readonly host: ContextHost, init: ContextInit) {
    this.inputIds = init.inputIds;
    this.#positionIds = init.positionIds;
    this.#attention = Object.freeze({ ...init.attention });
    this.#tokenTypes = init.tokenTypes;
    this.media = Object.freeze({ ...init.media });
    this.cache = init.cache;
    this.training = init.training;
    this.dropoutSeed = init.dropoutSeed ?? 0;
    this.pastLength = init.pastLength;
    this.#state = new ForwardState(init.state ?? StateMap.empty);
  }

  /** Typed values of this pass: host inputs, then encoded media (read-only), and per-pass memos. */
  get state(): ForwardState {
    return this.#state;
  }

  /** Current layer index; -1 outside the layer stack. */
  get layer(): number {
    return this.#layer;
  }

  /** [B, T] int32, or [3, B, T] for multimodal rotary (t, h, w). */
  get positionIds(): tf.Tensor {
    return this.#positionIds;
  }

  /** [B, T] int32: 0 = text token, 1 = vision token (visual expert routing, position rules). */
  get tokenTypes(): tf.Tensor | null {
    return this.#tokenTypes;
  }

  /** The pass's attention mask, which the base attentionForward hands to `attentionFn`. */
  get attention(): AttentionMask {
    return this.#attention;
  }

  /** Hidden states collected when requested (alias of outputs.hiddenStates). */
  get hiddenStates(): tf.Tensor[] {
    return this.outputs.hiddenStates;
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

  /**
   * The hidden state the running sub-layer's output will be added to (pre-norm: the un-normed input of
   * attentionForward / mlpForward, which receive it normed), set by the base layerForward; null outside.
   * What a hook needs to compute `h + attn(norm(h))` itself (CogAgent's cross-attention reads it).
   */
  get residual(): tf.Tensor | null {
    return this.#residual;
  }

  /** @internal The base layerForward sets it before each sub-layer. */
  static setResidual(ctx: ForwardContext, h: tf.Tensor | null): void {
    ctx.#residual = h;
  }

  /** Name prefix of the current layer's parameters. */
  get layerPrefix(): string {
    return `transformer.layers.${this.#layer}.`;
  }

  param(name: string): tf.Variable {
    this.#paramsRead?.add(name);
    return this.host.param(name);
  }

  #paramsRead: Set<string> | null = null;

  /** @internal Runs fn collecting the names of the parameters it reads (gradient checkpointing). */
  static recordParams<T>(ctx: ForwardContext, names: Set<string>, fn: () => T): T {
    const prev = ctx.#paramsRead;
    ctx.#paramsRead = names;
    try {
      return fn();
    } finally {
      ctx.#paramsRead = prev;
    }
  }

  /** @internal Every tensor the pass holds: ids, positions, types, mask, media, state (gradient checkpointing keeps them). */
  static tensors(ctx: ForwardContext): tf.Tensor[] {
    const out: tf.Tensor[] = [ctx.inputIds, ctx.#positionIds];
    if (ctx.#tokenTypes) out.push(ctx.#tokenTypes);
    if (ctx.#attention.bias) out.push(ctx.#attention.bias);
    for (const v of Object.values(ctx.media)) collectTensors(v, out);
    out.push(...ctx.#state.tensors());
    return out;
  }

  /** Calls a hook as resolved for the current layer. */
  run<H extends DeviceHookName>(hook: H, ...args: HookArgs[H]): HookResults[H] {
    return (this.host.resolveHook(hook, this.#layer) as unknown as (...a: unknown[]) => HookResults[H])(...args, this);
  }

  /**
   * Whether the base's own implementation serves `hook` here (no mixin wraps it at this layer). Base code fuses
   * across a hook only then: e.g. a linear and its activation in one kernel, which a mixin's linear (LoRA's)
   * must see apart. False where the host cannot tell.
   */
  servedByBase(hook: DeviceHookName): boolean {
    return this.host.hookServers?.(hook, this.#layer).length === 0;
  }

  /**
   * The mixin object whose implementation of `hook` runs first here (the outermost), or null when the base's does
   * (or the host cannot tell). Base code asks it for what it offers to fuse, e.g. a rotary mixin's angles.
   */
  outermostServer(hook: DeviceHookName): object | null {
    return this.host.hookServers?.(hook, this.#layer)[0] ?? null;
  }

  /**
   * The mixin object whose implementation of `hook` runs last here, right above the base's (its `next` is the base),
   * or null when the base serves the hook alone (or the host cannot tell).
   */
  innermostServer(hook: DeviceHookName): object | null {
    const servers = this.host.hookServers?.(hook, this.#layer);
    return servers?.length ? servers[servers.length - 1]! : null;
  }

  /** @internal The model moves the pass through the layers. */
  static enterLayer(ctx: ForwardContext, layer: number): void {
    ctx.#layer = layer;
  }

  /** @internal The model adds the encoded media to the state once, before the embeddings. */
  static setState(ctx: ForwardContext, state: StateMap): void {
    ctx.#state = new ForwardState(state);
  }
}
