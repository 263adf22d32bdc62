/**
 * BLIP-2 Q-Former connector: HF `Blip2QFormerModel` (BERT-style post-LN layers over learned query tokens,
 * cross-attention to the image features every `crossAttentionFrequency` layers, query FFN) with
 * `Blip2Model.query_tokens` and `language_projection`. `QFormerConnectorMixin` places the Q projected query
 * outputs at the image placeholder positions (the connector hooks of ImageTokenMixin, like ProjectorMixin:
 * the Q-Former runs in encodeMedia, the scatter in wordEmbedding).
 * Only the query path is implemented: the text FFN (`intermediate`, `output`) is not created.
 */
import * as tf from '@tensorflow/tfjs';
import {
  checkPositiveInt, fail, normal, ones, ops, ParamScope, shapeStr, zeros,
  type LoadStateDictResult, type Model, type ParamOverrides, type ParamStore, type SafetensorsFile,
} from '@vlmix/core';
import { ImageTokenMixin, loadMixinPrefixed, type ImageTokenOptions } from './projectors.js';

export interface QFormerConfig {
  /** Q-Former width Cq (BLIP-2: 768). */
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** Image feature width (key/value input of cross-attention; BLIP-2 EVA ViT-g: 1408). */
  encoderHiddenSize: number;
  /** Learned query tokens Q (BLIP-2: 32). */
  numQueryTokens: number;
  /** Layers i with i % frequency == 0 have cross-attention (default 2). */
  crossAttentionFrequency?: number;
  /** LayerNorm eps (default 1e-12). */
  layerNormEps?: number;
  /** language_projection output width (default: the host model's hiddenSize). */
  outputSize?: number;
  /** Init std (default 0.02, HF initializer_range). */
  initStd?: number;
}

export type ResolvedQFormerConfig = Required<QFormerConfig>;

export function resolveQFormerConfig(c: QFormerConfig, lmHidden: number): ResolvedQFormerConfig {
  if (c == null || typeof c !== 'object') fail(`qformer config: expected an object, got ${JSON.stringify(c)}`);
  const out: ResolvedQFormerConfig = { crossAttentionFrequency: 2, layerNormEps: 1e-12, outputSize: lmHidden, initStd: 0.02, ...c };
  for (const k of ['hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'encoderHiddenSize', 'numQueryTokens', 'crossAttentionFrequency', 'outputSize'] as const) {
    checkPositiveInt(`qformer.${k}`, out[k]);
  }
  if (out.hiddenSize % out.numHeads !== 0) fail(`qformer.hiddenSize: expected a multiple of numHeads ${out.numHeads}, got ${out.hiddenSize}`);
  if (!(out.layerNormEps > 0)) fail(`qformer.layerNormEps: expected > 0, got ${out.layerNormEps}`);
  return out;
}

/** [B, T, H*D] -> [B, H, T, D] */
function heads(x: tf.Tensor, h: number): tf.Tensor {
  const [b, t, c] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [b, t, h, c / h]), [0, 2, 1, 3]);
}

export interface QFormerOutput {
  /** Q-Former sequence output [B, Q, Cq]. */
  lastHiddenState: tf.Tensor;
  /** language_projection(lastHiddenState) [B, Q, C_lm]. */
  languageTokens: tf.Tensor;
}

/** The Q-Former module; parameters `<prefix>query_tokens`, `<prefix>qformer.*`, `<prefix>language_projection.*`. */
export class QFormer {
  readonly config: ResolvedQFormerConfig;
  readonly scope: ParamScope;

  constructor(params: ParamStore, prefix: string, config: QFormerConfig, lmHidden: number, opts: { component?: string } = {}) {
    const c = (this.config = resolveQFormerConfig(config, lmHidden));
    const s = (this.scope = new ParamScope(params, prefix, opts.component ?? prefix.replace(/\.$/, '')));
    const C = c.hiddenSize;
    const lin = (n: string, out: number, inF: number) => {
      s.create(`${n}.weight`, [out, inF], normal(c.initStd));
      s.create(`${n}.bias`, [out], zeros);
    };
    const ln = (n: string) => {
      s.create(`${n}.weight`, [C], ones);
      s.create(`${n}.bias`, [C], zeros);
    };
    s.create('query_tokens', [1, c.numQueryTokens, C], normal(c.initStd));
    ln('qformer.layernorm');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `qformer.encoder.layer.${l}.`;
      for (const n of ['query', 'key', 'value']) lin(`${p}attention.attention.${n}`, C, C);
      lin(`${p}attention.output.dense`, C, C);
      ln(`${p}attention.output.LayerNorm`);
      if (this.hasCrossAttention(l)) {
        lin(`${p}crossattention.attention.query`, C, C);
        lin(`${p}crossattention.attention.key`, C, c.encoderHiddenSize);
        lin(`${p}crossattention.attention.value`, C, c.encoderHiddenSize);
        lin(`${p}crossattention.output.dense`, C, C);
        ln(`${p}crossattention.output.LayerNorm`);
      }
      lin(`${p}intermediate_query.dense`, c.intermediateSize, C);
      lin(`${p}output_query.dense`, C, c.intermediateSize);
      ln(`${p}output_query.LayerNorm`);
    }
    lin('language_projection', c.outputSize, C);
  }

  hasCrossAttention(layer: number): boolean {
    return layer % this.config.crossAttentionFrequency === 0;
  }

  /** BERT attention block: LayerNorm(x + dense(MHA(q = x, k/v = kv))). */
  private attentionBlock(p: (n: string) => tf.Tensor, base: string, x: tf.Tensor, kv: tf.Tensor): tf.Tensor {
    const c = this.config;
    const lin = (n: string, y: tf.Tensor) => ops.linear(y, p(`${base}${n}.weight`), p(`${base}${n}.bias`));
    const q = heads(lin('attention.query', x), c.numHeads);
    const k = heads(lin('attention.key', kv), c.numHeads);
    const v = heads(lin('attention.value', kv), c.numHeads);
    const a = ops.attention(q, k, v, { bias: null, causal: false });
    const [b, h, t, d] = a.shape;
    const ctxv = tf.reshape(tf.transpose(a, [0, 2, 1, 3]), [b, t, h * d]);
    return ops.layerNorm(tf.add(lin('output.dense', ctxv), x), p(`${base}output.LayerNorm.weight`), p(`${base}output.LayerNorm.bias`), c.layerNormEps);
  }

  /** image features [B, N, C_enc] -> query outputs and their language projection. */
  forward(features: tf.Tensor, params?: ParamOverrides): QFormerOutput {
    const c = this.config;
    if (features.rank !== 3 || features.shape[2] !== c.encoderHiddenSize) {
      fail(`features: expected shape [B, N, ${c.encoderHiddenSize}] (qformer.encoderHiddenSize), got ${shapeStr(features.shape)}`);
    }
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      const b = features.shape[0]!;
      const ln = (n: string, y: tf.Tensor) => ops.layerNorm(y, p(`${n}.weight`), p(`${n}.bias`), c.layerNormEps);
      let x = ln('qformer.layernorm', tf.tile(p('query_tokens'), [b, 1, 1]));
      for (let l = 0; l < c.numLayers; l++) {
        const pre = `qformer.encoder.layer.${l}.`;
        x = this.attentionBlock(p, `${pre}attention.`, x, x);
        if (this.hasCrossAttention(l)) x = this.attentionBlock(p, `${pre}crossattention.`, x, features);
        const inter = ops.gelu(ops.linear(x, p(`${pre}intermediate_query.dense.weight`), p(`${pre}intermediate_query.dense.bias`)), 'none');
        const out = ops.linear(inter, p(`${pre}output_query.dense.weight`), p(`${pre}output_query.dense.bias`));
        x = ln(`${pre}output_query.LayerNorm`, tf.add(out, x));
      }
      const languageTokens = ops.linear(x, p('language_projection.weight'), p('language_projection.bias'));
      return { lastHiddenState: x, languageTokens } as unknown as tf.TensorContainer;
    }) as unknown as QFormerOutput;
  }
}

export interface QFormerConnectorOptions extends ImageTokenOptions {
  qformer: QFormerConfig;
}

/**
 * Q-Former connector: ctx.state['vision.features'] -> Q-Former -> language_projection -> Q image tokens at the
 * placeholder positions (each row needs exactly numQueryTokens placeholders per image row).
 */
export class QFormerConnectorMixin extends ImageTokenMixin {
  readonly options: QFormerConnectorOptions;
  private readonly mod = this.submodule('Q-Former', (m) => {
    const out = this.options.qformer.outputSize;
    if (out != null && out !== m.config.hiddenSize) fail(`qformer.outputSize: expected the model's hiddenSize ${m.config.hiddenSize}, got ${out}`);
    return new QFormer(m.params, `${this.name}.`, this.options.qformer, m.config.hiddenSize, { component: this.name });
  });

  constructor(opts: QFormerConnectorOptions) {
    super(opts);
    if (opts.qformer == null) fail(`QFormerConnectorMixin: expected options { qformer: QFormerConfig, imageTokenId }, got no qformer`);
    resolveQFormerConfig(opts.qformer, opts.qformer.outputSize ?? 1);
    this.options = opts;
  }

  get qformer(): QFormer {
    return this.mod.get();
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
  }

  imageTokens(features: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    return tf.tidy(() => this.qformer.forward(features, params).languageTokens);
  }
}

/**
 * Loads HF `Blip2Model` / `Blip2ForConditionalGeneration` weights (`query_tokens`, `qformer.*`,
 * `language_projection.*`, after stripping `prefix`, default '') into the QFormerConnectorMixin `mixinName`.
 * The vision and language towers and the Q-Former's unused text FFN (`intermediate.*`, `output.*`) are skipped.
 */
export function loadBlip2QFormer(model: Model, mixinName: string, file: SafetensorsFile, opts: { prefix?: string; strict?: boolean } = {}): LoadStateDictResult {
  const m = model.getMixin(mixinName);
  if (!(m instanceof QFormerConnectorMixin)) fail(`loadBlip2QFormer: mixin '${mixinName}' is not a QFormerConnectorMixin`);
  return loadMixinPrefixed(model, mixinName, file, opts.prefix ?? '', opts.strict ?? true);
}
