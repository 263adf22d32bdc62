/**
 * Vision-to-language projectors and the placeholder scatter shared by connectors.
 *
 * - LLaVA `linear` (`mm_projector`) and `mlp{N}x_gelu` (`mm_projector.0`, `mm_projector.2`, ...).
 * - MiniGPT-v2: concatenate every 4 adjacent visual tokens, then `llama_proj` (Linear to LM width).
 * - CogVLM `GLU` adapter (`linear_proj`): Linear -> LayerNorm -> GELU -> silu(gate_proj) * dense_h_to_4h -> dense_4h_to_h.
 *
 * `ProjectorMixin` serves the `wordEmbedding` chain hook: it embeds the ids (next), then writes the projected
 * features at the image placeholder positions (ids == imageTokenId), in order, row by row.
 */
import * as tf from '@tensorflow/tfjs';
import {
  checkPositiveInt,
  fail,
  loadStateDict,
  Mixin,
  ones,
  ops,
  shapeStr,
  zeros,
  type ForwardContext,
  type HookFn,
  type HookImpls,
  type Init,
  type LoadStateDictResult,
  type Model,
  type ParamStore,
  type SafetensorsFile,
} from '@vlmix/core';
import { STATE_VISION_FEATURES } from '../common.js';
import { ParamScope, type ParamOverrides } from '../vision/vit.js';

// ------------------------------------------------------------------------------------------ scatter

/** Number of positions equal to `imageTokenId` in each row of ids [B, T]. */
export function countPlaceholders(inputIds: tf.Tensor, imageTokenId: number): number[] {
  const [b, t] = inputIds.shape as [number, number];
  const ids = inputIds.dataSync();
  const out = new Array<number>(b).fill(0);
  for (let r = 0; r < b; r++) for (let i = 0; i < t; i++) if (ids[r * t + i] === imageTokenId) out[r]!++;
  return out;
}

/**
 * Writes `tokens` [B, N, C] into `embeds` [B, T, C] at the positions where `inputIds` [B, T] == imageTokenId,
 * in order, row by row (row b's k-th placeholder gets tokens[b, k]). Every row must hold exactly N
 * placeholders. Differentiable w.r.t. embeds (text positions) and tokens (image positions).
 */
export function scatterImageTokens(embeds: tf.Tensor, inputIds: tf.Tensor, tokens: tf.Tensor, imageTokenId: number, who = 'scatterImageTokens'): tf.Tensor {
  if (embeds.rank !== 3) fail(`${who}: embeds: expected shape [B, T, C], got ${shapeStr(embeds.shape)}`);
  const [b, t, c] = embeds.shape as [number, number, number];
  if (inputIds.rank !== 2 || inputIds.shape[0] !== b || inputIds.shape[1] !== t) {
    fail(`${who}: inputIds: expected shape [${b}, ${t}], got ${shapeStr(inputIds.shape)}`);
  }
  if (tokens.rank !== 3 || tokens.shape[0] !== b || tokens.shape[2] !== c) {
    fail(`${who}: image tokens: expected shape [${b}, N, ${c}] (batch and width of the text embeddings), got ${shapeStr(tokens.shape)}`);
  }
  const n = tokens.shape[1]!;
  const counts = countPlaceholders(inputIds, imageTokenId);
  counts.forEach((k, r) => {
    if (k !== n) {
      fail(`${who}: row ${r} of inputIds has ${k} image placeholder token(s) (id ${imageTokenId}) but ${n} image tokens were projected; ` +
        `each row needs exactly ${n} placeholders (see expandImagePlaceholders)`);
    }
  });
  // Row p of the output is row src[p] of [embeds; tokens] (flattened): itself for text, B*T + r*N + k for
  // row r's k-th image token. Each source row is picked at most once, so ops.gatherRows applies.
  const ids = inputIds.dataSync();
  const src = new Int32Array(b * t);
  for (let r = 0; r < b; r++) {
    let k = 0;
    for (let i = 0; i < t; i++) src[r * t + i] = ids[r * t + i] === imageTokenId ? b * t + r * n + k++ : r * t + i;
  }
  return tf.tidy(() => {
    if (n === 0) return tf.clone(embeds);
    const both = tf.concat([tf.reshape(embeds, [b * t, c]), tf.reshape(tokens, [b * n, c])], 0);
    return tf.reshape(ops.gatherRows(both, src), [b, t, c]);
  });
}

/** Replaces every single `imageTokenId` in each row by `numTokens` copies (plain arrays). */
export function expandImagePlaceholders(inputIds: number[][], imageTokenId: number, numTokens: number): number[][] {
  checkPositiveInt('numTokens', numTokens);
  return inputIds.map((row) => row.flatMap((id) => (id === imageTokenId ? new Array<number>(numTokens).fill(imageTokenId) : [id])));
}

export interface ImageTokenOptions {
  /** Token id of the image placeholder in inputIds (must be < vocabSize). */
  imageTokenId: number;
  /** ctx.state key of the vision features (default 'vision.features'). */
  featuresKey?: string;
  /** Set ctx.tokenTypes (1 at image positions) when no one else did (default true). */
  setTokenTypes?: boolean;
}

/**
 * Base of connectors that turn `ctx.state['vision.features']` into image tokens and place them at the
 * placeholder positions, serving the `wordEmbedding` chain hook.
 */
export abstract class ImageTokenMixin extends Mixin {
  readonly imageTokenId: number;
  readonly featuresKey: string;
  readonly setTokenTypes: boolean;

  constructor(opts: ImageTokenOptions) {
    super();
    if (opts == null || typeof opts !== 'object') fail(`connector options: expected an object, got ${JSON.stringify(opts)}`);
    if (!Number.isInteger(opts.imageTokenId) || opts.imageTokenId < 0) {
      fail(`imageTokenId: expected a non-negative integer token id, got ${JSON.stringify(opts.imageTokenId)}`);
    }
    this.imageTokenId = opts.imageTokenId;
    this.featuresKey = opts.featuresKey ?? STATE_VISION_FEATURES;
    this.setTokenTypes = opts.setTokenTypes ?? true;
  }

  /** Image tokens [B, N, C_lm] for vision features [B, Nv, Cv]. */
  abstract imageTokens(features: tf.Tensor, params?: ParamOverrides): tf.Tensor;

  protected checkTokenId(model: Model): void {
    if (this.imageTokenId >= model.config.vocabSize) {
      fail(`imageTokenId: expected an id < vocabSize ${model.config.vocabSize}, got ${this.imageTokenId}`);
    }
  }

  hooks(): HookImpls {
    return {
      wordEmbedding: (ids: tf.Tensor, ctx: ForwardContext, next: HookFn<'wordEmbedding'>) => {
        const emb = next(ids, ctx);
        const feats = ctx.state.get(this.featuresKey) as tf.Tensor | undefined;
        const total = countPlaceholders(ids, this.imageTokenId).reduce((a, v) => a + v, 0);
        if (this.setTokenTypes && ctx.tokenTypes == null && total > 0) {
          ctx.tokenTypes = tf.cast(tf.equal(ids, this.imageTokenId), 'int32');
        }
        if (feats == null) {
          if (total > 0) {
            fail(`${this.name}: inputIds contain ${total} image placeholder token(s) (id ${this.imageTokenId}) but ctx.state['${this.featuresKey}'] ` +
              `is not set; pass media.pixels and add a vision encoder mixin`);
          }
          return emb;
        }
        if (total === 0 && ctx.pastLength > 0) return emb; // decode step after the prompt
        return scatterImageTokens(emb, ids, this.imageTokens(feats), this.imageTokenId, this.name || 'connector');
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
    const lin = (name: string, x: tf.Tensor) => ops.linear(x, p(`${name}.weight`), this.scope.has(`${name}.bias`) ? p(`${name}.bias`) : null);
    return tf.tidy(() => {
      switch (c.kind) {
        case 'linear':
          return lin('mm_projector', features);
        case 'mlp': {
          let x = features;
          for (let i = 0; i < c.mlpDepth; i++) {
            if (i > 0) x = ops.gelu(x, 'none');
            x = lin(`mm_projector.${2 * i}`, x);
          }
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
  private proj: VisualProjector | null = null;

  constructor(opts: ProjectorOptions) {
    super(opts);
    if (opts.projector == null) fail(`ProjectorMixin: expected options { projector: ProjectorConfig, imageTokenId }, got no projector`);
    resolveProjector(opts.projector, { hiddenSize: 1, intermediateSize: 1 }); // early config errors
    this.options = opts;
  }

  get projector(): VisualProjector {
    if (!this.proj) fail(`ProjectorMixin: not attached to a model yet (call model.addMixin first)`);
    return this.proj;
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
    this.proj = new VisualProjector(model.params, `${this.name}.`, this.options.projector, model.config, { component: this.name });
    if (this.proj.config.outputSize !== model.config.hiddenSize) {
      fail(`projector.outputSize: expected the model's hiddenSize ${model.config.hiddenSize}, got ${this.proj.config.outputSize}`);
    }
  }

  override detach(): void {
    this.proj = null;
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
  model.getMixin(mixinName);
  const mine = `${mixinName}.`;
  const vars = new Map([...model.stateDict()].filter(([n]) => n.startsWith(mine)));
  return loadStateDict(vars, file, {
    strict,
    nameMap: (n) => {
      if (!n.startsWith(prefix)) return null;
      const local = n.slice(prefix.length);
      if (exclude?.(local) || !vars.has(mine + local)) return null;
      return mine + local;
    },
  });
}

/** Default file prefix per projector kind: LLaVA 'model.', MiniGPT-v2 '', CogVLM 'model.vision.'. */
export function defaultProjectorPrefix(kind: ProjectorKind): string {
  return kind === 'minigpt_v2' ? '' : kind === 'cogvlm_glu' ? 'model.vision.' : 'model.';
}

/** Loads reference projector weights (LLaVA `model.mm_projector.*`, MiniGPT-v2 `llama_proj.*`, CogVLM `model.vision.linear_proj.*`). */
export function loadProjector(model: Model, mixinName: string, file: SafetensorsFile, opts: LoadPrefixedOptions = {}): LoadStateDictResult {
  const m = model.getMixin(mixinName);
  if (!(m instanceof ProjectorMixin)) fail(`loadProjector: mixin '${mixinName}' is not a ProjectorMixin`);
  return loadMixinPrefixed(model, mixinName, file, opts.prefix ?? defaultProjectorPrefix(m.projector.config.kind), opts.strict ?? true);
}
