/**
 * Model = base transformer + mixins. It owns the parameters, resolves each hook per layer into a chain
 * of implementations, and runs the forward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { resolveConfig, type TransformerConfig, type TransformerConfigInput } from './config.js';
import { ForwardContext, type ContextHost } from './context.js';
import { fail, shapeStr } from './errors.js';
import { GLOBAL_HOOKS, HOOK_KINDS, HOOK_NAMES, isHookName, type HookArgs, type HookFn, type HookImpl, type HookImpls, type HookName, type HookResults } from './hooks.js';
import { checkTokenIds, flattenRows, HostContext, PreparedInputs, type HostBatch, type HostRows } from './host.js';
import type { KVCache } from './kv-cache.js';
import { buildMask, type MaskSpec } from './masks.js';
import { Mixin } from './mixin.js';
import { CheckpointPass, tapeActive, type LayerParamCache } from './checkpoint.js';
import { ParamStore } from './params.js';
import { collectTensors, StateMap } from './state.js';
import { checkStateDict, type ModelLoadOptions, type ModelLoadReport } from './load-checks.js';
import { baseFinalHidden, baseHooks, createBaseParams } from './transformer.js';
import * as ops from './ops/index.js';
import * as K from './ops/kernel-names.js';

export interface ForwardInputs {
  /** [B, T] int32 token ids: a tensor, or host rows (validated on the host, never read back). */
  inputIds: tf.Tensor | HostRows;
  /** [B, T] (or [3, B, T] for multimodal rotary); default: the positionIds hooks (pastLength + 0..T-1 in the base). */
  positionIds?: tf.Tensor;
  /** Padding mask [B, pastLength + T]: 1 = token, 0 = padding. */
  attentionMask?: tf.Tensor | HostRows | null;
  /** Mask kind (default config.mask), prefix length, or an arbitrary 0/1 mask. */
  mask?: Partial<MaskSpec>;
  /** [B, T] int32: 0 text, 1 vision (default: the tokenTypes hooks, e.g. a projector marks its placeholders). */
  tokenTypes?: tf.Tensor | HostRows | null;
  /** Extra inputs for mixins (images, media locations, ...). */
  media?: Record<string, unknown>;
  cache?: KVCache | null;
  /**
   * The host stage's output for these ids (`model.prepareInputs`, run once per batch when it is encoded).
   * With it the pass reads nothing back from the device; without it forward runs the host stage itself.
   */
  prepared?: PreparedInputs;
  /**
   * Seeds the dropout masks of a training pass (config.*Dropout). Default: a counter of the model's
   * training passes, so two runs from the same start draw the same masks; a trainer that must resume
   * exactly passes its own (e.g. a function of the step).
   */
  dropoutSeed?: number;
}

export interface ForwardOptions {
  training?: boolean;
  /** Also return the embeddings and each layer's output, and the final-normed hidden state. */
  outputHiddenStates?: boolean;
  /**
   * Logits for the last k positions only (HF's `logits_to_keep`): [B, min(k, T), V]. Generation needs just
   * the last one, where the head over a whole prompt is a [T, C] x [C, V] product and a [B, T, V] tensor.
   * 0 or unset: every position. The finalForward hooks see those positions of h only.
   */
  logitsToKeep?: number;
}

export interface ForwardOutput {
  logits: tf.Tensor3D;
  hiddenStates?: tf.Tensor[];
  finalHidden?: tf.Tensor;
}

/** What Model.loss asks of a pass: the loss of these labels instead of the logits. */
interface HeadLoss {
  labels: tf.Tensor;
  ignoreIndex: number;
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
  private hookTableRevision = 0;
  /** Training passes so far: the default dropout seed of the next one. */
  private trainingPasses = 0;

  constructor(config: TransformerConfigInput) {
    this.config = resolveConfig(config);
    this.params = new ParamStore(this.config.seed);
    createBaseParams(this.config, this.params);
  }

  private checkpointing = false;
  private readonly layerParams: LayerParamCache = new Map();

  /**
   * Gradient checkpointing (checkpoint.ts): training passes under a gradient tape keep only each layer's
   * input and recompute the layer in the backward pass. Gradients are the same; activation memory grows
   * with one layer instead of all. Off by default.
   */
  setGradientCheckpointing(on: boolean): void {
    this.checkpointing = on;
    this.layerParams.clear();
  }

  get gradientCheckpointing(): boolean {
    return this.checkpointing;
  }

  /**
   * The dropout seed of the next training pass that gives none (later passes count up from it). The
   * Trainer sets it per step and micro-batch, so dropout masks depend on the step, not on how many
   * passes this process ran: a resumed run draws the same masks.
   */
  setDropoutSeed(seed: number): void {
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 31) fail(`setDropoutSeed: expected an integer in [0, 2^31), got ${seed}`);
    this.trainingPasses = seed;
  }

  // ------------------------------------------------------------------ mixins
  addMixin<M extends Mixin>(name: string, mixin: M, opts: AddMixinOptions = {}): M {
    this.layerParams.clear();
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
      Mixin.bind(mixin, this);
      if (opts.reinit) mixin.reinit(this);
    } catch (e) {
      if (mixin.attached) Mixin.unbind(mixin);
      this.mixins.delete(name);
      this.params.removeComponent(name);
      throw e;
    }
    this.resolved.clear();
    this.hookTableRevision++;
    return mixin;
  }

  removeMixin(name: string): Mixin {
    this.layerParams.clear();
    const m = this.mixins.get(name);
    if (!m) fail(`removeMixin: no mixin named '${name}'; mixins are: ${[...this.mixins.keys()].join(', ') || '(none)'}`);
    m.mixin.detach(this);
    Mixin.unbind(m.mixin);
    this.params.removeComponent(name);
    this.mixins.delete(name);
    this.resolved.clear();
    this.hookTableRevision++;
    return m.mixin;
  }

  /**
   * Counts changes of the hook table (a mixin added or removed). A recording of a pass (capture.ts) made at
   * another revision runs other code: generate's recorded decoding steps are dropped when it changes.
   */
  get revision(): number {
    return this.hookTableRevision;
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

  hookServers(hook: HookName, layer: number): Mixin[] {
    // the last added wraps the others: outermost first
    return this.chain(hook, GLOBAL_HOOKS.has(hook) ? -1 : layer).map((s) => s.owner).reverse();
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

  /**
   * Assigns tensors by our parameter names after checking them all (load-checks.ts): strict = every
   * parameter present and nothing extra; shapes and dtypes equal, no disposed tensor, finite values
   * unless allowNonFinite. Nothing is assigned when a check fails. The caller keeps ownership of `tensors`.
   */
  loadStateDict(tensors: Map<string, tf.Tensor>, opts: ModelLoadOptions = {}): ModelLoadReport {
    const report = checkStateDict(this.params, tensors, opts);
    for (const n of report.loaded) this.params.get(n).assign(tensors.get(n)!);
    return report;
  }

  /** Current parameter values by name (the variables themselves; do not dispose). */
  stateDict(): Map<string, tf.Variable> {
    return new Map(this.params.list().map((p) => [p.name, p.variable]));
  }

  // ------------------------------------------------------------------ forward
  /** Shape and dtype of tensor ids; host rows are range-checked on the host and uploaded. A tensor's values are never read back here. */
  private toIds(ids: tf.Tensor | HostRows): tf.Tensor {
    if (!(ids instanceof tf.Tensor)) {
      const flat = flattenRows(ids, 'inputIds');
      checkTokenIds(flat, this.config.vocabSize);
      return tf.tensor2d(flat, [ids.length, ids[0]?.length ?? 0], 'int32');
    }
    if (ids.rank !== 2) fail(`inputIds: expected shape [batch, seq], got ${shapeStr(ids.shape)}`);
    if (ids.dtype !== 'int32') fail(`inputIds: expected dtype int32, got ${ids.dtype}`);
    return ids;
  }

  /**
   * The host stage, once per batch: runs the tokenTypes, positionIds and hostInputs hooks on the batch's
   * integer arrays and returns what a device-pure forward pass needs, as tensors. Data loaders call it
   * when they encode a batch (outside the gradient tape) and pass the result as `ForwardInputs.prepared`
   * with the same ids. Tensors given instead of arrays are read back once where a hook needs values
   * (`reads` counts them). The caller owns the result (dispose it, or let a tf.tidy around the call do it).
   */
  prepareInputs(batch: HostBatch): PreparedInputs {
    const host = new HostContext(this.config, batch, (h) => this.resolveHook('tokenTypes', -1)(h));
    const [b, t] = [host.batch, host.seqLen];
    const given = new Set<tf.Tensor>(collectTensors([batch.inputIds, batch.attentionMask, batch.tokenTypes, batch.positionIds, ...Object.values(batch.media ?? {})]));
    let positionIds!: tf.Tensor;
    let tokenTypes: tf.Tensor | null = null;
    let state = StateMap.empty;
    const owned = tf.tidy(() => {
      // Stage order: tokenTypes (when a mixin serves it; else the caller's, read only if a hook asks), positionIds, hostInputs.
      const typesServed = this.chain('tokenTypes', -1).length > 0;
      if (typesServed) void host.tokenTypes;
      positionIds = this.resolveHook('positionIds', -1)(host);
      const p = positionIds;
      const ok = p instanceof tf.Tensor && p.dtype === 'int32' &&
        ((p.rank === 2 && p.shape[0] === b && p.shape[1] === t) || (p.rank === 3 && p.shape[0] === 3 && p.shape[1] === b && p.shape[2] === t));
      if (!ok) fail(`positionIds: expected an int32 tensor [${b}, ${t}] or [3, ${b}, ${t}], got ${p instanceof tf.Tensor ? `${p.dtype} ${shapeStr(p.shape)}` : typeof p}`);
      state = this.resolveHook('hostInputs', -1)(StateMap.empty, host);
      const givenTensor = host.givenTokenTypesTensor;
      if (givenTensor && (givenTensor.rank !== 2 || givenTensor.shape[0] !== b || givenTensor.shape[1] !== t)) {
        fail(`tokenTypes: expected shape [${b}, ${t}], got ${shapeStr(givenTensor.shape)}`);
      }
      if (host.tokenTypesResolved || typesServed) {
        const tt = host.tokenTypes;
        if (givenTensor && tt === host.givenTokenTypes) tokenTypes = givenTensor; // unchanged: keep the caller's tensor
        else tokenTypes = tt ? tf.tensor2d(tt, [b, t], 'int32') : null;
      } else if (givenTensor) tokenTypes = givenTensor;
      else if (batch.tokenTypes) tokenTypes = tf.tensor2d(host.givenTokenTypes!, [b, t], 'int32');
      const mine = new Set([positionIds, tokenTypes, ...state.tensors()].filter((x): x is tf.Tensor => x != null && !given.has(x)));
      return [...mine];
    });
    return new PreparedInputs(b, t, host.pastLength, positionIds, tokenTypes, state, host.reads, owned);
  }

  /**
   * Runs only the media stage (the encodeMedia hooks) for `batch` rows, outside a forward pass: e.g. type D
   * turns images into codes while a batch is encoded. Returns the encoded media by key (new tensors, the
   * caller's to dispose).
   */
  encodeMedia(media: Record<string, unknown>, batch: number): StateMap {
    if (!Number.isInteger(batch) || batch < 1) fail(`encodeMedia: batch must be a positive integer, got ${JSON.stringify(batch)}`);
    const given = new Set(collectTensors([...Object.values(media)]));
    let out = StateMap.empty;
    tf.tidy(() => {
      const ctx = new ForwardContext(this, {
        inputIds: tf.zeros([batch, 0], 'int32'), positionIds: tf.zeros([batch, 0], 'int32'), attention: { causal: false, bias: null },
        tokenTypes: null, media, cache: null, training: false, pastLength: 0,
      });
      out = ctx.run('encodeMedia', StateMap.empty);
      return out.tensors().filter((x) => !given.has(x));
    });
    return out;
  }

  /**
   * Starts a pass: checks the inputs, runs the host stage (unless `prepared` is given) and the media stage
   * (encodeMedia), and returns the pass's context, outside the layers. `forward` continues from here; tests
   * use it to call one hook directly (`host` swaps the parameter source, e.g. for gradient checks). Call it
   * inside a tf.tidy: the context's tensors belong to the pass.
   */
  passContext(inputs: ForwardInputs, opts: { training?: boolean; host?: ContextHost } = {}): ForwardContext {
    const ids = this.toIds(inputs.inputIds);
    const [b, t] = ids.shape as [number, number];
    const past = inputs.cache ? inputs.cache.length : 0;
    if (past + t > this.config.maxSeqLen && this.config.positionEmbedding === 'learned') {
      fail(`inputIds: sequence length ${past + t} (incl. ${past} cached) exceeds config.maxSeqLen ${this.config.maxSeqLen}`);
    }
    const prepared = inputs.prepared ?? this.prepareInputs(inputs);
    if (inputs.prepared) {
      const p = inputs.prepared;
      if (p.batch !== b || p.seqLen !== t || p.pastLength !== past) {
        fail(`prepared: made for batch ${p.batch}, seq ${p.seqLen}, pastLength ${p.pastLength}; this pass has batch ${b}, seq ${t}, pastLength ${past} (prepare the inputs of each pass)`);
      }
      for (const k of ['positionIds', 'tokenTypes'] as const) {
        if (inputs[k] != null && inputs[k] !== p[k]) fail(`${k}: given together with prepared inputs; pass it to model.prepareInputs instead`);
      }
    }
    // a static cache's keys are its `capacity` slots: masks given over the past + t positions are widened to them
    const cap = inputs.cache?.capacity ?? null;
    if (cap !== null && past + t > cap) fail(`inputIds: ${t} positions after ${past} cached exceed the KV cache's capacity ${cap}`);
    const tk = cap ?? past + t;
    const mask = inputs.attentionMask;
    let padding: tf.Tensor | null;
    if (mask == null || mask instanceof tf.Tensor) padding = mask ?? null;
    else {
      const w = cap !== null && mask[0]?.length === cap ? cap : past + t;
      padding = tf.tensor2d(flattenRows(mask, 'attentionMask', b, w), [b, w], 'int32');
    }
    let custom = inputs.mask?.custom ?? null;
    if (cap !== null && past + t < cap) {
      if (padding?.rank === 2 && padding.shape[1] === past + t) padding = widenKeys(padding, cap, 1);
      if (custom && custom.shape[custom.rank - 1] === past + t) custom = widenKeys(custom, cap, 0);
    }
    const spec: MaskSpec = { kind: inputs.mask?.kind ?? this.config.mask, ...inputs.mask, padding, custom };
    const ctx = new ForwardContext(opts.host ?? this, {
      inputIds: ids,
      positionIds: prepared.positionIds,
      attention: buildMask(spec, b, t, tk, cap !== null ? inputs.cache!.positionTensor() : null),
      tokenTypes: prepared.tokenTypes,
      media: inputs.media ?? {},
      cache: inputs.cache ?? null,
      training: !!opts.training,
      dropoutSeed: opts.training ? (inputs.dropoutSeed ?? this.trainingPasses++) : 0,
      pastLength: past,
      state: prepared.state,
    });
    ForwardContext.setState(ctx, ctx.run('encodeMedia', prepared.state));
    return ctx;
  }

  /** Runs the model. Returns logits [B, T, V] (and hidden states when asked). */
  forward(inputs: ForwardInputs, opts: ForwardOptions = {}): ForwardOutput {
    return this.run(inputs, opts, null) as ForwardOutput;
  }

  /** forward, or with `head` the loss of those labels (fused with the head where the base serves finalForward). */
  private run(inputs: ForwardInputs, opts: ForwardOptions, head: HeadLoss | null): ForwardOutput | { loss: tf.Scalar } {
    const k = opts.logitsToKeep;
    if (k != null && !(Number.isInteger(k) && k >= 0)) fail(`logitsToKeep: expected an integer >= 0 (0 = every position), got ${JSON.stringify(k)}`);
    const checkpoint = this.checkpointing && !!opts.training && tapeActive();
    const firstId = checkpoint ? tf.tidy(() => tf.scalar(0).id) : 0; // tensors of this pass have ids from here
    let passState: ForwardContext['state'] | null = null;
    try {
      return this.forwardPass(inputs, opts, checkpoint, firstId, (s) => (passState = s), head);
    } finally {
      (passState as ForwardContext['state'] | null)?.releaseMemos();
    }
  }

  private forwardPass(inputs: ForwardInputs, opts: ForwardOptions, checkpoint: boolean, firstId: number,
    onState: (s: ForwardContext['state']) => void, head: HeadLoss | null): ForwardOutput | { loss: tf.Scalar } {
    return tf.tidy(() => {
      const ctx = this.passContext(inputs, { training: opts.training });
      onState(ctx.state);
      if (!checkpoint) ctx.state.keepMemos(); // memos outlive the per-layer tidy that computes them
      let h = ctx.run('wordEmbedding', ctx.inputIds);
      h = ctx.run('positionEmbedding', h);
      if (opts.outputHiddenStates) ctx.outputs.hiddenStates.push(h);
      const pass = checkpoint ? new CheckpointPass(ctx, this.layerParams, (n) => this.param(n)) : null;
      pass?.keepPassTensors(firstId);
      for (let l = 0; l < this.config.numLayers; l++) {
        ForwardContext.enterLayer(ctx, l);
        // one tidy per layer: its transients go when it ends (the tape keeps what backward needs), so the
        // peak is one layer's temporaries, not the whole pass's
        const x = h;
        h = pass ? pass.layer(l, h, (y) => ctx.run('layerForward', y)) : tf.tidy(() => ctx.run('layerForward', x));
        if (opts.outputHiddenStates) ctx.outputs.hiddenStates.push(h);
        // an earlier layer's output (made in that layer's tidy, so nobody else's) goes once the next layer has read it
        else if (!pass && l > 0 && h !== x) x.dispose();
      }
      pass?.finish();
      ForwardContext.enterLayer(ctx, -1);
      const t = h.shape[1]!;
      const keep = Math.min(opts.logitsToKeep ?? 0, t);
      if (keep > 0 && keep < t) h = tf.slice(h, [0, t - keep, 0], [-1, keep, -1]);
      if (head && ctx.servedByBase('finalForward')) {
        // no mixin between: the base's head and the loss in one kernel, without the [B, T, V] logits
        const { hidden, head: w } = baseFinalHidden(h, ctx);
        return { loss: ops.linearCrossEntropy(hidden, w, head.labels, head.ignoreIndex) } as unknown as tf.TensorContainer;
      }
      const logits = ctx.run('finalForward', h) as tf.Tensor3D;
      const out: ForwardOutput = { logits };
      if (opts.outputHiddenStates) {
        out.hiddenStates = ctx.outputs.hiddenStates;
        out.finalHidden = ctx.outputs.finalHidden ?? undefined;
      }
      return out as unknown as tf.TensorContainer;
    }) as unknown as ForwardOutput;
  }

  /**
   * Mean next-token loss of `labels` [B, T] (already aligned with logits; ignoreIndex = no loss).
   * `sparseLabels`: most labels are ignoreIndex (answers-only supervision, as a VLM's batches). Then, where no
   * mixin serves finalForward and the backend runs VlmixLinearCrossEntropy natively (vlmix-cpu), the head and
   * the loss run as one kernel (ops.linearCrossEntropy) that computes the kept positions only, without the
   * [B, T, V] logits. It recomputes them in the backward pass, so with dense labels it would be slower (a small
   * LM's step: 2-5%, measured); the labels are not read to find out, which would sync with the host.
   */
  loss(inputs: ForwardInputs, labels: tf.Tensor, opts: { ignoreIndex?: number; training?: boolean; sparseLabels?: boolean } = {}): tf.Scalar {
    const ignoreIndex = opts.ignoreIndex ?? -100;
    const head = opts.sparseLabels && ops.nativeFusedKernels().includes(K.LinearCrossEntropy) ? { labels, ignoreIndex } : null;
    return tf.tidy(() => {
      const out = this.run(inputs, { training: opts.training ?? true }, head);
      return 'loss' in out ? out.loss : ops.crossEntropyLoss(out.logits, labels, ignoreIndex);
    });
  }

  dispose(): void {
    for (const name of [...this.mixins.keys()].reverse()) this.removeMixin(name);
    this.params.dispose();
  }
}

/** x [..., w] extended to [..., width] with `fill`: a mask over past + t keys made one over a static cache's slots. */
function widenKeys(x: tf.Tensor, width: number, fill: number): tf.Tensor {
  const shape = x.shape.slice();
  shape[shape.length - 1] = width - x.shape[x.rank - 1]!;
  return tf.concat([x, tf.fill(shape, fill, x.dtype)], x.rank - 1);
}

export type { HookArgs, HookResults };
