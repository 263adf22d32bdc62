/**
 * Vision-to-language projectors and the placeholder scatter shared by connectors.
 *
 * - LLaVA `linear` (`mm_projector`) and `mlp{N}x_gelu` (`mm_projector.0`, `mm_projector.2`, ...).
 * - MiniGPT-v2: concatenate every 4 adjacent visual tokens, then `llama_proj` (Linear to LM width).
 * - CogVLM `GLU` adapter (`linear_proj`): Linear -> LayerNorm -> GELU -> silu(gate_proj) * dense_h_to_4h -> dense_4h_to_h.
 *
 * A connector (`ImageTokenMixin`: `ProjectorMixin`, `QFormerConnectorMixin`) serves four hooks:
 *   tokenTypes  (host)  1 at the placeholder positions (ids == imageTokenId) when no one else set types
 *   hostInputs  (host)  per row, where its image tokens go: a row gather, uploaded once per batch
 *   encodeMedia         VISION_FEATURES -> image tokens [B, N, C_lm] (this.imageTokens)
 *   wordEmbedding       embeds the ids (next), then writes the image tokens at the placeholders, in order
 */
import * as tf from '@tensorflow/tfjs';
import {
  checkPositiveInt,
  fail,
  Mixin,
  names,
  ones,
  ops,
  ParamScope,
  shapeStr,
  stateKey,
  zeros,
  type HookImpls,
  type HostContext,
  type Init,
  type LoadStateDictResult,
  type Model,
  type ParamOverrides,
  type ParamStore,
  type SafetensorsFile,
  type StateKey,
} from '@vlmix/core';
import { VISION_FEATURES } from '../common.js';
import { asSafetensors, loadMixinMapped, type TensorSourceLike } from '../weights.js';

// ------------------------------------------------------------------------------------------ scatter

/** Number of positions equal to `imageTokenId` in each row of host ids [B * T] (row-major). */
export function countPlaceholdersHost(ids: ArrayLike<number>, b: number, t: number, imageTokenId: number): number[] {
  const out = new Array<number>(b).fill(0);
  for (let r = 0; r < b; r++) for (let i = 0; i < t; i++) if (ids[r * t + i] === imageTokenId) out[r]!++;
  return out;
}

/** Number of positions equal to `imageTokenId` in each row of ids [B, T] (reads the tensor: a host utility). */
export function countPlaceholders(inputIds: tf.Tensor, imageTokenId: number): number[] {
  const [b, t] = inputIds.shape as [number, number];
  return countPlaceholdersHost(inputIds.dataSync(), b, t, imageTokenId);
}

/** Where a batch's image tokens go, computed on the host from the ids (once per batch). */
export interface PlaceholderPlan {
  batch: number;
  seqLen: number;
  /** Placeholders per row. */
  counts: number[];
  total: number;
  /** When total > 0: output row p = row src[p] of [embeds; tokens] (both flattened to rows). */
  gather: ops.RowGather | null;
}

/**
 * The scatter plan for host ids [B * T]: the k-th placeholder of row r takes image token
 * (counts[0] + ... + counts[r-1] + k) of the batch's tokens taken in order, every other position keeps its
 * embedding. With equal counts n that is token (r, k) of [B, n, C]; with different counts (images of
 * different sizes: any-resolution tiles, Fuyu, InternVL) the tokens are packed [1, total, C] (HF masked_scatter).
 * Each source row is picked at most once, so ops.gatherRows applies.
 */
export function placeholderPlan(ids: ArrayLike<number>, b: number, t: number, imageTokenId: number): PlaceholderPlan {
  const counts = countPlaceholdersHost(ids, b, t, imageTokenId);
  const total = counts.reduce((a, v) => a + v, 0);
  if (total === 0) return { batch: b, seqLen: t, counts, total, gather: null };
  const src = new Int32Array(b * t);
  let k = b * t;
  for (let i = 0; i < b * t; i++) src[i] = ids[i] === imageTokenId ? k++ : i;
  return { batch: b, seqLen: t, counts, total, gather: ops.rowGather(src, b * t + total) };
}

/**
 * Writes `tokens` into `embeds` [B, T, C] following a plan made from the ids (no device read). `tokens` is
 * [B, N, C] when every row holds N placeholders; otherwise packed: [X, Y, C] with X != B (e.g. [1, total, C],
 * or one entry per InternVL tile) whose X * Y rows, in order, fill the batch's placeholders row by row.
 */
export function scatterWithPlan(embeds: tf.Tensor, tokens: tf.Tensor, plan: PlaceholderPlan, imageTokenId: number, who = 'scatterImageTokens'): tf.Tensor {
  if (embeds.rank !== 3) fail(`${who}: embeds: expected shape [B, T, C], got ${shapeStr(embeds.shape)}`);
  const [b, t, c] = embeds.shape as [number, number, number];
  checkScatter(b, t, c, tokens, plan, imageTokenId, who);
  return tf.tidy(() => {
    if (plan.total === 0) return tf.clone(embeds);
    const both = tf.concat([tf.reshape(embeds, [b * t, c]), tf.reshape(tokens, [plan.total, c])], 0);
    return tf.reshape(ops.gatherRows(both, plan.gather!), [b, t, c]);
  });
}

/**
 * scatterWithPlan of the token embeddings of `ids` [B, T] (`table` [V, C]) in one kernel (ops.embeddingScatter): the
 * embedding's gather and the scatter, with the same bits as tf.gather then scatterWithPlan.
 */
export function embedWithPlan(table: tf.Tensor, ids: tf.Tensor, tokens: tf.Tensor, plan: PlaceholderPlan, imageTokenId: number, who = 'embedImageTokens'): tf.Tensor {
  if (ids.rank !== 2) fail(`${who}: ids: expected shape [B, T], got ${shapeStr(ids.shape)}`);
  const [b, t] = ids.shape as [number, number];
  checkScatter(b, t, table.shape[1]!, tokens, plan, imageTokenId, who);
  if (plan.total === 0) return tf.gather(table, ids);
  return ops.embeddingScatter(table, ids, tokens, plan.gather!);
}

/** scatterWithPlan's checks: the plan's batch and length, and image tokens matching its placeholders. */
function checkScatter(b: number, t: number, c: number, tokens: tf.Tensor, plan: PlaceholderPlan, imageTokenId: number, who: string): void {
  if (plan.batch !== b || plan.seqLen !== t) fail(`${who}: inputIds: expected shape [${b}, ${t}], got [${plan.batch}, ${plan.seqLen}]`);
  if (tokens.rank !== 3 || tokens.shape[2] !== c) {
    fail(`${who}: image tokens: expected shape [${b}, N, ${c}] (batch and width of the text embeddings) or packed [X, Y, ${c}], got ${shapeStr(tokens.shape)}`);
  }
  const [x, n] = tokens.shape as [number, number];
  if (x !== b) {
    if (x * n !== plan.total) {
      fail(`${who}: inputIds hold ${plan.total} image placeholder token(s) (id ${imageTokenId}; per row ${plan.counts.join(', ')}) but ${x * n} image tokens were projected (${shapeStr(tokens.shape)}, packed)`);
    }
  } else {
    plan.counts.forEach((k, r) => {
      if (k !== n) {
        fail(`${who}: row ${r} of inputIds has ${k} image placeholder token(s) (id ${imageTokenId}) but ${n} image tokens were projected; ` +
          `each row needs exactly ${n} placeholders (see expandImagePlaceholders)`);
      }
    });
  }
}

/**
 * Writes `tokens` [B, N, C] into `embeds` [B, T, C] at the positions where `inputIds` [B, T] == imageTokenId,
 * in order, row by row (row b's k-th placeholder gets tokens[b, k]). Every row must hold exactly N
 * placeholders, or tokens are packed (see scatterWithPlan). Differentiable w.r.t. embeds (text positions) and tokens (image positions). A host utility:
 * tensor ids are read back (connectors plan the scatter from host ids instead, see placeholderPlan).
 */
export function scatterImageTokens(embeds: tf.Tensor, inputIds: tf.Tensor | ArrayLike<number>[], tokens: tf.Tensor, imageTokenId: number, who = 'scatterImageTokens'): tf.Tensor {
  if (embeds.rank !== 3) fail(`${who}: embeds: expected shape [B, T, C], got ${shapeStr(embeds.shape)}`);
  const [b, t] = embeds.shape as [number, number];
  const shape = inputIds instanceof tf.Tensor ? inputIds.shape : [inputIds.length, inputIds[0]?.length ?? 0];
  if (shape.length !== 2 || shape[0] !== b || shape[1] !== t || (!(inputIds instanceof tf.Tensor) && inputIds.some((r) => r.length !== t))) {
    fail(`${who}: inputIds: expected shape [${b}, ${t}], got ${shapeStr(shape)}`);
  }
  const ids = inputIds instanceof tf.Tensor ? inputIds.dataSync() : Int32Array.from((inputIds as ArrayLike<number>[]).flatMap((r) => Array.from(r)));
  return tf.tidy(() => scatterWithPlan(embeds, tokens, placeholderPlan(ids, b, t, imageTokenId), imageTokenId, who));
}

/** Replaces every single `imageTokenId` in each row by `numTokens` copies (plain arrays). */
export function expandImagePlaceholders(inputIds: number[][], imageTokenId: number, numTokens: number): number[][] {
  checkPositiveInt('numTokens', numTokens);
  return inputIds.map((row) => row.flatMap((id) => (id === imageTokenId ? new Array<number>(numTokens).fill(imageTokenId) : [id])));
}

export interface ImageTokenOptions {
  /** Token id of the image placeholder in inputIds (must be < vocabSize). */
  imageTokenId: number;
  /** Name of the state key of the vision features (default 'vision.features'). */
  featuresKey?: string;
  /** Mark the placeholders as vision tokens (tokenTypes = 1) when no one else set token types (default true). */
  setTokenTypes?: boolean;
}

/**
 * Base of connectors that turn VISION_FEATURES into image tokens and place them at the placeholder
 * positions (see the file comment for the hooks it serves). Subclasses implement `imageTokens`.
 */
export abstract class ImageTokenMixin extends Mixin {
  readonly imageTokenId: number;
  readonly featuresKey: StateKey<tf.Tensor3D>;
  readonly setTokenTypes: boolean;

  constructor(opts: ImageTokenOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || typeof opts !== 'object') fail(`connector options: expected an object, got ${JSON.stringify(opts)}`);
    if (!Number.isInteger(opts.imageTokenId) || opts.imageTokenId < 0) {
      fail(`imageTokenId: expected a non-negative integer token id, got ${JSON.stringify(opts.imageTokenId)}`);
    }
    this.imageTokenId = opts.imageTokenId;
    this.featuresKey = opts.featuresKey == null ? VISION_FEATURES : stateKey(opts.featuresKey);
    this.setTokenTypes = opts.setTokenTypes ?? true;
  }

  /** Image tokens [B, N, C_lm] for vision features [B, Nv, Cv]. */
  abstract imageTokens(features: tf.Tensor, params?: ParamOverrides): tf.Tensor;

  /** State keys of this connector's placeholder plan (host) and image tokens (media stage). */
  get planKey(): StateKey<PlaceholderPlan> {
    return stateKey(`${this.name}.placeholders`);
  }

  get tokensKey(): StateKey<tf.Tensor3D> {
    return stateKey(`${this.name}.imageTokens`);
  }

  protected checkTokenId(model: Model): void {
    if (this.imageTokenId >= model.config.vocabSize) {
      fail(`imageTokenId: expected an id < vocabSize ${model.config.vocabSize}, got ${this.imageTokenId}`);
    }
  }

  private placeholders(host: HostContext): number {
    return countPlaceholdersHost(host.inputIds, host.batch, host.seqLen, this.imageTokenId).reduce((a, v) => a + v, 0);
  }

  hooks(): HookImpls {
    return {
      tokenTypes: (host, next) => {
        const given = next(host);
        if (given || !this.setTokenTypes || this.placeholders(host) === 0) return given;
        return Int32Array.from(host.inputIds, (id) => (id === this.imageTokenId ? 1 : 0));
      },
      hostInputs: (inputs, host, next) =>
        next(inputs, host).with(this.planKey, placeholderPlan(host.inputIds, host.batch, host.seqLen, this.imageTokenId), this.name),
      encodeMedia: (features, ctx, next) => {
        const out = next(features, ctx);
        const feats = out.get(this.featuresKey);
        const plan = out.require(this.planKey, this.name);
        if (feats == null || (plan.total === 0 && ctx.pastLength > 0)) return out; // no image, or a decode step after the prompt
        return out.with(this.tokensKey, this.imageTokens(feats) as tf.Tensor3D, this.name);
      },
      wordEmbedding: (ids, ctx, next) => {
        const plan = ctx.state.require(this.planKey, this.name);
        const tokens = ctx.state.get(this.tokensKey);
        // right above the base's embedding (its next): the gather and the scatter in one kernel
        if (tokens != null && plan.total > 0 && ctx.innermostServer('wordEmbedding') === this) {
          return embedWithPlan(ctx.param(names.wordEmbeddings), ids, tokens, plan, this.imageTokenId, this.name || 'connector');
        }
        const emb = next(ids, ctx);
        if (tokens == null) {
          if (plan.total > 0) {
            fail(`${this.name}: inputIds contain ${plan.total} image placeholder token(s) (id ${this.imageTokenId}) but state '${this.featuresKey.name}' ` +
              `is not set; pass media.pixels and add a vision encoder mixin`);
          }
          return emb;
        }
        return scatterWithPlan(emb, tokens, plan, this.imageTokenId, this.name || 'connector');
      },
    };
  }
}

// ------------------------------------------------------------------------------------------ projectors

export type ProjectorKind = 'linear' | 'mlp' | 'minigpt_v2' | 'cogvlm_glu';

export interface ProjectorConfig {
  /** 'linear' | 'mlp' (LLaVA), 'minigpt_v2', 'cogvlm_glu'; LLaVA strings like 'mlp2x_gelu' are accepted. */
  kind: ProjectorKind | `mlp${number}x_gelu`;
  /** Vision feature width Cv. */
  inputSize: number;
  /** LM width (default: the host model's hiddenSize). */
  outputSize?: number;
  /** Linear layers of 'mlp' (default 2: mlp2x_gelu). */
  mlpDepth?: number;
  /** Adjacent tokens concatenated by 'minigpt_v2' (default 4). */
  mergeTokens?: number;
  /** 'cogvlm_glu' inner width (default: the host model's intermediateSize). */
  intermediateSize?: number;
  /** 'cogvlm_glu' LayerNorm eps (default 1e-5). */
  layerNormEps?: number;
}

interface ResolvedProjector {
  kind: ProjectorKind;
  inputSize: number;
  outputSize: number;
  mlpDepth: number;
  mergeTokens: number;
  intermediateSize: number;
  layerNormEps: number;
}

function resolveProjector(c: ProjectorConfig, lm: { hiddenSize: number; intermediateSize: number }): ResolvedProjector {
  if (c == null || typeof c !== 'object') fail(`projector config: expected an object, got ${JSON.stringify(c)}`);
  let kind = c.kind as string;
  let mlpDepth = c.mlpDepth ?? 2;
  const m = /^mlp(\d+)x_gelu$/.exec(kind);
  if (m) {
    kind = 'mlp';
    mlpDepth = Number(m[1]);
  }
  if (!['linear', 'mlp', 'minigpt_v2', 'cogvlm_glu'].includes(kind)) {
    fail(`projector.kind: expected 'linear', 'mlp', 'mlp<N>x_gelu', 'minigpt_v2' or 'cogvlm_glu', got ${JSON.stringify(c.kind)}`);
  }
  const out: ResolvedProjector = {
    kind: kind as ProjectorKind,
    inputSize: c.inputSize,
    outputSize: c.outputSize ?? lm.hiddenSize,
    mlpDepth,
    mergeTokens: c.mergeTokens ?? 4,
    intermediateSize: c.intermediateSize ?? lm.intermediateSize,
    layerNormEps: c.layerNormEps ?? 1e-5,
  };
  for (const k of ['inputSize', 'outputSize', 'mlpDepth', 'mergeTokens', 'intermediateSize'] as const) checkPositiveInt(`projector.${k}`, out[k]);
  if (!(out.layerNormEps > 0)) fail(`projector.layerNormEps: expected > 0, got ${out.layerNormEps}`);
  return out;
}

/** A projector module whose parameters live in a ParamStore under `prefix` (reference names, see docs). */
export class VisualProjector {
  readonly config: ResolvedProjector;
  readonly scope: ParamScope;

  constructor(params: ParamStore, prefix: string, config: ProjectorConfig, lm: { hiddenSize: number; intermediateSize: number }, opts: { component?: string } = {}) {
    this.config = resolveProjector(config, lm);
    this.scope = new ParamScope(params, prefix, opts.component ?? prefix.replace(/\.$/, ''));
    const c = this.config;
    const lin = (n: string, out: number, inF: number, bias = true) => {
      this.scope.create(`${n}.weight`, [out, inF], { kind: 'kaimingUniform', fanIn: inF });
      if (bias) this.scope.create(`${n}.bias`, [out], zeros as Init);
    };
    switch (c.kind) {
      case 'linear':
        lin('mm_projector', c.outputSize, c.inputSize);
        break;
      case 'mlp':
        for (let i = 0; i < c.mlpDepth; i++) lin(`mm_projector.${2 * i}`, c.outputSize, i === 0 ? c.inputSize : c.outputSize);
        break;
      case 'minigpt_v2':
        lin('llama_proj', c.outputSize, c.inputSize * c.mergeTokens);
        break;
      case 'cogvlm_glu':
        lin('linear_proj.linear_proj', c.outputSize, c.inputSize, false);
        this.scope.create('linear_proj.norm1.weight', [c.outputSize], ones);
        this.scope.create('linear_proj.norm1.bias', [c.outputSize], zeros);
        lin('linear_proj.dense_h_to_4h', c.intermediateSize, c.outputSize, false);
        lin('linear_proj.gate_proj', c.intermediateSize, c.outputSize, false);
        lin('linear_proj.dense_4h_to_h', c.outputSize, c.intermediateSize, false);
        break;
    }
  }

  /** Image tokens per image for `n` vision tokens. */
  numTokens(n: number): number {
    return this.config.kind === 'minigpt_v2' ? n / this.config.mergeTokens : n;
  }

  /** features [B, N, Cv] -> [B, N', C_lm] (N' = N, or N / 4 for minigpt_v2). */
  project(features: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    const c = this.config;
    if (features.rank !== 3 || features.shape[2] !== c.inputSize) {
      fail(`features: expected shape [B, N, ${c.inputSize}] (projector.inputSize), got ${shapeStr(features.shape)}`);
    }
    const [b, n] = features.shape as [number, number];
    if (c.kind === 'minigpt_v2' && n % c.mergeTokens !== 0) {
      fail(`features: minigpt_v2 concatenates ${c.mergeTokens} adjacent tokens, so the token count must be a multiple of ${c.mergeTokens}, got ${n}`);
    }
    const p = this.scope.getter(params);
    const lin = (name: string, x: tf.Tensor, act?: 'gelu') => ops.linear(x, p(`${name}.weight`), this.scope.has(`${name}.bias`) ? p(`${name}.bias`) : null, act);
    return tf.tidy(() => {
      switch (c.kind) {
        case 'linear':
          return lin('mm_projector', features);
        case 'mlp': {
          // LLaVA's mlp<N>x_gelu: a GELU after every linear but the last, fused with it
          let x = features;
          for (let i = 0; i < c.mlpDepth; i++) x = lin(`mm_projector.${2 * i}`, x, i < c.mlpDepth - 1 ? 'gelu' : undefined);
          return x;
        }
        case 'minigpt_v2':
          return lin('llama_proj', tf.reshape(features, [b, n / c.mergeTokens, c.inputSize * c.mergeTokens]));
        case 'cogvlm_glu': {
          let x = lin('linear_proj.linear_proj', features);
          x = ops.gelu(ops.layerNorm(x, p('linear_proj.norm1.weight'), p('linear_proj.norm1.bias'), c.layerNormEps), 'none');
          x = ops.swiglu(lin('linear_proj.gate_proj', x), lin('linear_proj.dense_h_to_4h', x));
          return lin('linear_proj.dense_4h_to_h', x);
        }
      }
    });
  }
}

export interface ProjectorOptions extends ImageTokenOptions {
  projector: ProjectorConfig;
}

/**
 * Projects `ctx.state['vision.features']` and writes the result at the image placeholder positions
 * (wordEmbedding chain hook). Parameters: `<name>.mm_projector.*`, `<name>.llama_proj.*` or `<name>.linear_proj.*`.
 */
export class ProjectorMixin extends ImageTokenMixin {
  readonly options: ProjectorOptions;
  private readonly proj = this.submodule('projector', (m) => {
    const p = new VisualProjector(m.params, `${this.name}.`, this.options.projector, m.config, { component: this.name });
    if (p.config.outputSize !== m.config.hiddenSize) {
      fail(`projector.outputSize: expected the model's hiddenSize ${m.config.hiddenSize}, got ${p.config.outputSize}`);
    }
    return p;
  });

  constructor(opts: ProjectorOptions) {
    super(opts);
    this.recordOptions(opts);
    if (opts.projector == null) fail(`ProjectorMixin: expected options { projector: ProjectorConfig, imageTokenId }, got no projector`);
    resolveProjector(opts.projector, { hiddenSize: 1, intermediateSize: 1 }); // early config errors
    this.options = opts;
  }

  get projector(): VisualProjector {
    return this.proj.get();
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
  }

  imageTokens(features: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    return this.projector.project(features, params);
  }
}

// ------------------------------------------------------------------------------------------ loading

export interface LoadPrefixedOptions {
  /** Prefix stripped from file names before prepending `<mixinName>.`. */
  prefix?: string;
  /** Every mixin parameter must be present (default true). */
  strict?: boolean;
}

/**
 * Loads the tensors of `file` named `<prefix><local>` into the parameters `<mixinName>.<local>` of the mixin;
 * every other tensor is skipped. Shared by the connector loaders.
 */
export function loadMixinPrefixed(model: Model, mixinName: string, file: SafetensorsFile, prefix: string, strict = true, exclude?: (local: string) => boolean): LoadStateDictResult {
  const mine = `${mixinName}.`;
  return loadMixinMapped(model, mixinName, file, prefix, strict, (local) => (exclude?.(local) || !model.hasParam(mine + local) ? null : local));
}

/** Default file prefix per projector kind: LLaVA 'model.', MiniGPT-v2 '', CogVLM 'model.vision.'. */
export function defaultProjectorPrefix(kind: ProjectorKind): string {
  return kind === 'minigpt_v2' ? '' : kind === 'cogvlm_glu' ? 'model.vision.' : 'model.';
}

/**
 * LLaVA projector names -> the mixin's local names (`mm_projector.*`), or null for a tensor that is not
 * the projector's. Accepted, each with or without a leading `model.`: `mm_projector.*` (LLaVA),
 * `multi_modal_projector.linear_{1,2}.*` (HF LlavaForConditionalGeneration; linear_k is Sequential index
 * 2(k-1)), and the projector module's own state_dict: `0.*`, `2.*` (mlp) or `weight`/`bias` (linear).
 */
export function llavaProjectorLocal(name: string, kind: 'linear' | 'mlp'): string | null {
  let n = name.startsWith('model.') ? name.slice('model.'.length) : name;
  if (n.startsWith('mm_projector.')) n = n.slice('mm_projector.'.length);
  else if (n.startsWith('multi_modal_projector.')) n = n.slice('multi_modal_projector.'.length);
  else if (name !== n) return null; // model.<something else>
  const hf = /^linear_(\d+)\.(weight|bias)$/.exec(n);
  if (hf && kind === 'mlp') return `mm_projector.${2 * (Number(hf[1]) - 1)}.${hf[2]}`;
  if (kind === 'mlp' && /^\d+\.(weight|bias)$/.test(n)) return `mm_projector.${n}`;
  if (kind === 'linear' && /^(weight|bias)$/.test(n)) return `mm_projector.${n}`;
  return null;
}

/**
 * Loads reference projector weights. LLaVA (`linear`, `mlp<N>x_gelu`): `model.mm_projector.*`,
 * `mm_projector.*`, the module's bare `0.*`/`2.*` (or `weight`/`bias`), or HF's
 * `multi_modal_projector.linear_1/linear_2` (see llavaProjectorLocal), detected from the names unless
 * `prefix` is given (stripped first). MiniGPT-v2 `llama_proj.*`, CogVLM `model.vision.linear_proj.*`
 * (default prefixes as defaultProjectorPrefix). Other tensors in the file are skipped.
 */
export function loadProjector(model: Model, mixinName: string, src: TensorSourceLike, opts: LoadPrefixedOptions = {}): LoadStateDictResult {
  const m = model.getMixin(mixinName);
  if (!(m instanceof ProjectorMixin)) fail(`loadProjector: mixin '${mixinName}' is not a ProjectorMixin`);
  const file = asSafetensors(src);
  const kind = m.projector.config.kind;
  if (kind !== 'linear' && kind !== 'mlp') return loadMixinPrefixed(model, mixinName, file, opts.prefix ?? defaultProjectorPrefix(kind), opts.strict ?? true);
  return loadMixinMapped(model, mixinName, file, opts.prefix ?? '', opts.strict ?? true, (rest) => llavaProjectorLocal(rest, kind));
}
