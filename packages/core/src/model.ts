/**
 * Model = base transformer + mixins. It owns the parameters, resolves each hook per layer into a chain
 * of implementations, and runs the forward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { resolveConfig, type TransformerConfig, type TransformerConfigInput } from './config.js';
import { ForwardContext, type ContextHost } from './context.js';
import { fail, shapeStr } from './errors.js';
import { GLOBAL_HOOKS, HOOK_KINDS, HOOK_NAMES, isHookName, type HookArgs, type HookFn, type HookImpl, type HookImpls, type HookName, type HookResults } from './hooks.js';
import type { KVCache } from './kv-cache.js';
import { buildMask, type MaskSpec } from './masks.js';
import type { Mixin } from './mixin.js';
import { ParamStore } from './params.js';
import { baseHooks, createBaseParams } from './transformer.js';
import * as ops from './ops/index.js';

export interface ForwardInputs {
  /** [B, T] int32 token ids. */
  inputIds: tf.Tensor | number[][];
  /** [B, T] (or [3, B, T] for multimodal rotary); default: pastLength + 0..T-1. */
  positionIds?: tf.Tensor;
  /** Padding mask [B, pastLength + T]: 1 = token, 0 = padding. */
  attentionMask?: tf.Tensor | null;
  /** Mask kind (default config.mask), prefix length, or an arbitrary 0/1 mask. */
  mask?: Partial<MaskSpec>;
  /** [B, T] int32: 0 text, 1 vision. */
  tokenTypes?: tf.Tensor | null;
  /** Extra inputs for mixins (images, media locations, ...). */
  media?: Record<string, unknown>;
  cache?: KVCache | null;
}

export interface ForwardOptions {
  training?: boolean;
  /** Also return the embeddings and each layer's output, and the final-normed hidden state. */
  outputHiddenStates?: boolean;
}

export interface ForwardOutput {
  logits: tf.Tensor3D;
  hiddenStates?: tf.Tensor[];
  finalHidden?: tf.Tensor;
}

interface Served {
  mixin: string;
  impl: HookImpl<HookName>;
  owner: Mixin;
}

export interface HookOrigins {
  /** Hooks run once per pass: implementation names, outermost first. */
  global: Partial<Record<HookName, string[]>>;
  layers: { layer: number; hooks: Partial<Record<HookName, string[]>> }[];
}

export interface AddMixinOptions {
  /** Re-initialise the mixin from the base (e.g. copy weights into an expert). */
  reinit?: boolean;
}

export class Model implements ContextHost {
  readonly config: TransformerConfig;
  readonly params: ParamStore;
  private readonly mixins = new Map<string, { mixin: Mixin; hooks: HookImpls }>();
  private readonly resolved = new Map<string, HookFn<HookName>>();

  constructor(config: TransformerConfigInput) {
    this.config = resolveConfig(config);
    this.params = new ParamStore(this.config.seed);
    createBaseParams(this.config, this.params);
  }

  // ------------------------------------------------------------------ mixins
  addMixin<M extends Mixin>(name: string, mixin: M, opts: AddMixinOptions = {}): M {
    if (!name || typeof name !== 'string') fail(`addMixin: name must be a non-empty string, got ${JSON.stringify(name)}`);
    if (this.mixins.has(name)) fail(`addMixin: a mixin named '${name}' already exists; remove it first or pick another name`);
    const hooks = mixin.hooks();
    const overrides = new Set(mixin.overrides());
    for (const h of Object.keys(hooks)) {
      if (!isHookName(h)) fail(`mixin '${name}': unknown hook '${h}'; hooks are ${HOOK_NAMES.join(', ')}`);
      if (HOOK_KINDS[h] !== 'plain' || overrides.has(h)) continue;
      for (const [other, o] of this.mixins) {
        if (!o.hooks[h]) continue;
        const clash = this.layerIndices(h).some((l) => o.mixin.appliesTo(h, l) && mixin.appliesTo(h, l));
        if (clash) {
          fail(`hook '${h}' is already served by mixin '${other}'; mixin '${name}' cannot also serve it ` +
            `(plain hook). Remove '${other}' first, or declare '${h}' in overrides() to wrap it.`);
        }
      }
    }
    mixin.name = name;
    this.mixins.set(name, { mixin, hooks });
    try {
      mixin.attach(this);
      if (opts.reinit) mixin.reinit(this);
    } catch (e) {
      this.mixins.delete(name);
      this.params.removeComponent(name);
      throw e;
    }
    this.resolved.clear();
    return mixin;
  }

  removeMixin(name: string): Mixin {
    const m = this.mixins.get(name);
    if (!m) fail(`removeMixin: no mixin named '${name}'; mixins are: ${[...this.mixins.keys()].join(', ') || '(none)'}`);
    m.mixin.detach(this);
    this.params.removeComponent(name);
    this.mixins.delete(name);
    this.resolved.clear();
    return m.mixin;
  }

  getMixin<M extends Mixin = Mixin>(name: string): M {
    const m = this.mixins.get(name);
    if (!m) fail(`getMixin: no mixin named '${name}'; mixins are: ${[...this.mixins.keys()].join(', ') || '(none)'}`);
    return m.mixin as M;
  }

  hasMixin(name: string): boolean {
    return this.mixins.has(name);
  }

  mixinNames(): string[] {
    return [...this.mixins.keys()];
  }

  // ------------------------------------------------------------------ hooks
  private layerIndices(hook: HookName): number[] {
    return GLOBAL_HOOKS.has(hook) ? [-1] : Array.from({ length: this.config.numLayers }, (_, i) => i);
  }

  private chain(hook: HookName, layer: number): Served[] {
    const out: Served[] = [];
    for (const [name, { mixin, hooks }] of this.mixins) {
      const impl = hooks[hook];
      if (impl && mixin.appliesTo(hook, layer)) out.push({ mixin: name, impl: impl as HookImpl<HookName>, owner: mixin });
    }
    return out;
  }

  resolveHook<H extends HookName>(hook: H, layer: number): HookFn<H> {
    const l = GLOBAL_HOOKS.has(hook) ? -1 : layer;
    const key = `${hook}@${l}`;
    let fn = this.resolved.get(key);
    if (!fn) {
      // Base implementations take (...args, ctx); each mixin's gets (...args, ctx, next).
      let next = ((...args: unknown[]) => (baseHooks[hook] as unknown as (...a: unknown[]) => unknown)(...args)) as unknown as HookFn<HookName>;
      for (const s of this.chain(hook, l)) {
        const inner = next;
        const impl = s.impl as unknown as (...a: unknown[]) => unknown;
        next = ((...args: unknown[]) => impl(...args, inner)) as unknown as HookFn<HookName>;
      }
      fn = next;
      this.resolved.set(key, fn);
    }
    return fn as unknown as HookFn<H>;
  }

  /** Per hook (and per layer), the chain of implementations serving it, outermost first. */
  hookOrigins(): HookOrigins {
    const origin = (h: HookName, l: number) => [...this.chain(h, l).map((s) => s.mixin).reverse(), 'base'];
    const global: HookOrigins['global'] = {};
    for (const h of HOOK_NAMES) if (GLOBAL_HOOKS.has(h)) global[h] = origin(h, -1);
    const layers: HookOrigins['layers'] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const hooks: Partial<Record<HookName, string[]>> = {};
      for (const h of HOOK_NAMES) if (!GLOBAL_HOOKS.has(h)) hooks[h] = origin(h, l);
      layers.push({ layer: l, hooks });
    }
    return { global, layers };
  }

  // ------------------------------------------------------------------ parameters
  param(name: string): tf.Variable {
    return this.params.get(name);
  }

  hasParam(name: string): boolean {
    return this.params.has(name);
  }

  /** Assigns tensors by our parameter names. strict: every parameter present, nothing extra, shapes equal. */
  loadStateDict(tensors: Map<string, tf.Tensor>, opts: { strict?: boolean } = {}): { loaded: string[]; missing: string[]; unexpected: string[] } {
    const strict = opts.strict ?? true;
    const missing = this.params.names().filter((n) => !tensors.has(n));
    const unexpected = [...tensors.keys()].filter((n) => !this.params.has(n));
    const mismatched: string[] = [];
    for (const [n, t] of tensors) {
      if (!this.params.has(n)) continue;
      const want = this.params.get(n).shape;
      if (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i])) {
        mismatched.push(`${n}: expected ${shapeStr(want)}, got ${shapeStr(t.shape)}`);
      }
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts = [];
      if (missing.length) parts.push(`missing: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected: ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`mis-shaped: ${mismatched.join('; ')}`);
      fail(`loadStateDict: ${parts.join(' | ')}`);
    }
    const loaded: string[] = [];
    for (const [n, t] of tensors) {
      if (!this.params.has(n)) continue;
      this.params.get(n).assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
      loaded.push(n);
    }
    return { loaded, missing, unexpected };
  }

  /** Current parameter values by name (the variables themselves; do not dispose). */
  stateDict(): Map<string, tf.Variable> {
    return new Map(this.params.list().map((p) => [p.name, p.variable]));
  }

  // ------------------------------------------------------------------ forward
  private toIds(ids: tf.Tensor | number[][]): tf.Tensor {
    const t = Array.isArray(ids) ? tf.tensor2d(ids, undefined, 'int32') : ids;
    if (t.rank !== 2) fail(`inputIds: expected shape [batch, seq], got ${shapeStr(t.shape)}`);
    if (t.dtype !== 'int32') fail(`inputIds: expected dtype int32, got ${t.dtype}`);
    if (t.size > 0) {
      const [lo, hi] = tf.tidy(() => [tf.min(t).dataSync()[0]!, tf.max(t).dataSync()[0]!]);
      if (lo! < 0 || hi! >= this.config.vocabSize) {
        fail(`inputIds: token ids must be in [0, ${this.config.vocabSize}), got values in [${lo}, ${hi}]`);
      }
    }
    return t;
  }

  /** Runs the model. Returns logits [B, T, V] (and hidden states when asked). */
  forward(inputs: ForwardInputs, opts: ForwardOptions = {}): ForwardOutput {
    return tf.tidy(() => {
      const ids = this.toIds(inputs.inputIds);
      const [b, t] = ids.shape as [number, number];
      const past = inputs.cache ? inputs.cache.length : 0;
      if (past + t > this.config.maxSeqLen && this.config.positionEmbedding === 'learned') {
        fail(`inputIds: sequence length ${past + t} (incl. ${past} cached) exceeds config.maxSeqLen ${this.config.maxSeqLen}`);
      }
      if (inputs.tokenTypes) {
        if (inputs.tokenTypes.rank !== 2 || inputs.tokenTypes.shape[0] !== b || inputs.tokenTypes.shape[1] !== t) {
          fail(`tokenTypes: expected shape [${b}, ${t}], got ${shapeStr(inputs.tokenTypes.shape)}`);
        }
      }
      const positionIds = inputs.positionIds ?? tf.tile(tf.expandDims(tf.range(past, past + t, 1, 'int32'), 0), [b, 1]);
      const spec: MaskSpec = { kind: inputs.mask?.kind ?? this.config.mask, ...inputs.mask, padding: inputs.attentionMask ?? null };
      const ctx = new ForwardContext(this, {
        inputIds: ids,
        positionIds,
        attention: buildMask(spec, b, t, past + t),
        tokenTypes: inputs.tokenTypes ?? null,
        media: inputs.media ?? {},
        cache: inputs.cache ?? null,
        training: !!opts.training,
        pastLength: past,
      });
      for (const { mixin } of this.mixins.values()) mixin.prepare?.(ctx);
      let h = ctx.run('wordEmbedding', ids);
      h = ctx.run('positionEmbedding', h);
      if (opts.outputHiddenStates) ctx.hiddenStates.push(h);
      for (let l = 0; l < this.config.numLayers; l++) {
        ctx.layer = l;
        h = ctx.run('layerForward', h);
        if (opts.outputHiddenStates) ctx.hiddenStates.push(h);
      }
      ctx.layer = -1;
      const logits = ctx.run('finalForward', h) as tf.Tensor3D;
      const out: ForwardOutput = { logits };
      if (opts.outputHiddenStates) {
        out.hiddenStates = ctx.hiddenStates;
        out.finalHidden = ctx.state.get('finalHidden') as tf.Tensor;
      }
      return out as unknown as tf.TensorContainer;
    }) as unknown as ForwardOutput;
  }

  /** Mean next-token loss of `labels` [B, T] (already aligned with logits; ignoreIndex = no loss). */
  loss(inputs: ForwardInputs, labels: tf.Tensor, opts: { ignoreIndex?: number; training?: boolean } = {}): tf.Scalar {
    return tf.tidy(() => {
      const { logits } = this.forward(inputs, { training: opts.training ?? true });
      return ops.crossEntropyLoss(logits, labels, opts.ignoreIndex ?? -100);
    });
  }

  dispose(): void {
    for (const name of [...this.mixins.keys()].reverse()) this.removeMixin(name);
    this.params.dispose();
  }
}

export type { HookArgs, HookResults };
