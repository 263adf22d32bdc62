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
  checkPositiveInt, fail, loadStateDict, normal, ones, ops, ParamScope, shapeStr, zeros,
  type LoadStateDictResult, type Model, type ParamOverrides, type ParamStore, type SafetensorsFile,
  type HookImpls,
} from '@vlmix/core';
import { ImageTokenMixin, loadMixinPrefixed, type ImageTokenOptions } from './projectors.js';

/** BERT's post-LN residual: LayerNorm(a + b) in one kernel (the sum itself is not kept). */
function addNormed(a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const [sum, normed] = ops.addLayerNorm(a, b, gamma, beta, eps);
  sum.dispose();
  return normed;
}

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
  /**
   * InstructBLIP: the instruction's token vocabulary (0 = BLIP-2, no instruction). With it the Q-Former embeds
   * instruction tokens (word + absolute position embeddings) after the queries; they share the self-attention
   * with the queries, skip the cross-attention and take the text FFN (`intermediate`, `output`).
   */
  instructionVocabSize?: number;
  /** Longest instruction (position embeddings; default 32). */
  maxInstructionLength?: number;
}

export type ResolvedQFormerConfig = Required<QFormerConfig>;

export function resolveQFormerConfig(c: QFormerConfig, lmHidden: number): ResolvedQFormerConfig {
  if (c == null || typeof c !== 'object') fail(`qformer config: expected an object, got ${JSON.stringify(c)}`);
  const out: ResolvedQFormerConfig = { crossAttentionFrequency: 2, layerNormEps: 1e-12, outputSize: lmHidden, initStd: 0.02, instructionVocabSize: 0, maxInstructionLength: 32, ...c };
  if (!Number.isInteger(out.instructionVocabSize) || out.instructionVocabSize < 0) fail(`qformer.instructionVocabSize: expected an integer >= 0, got ${JSON.stringify(out.instructionVocabSize)}`);
  checkPositiveInt('qformer.maxInstructionLength', out.maxInstructionLength);
  for (const k of ['hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'encoderHiddenSize', 'numQueryTokens', 'crossAttentionFrequency', 'outputSize'] as const) {
    checkPositiveInt(`qformer.${k}`, out[k]);
  }
  if (out.hiddenSize % out.numHeads !== 0) fail(`qformer.hiddenSize: expected a multiple of numHeads ${out.numHeads}, got ${out.hiddenSize}`);
  if (!(out.layerNormEps > 0)) fail(`qformer.layerNormEps: expected > 0, got ${out.layerNormEps}`);
  return out;
}

/** [B, T, H*D] -> [B, H, T, D] */
function heads(x: tf.Tensor, h: number): tf.Tensor {
  return ops.splitHeads(x, [h], x.shape[2]! / h)[0]!;
}

export interface QFormerOutput {
  /** Q-Former sequence output [B, Q, Cq]. */
  lastHiddenState: tf.Tensor;
  /** language_projection(lastHiddenState) [B, Q, C_lm]. */
  languageTokens: tf.Tensor;
  /**
   * With outputHiddenStates: HF's `hidden_states`, numLayers + 1 tensors: the embedding output
   * (layernorm of the queries, + instruction tokens) then each layer's output, over the whole sequence.
   */
  hiddenStates?: tf.Tensor[];
}

/** What Blip2QFormerModel.forward takes besides the image features. */
export interface QFormerForwardOptions {
  /** [B, N] 1 = feature, 0 = padding: padded image features are masked out of the cross-attention. */
  encoderAttentionMask?: tf.Tensor;
  /** [B, Q, Cq] query embeddings per batch row instead of the learned query_tokens (HF `query_embeds`). */
  queryEmbeds?: tf.Tensor;
  /** Also return every hidden state (HF `output_hidden_states`). */
  outputHiddenStates?: boolean;
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
    if (c.instructionVocabSize) {
      s.create('qformer.embeddings.word_embeddings.weight', [c.instructionVocabSize, C], normal(c.initStd));
      s.create('qformer.embeddings.position_embeddings.weight', [c.maxInstructionLength, C], normal(c.initStd));
    }
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
      if (c.instructionVocabSize) { // the text FFN the instruction tokens take
        lin(`${p}intermediate.dense`, c.intermediateSize, C);
        lin(`${p}output.dense`, C, c.intermediateSize);
        ln(`${p}output.LayerNorm`);
      }
    }
    lin('language_projection', c.outputSize, C);
  }

  hasCrossAttention(layer: number): boolean {
    return layer % this.config.crossAttentionFrequency === 0;
  }

  /** BERT attention block: LayerNorm(x + dense(MHA(q = x, k/v = kv))). */
  private attentionBlock(p: (n: string) => tf.Tensor, base: string, x: tf.Tensor, kv: tf.Tensor, bias: tf.Tensor | null = null): tf.Tensor {
    const c = this.config;
    const lin = (n: string, y: tf.Tensor) => ops.linear(y, p(`${base}${n}.weight`), p(`${base}${n}.bias`));
    const q = heads(lin('attention.query', x), c.numHeads);
    const k = heads(lin('attention.key', kv), c.numHeads);
    const v = heads(lin('attention.value', kv), c.numHeads);
    const a = ops.attention(q, k, v, { bias, causal: false });
    const ctxv = ops.mergeHeads(a);
    return addNormed(lin('output.dense', ctxv), x, p(`${base}output.LayerNorm.weight`), p(`${base}output.LayerNorm.bias`), c.layerNormEps);
  }

  /**
   * image features [B, N, C_enc] -> query outputs and their language projection. InstructBLIP: `instruction`
   * ids [B, L] (int32) with their mask [B, L] (1 = token, 0 = padding) join the queries (config.instructionVocabSize).
   */
  forward(features: tf.Tensor, params?: ParamOverrides, instruction?: { ids: tf.Tensor; mask: tf.Tensor }, opts: QFormerForwardOptions = {}): QFormerOutput {
    const c = this.config;
    if (features.rank !== 3 || features.shape[2] !== c.encoderHiddenSize) {
      fail(`features: expected shape [B, N, ${c.encoderHiddenSize}] (qformer.encoderHiddenSize), got ${shapeStr(features.shape)}`);
    }
    const [b, n] = features.shape as [number, number, number];
    const em = opts.encoderAttentionMask;
    if (em && (em.rank !== 2 || em.shape[0] !== b || em.shape[1] !== n)) fail(`encoderAttentionMask: expected shape [${b}, ${n}] (the features' batch and length), got ${shapeStr(em.shape)}`);
    const qe = opts.queryEmbeds;
    if (qe && (qe.rank !== 3 || qe.shape[0] !== b || qe.shape[1] !== c.numQueryTokens || qe.shape[2] !== c.hiddenSize)) {
      fail(`queryEmbeds: expected shape [${b}, ${c.numQueryTokens}, ${c.hiddenSize}] (batch, numQueryTokens, hiddenSize), got ${shapeStr(qe.shape)}`);
    }
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      const ln = (n: string, y: tf.Tensor) => ops.layerNorm(y, p(`${n}.weight`), p(`${n}.bias`), c.layerNormEps);
      const nq = c.numQueryTokens;
      let x: tf.Tensor = qe ?? tf.tile(p('query_tokens'), [b, 1, 1]);
      let bias: tf.Tensor | null = null;
      // HF invert_attention_mask: (1 - mask) * large negative on the cross-attention scores
      const crossBias = em ? tf.reshape(tf.mul(tf.sub(1, tf.cast(em, 'float32')), -1e9), [b, 1, 1, n]) : null;
      if (instruction) {
        if (!c.instructionVocabSize) fail('qformer: an instruction was given but qformer.instructionVocabSize is 0 (a BLIP-2 Q-Former)');
        const len = instruction.ids.shape[1]!;
        if (instruction.ids.rank !== 2 || instruction.ids.shape[0] !== b || len > c.maxInstructionLength) {
          fail(`qformer: instruction ids must be [${b}, L] with L <= maxInstructionLength ${c.maxInstructionLength}, got ${shapeStr(instruction.ids.shape)}`);
        }
        const text = tf.add(tf.gather(p('qformer.embeddings.word_embeddings.weight'), instruction.ids), tf.slice(p('qformer.embeddings.position_embeddings.weight'), [0, 0], [len, -1]));
        x = tf.concat([x, text], 1);
        // queries always attend; instruction padding is masked out of every key (HF: (1 - mask) * large negative)
        const keys = tf.concat([tf.ones([b, nq]), tf.cast(instruction.mask, 'float32')], 1);
        bias = tf.reshape(tf.mul(tf.sub(1, keys), -1e9), [b, 1, 1, -1]);
      }
      x = ln('qformer.layernorm', x);
      const hiddenStates: tf.Tensor[] = [x];
      const ffn = (kind: 'query' | 'text', pre: string, y: tf.Tensor) => {
        const [i, o] = kind === 'query' ? ['intermediate_query', 'output_query'] : ['intermediate', 'output'];
        const inter = ops.linear(y, p(`${pre}${i}.dense.weight`), p(`${pre}${i}.dense.bias`), 'gelu');
        return addNormed(ops.linear(inter, p(`${pre}${o}.dense.weight`), p(`${pre}${o}.dense.bias`)), y, p(`${pre}${o}.LayerNorm.weight`),
          p(`${pre}${o}.LayerNorm.bias`), c.layerNormEps);
      };
      for (let l = 0; l < c.numLayers; l++) {
        const pre = `qformer.encoder.layer.${l}.`;
        x = this.attentionBlock(p, `${pre}attention.`, x, x, bias);
        let q = instruction ? tf.slice(x, [0, 0, 0], [-1, nq, -1]) : x;
        if (this.hasCrossAttention(l)) q = this.attentionBlock(p, `${pre}crossattention.`, q, features, crossBias);
        q = ffn('query', pre, q);
        x = instruction ? tf.concat([q, ffn('text', pre, tf.slice(x, [0, nq, 0], [-1, -1, -1]))], 1) : q;
        hiddenStates.push(x);
      }
      if (instruction) x = tf.slice(x, [0, 0, 0], [-1, nq, -1]);
      const languageTokens = ops.linear(x, p('language_projection.weight'), p('language_projection.bias'));
      return { lastHiddenState: x, languageTokens, ...(opts.outputHiddenStates ? { hiddenStates } : {}) } as unknown as tf.TensorContainer;
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
    this.recordOptions(opts);
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
export function loadBlip2QFormer(model: Model, mixinName: string, file: SafetensorsFile, opts: { prefix?: string; strict?: boolean; layout?: 'auto' | 'blip2' | 'qformer' } = {}): LoadStateDictResult {
  const m = model.getMixin(mixinName);
  if (!(m instanceof QFormerConnectorMixin)) fail(`loadBlip2QFormer: mixin '${mixinName}' is not a QFormerConnectorMixin`);
  const prefix = opts.prefix ?? '';
  const has = (n: string) => file.has(prefix + n);
  const layout = opts.layout && opts.layout !== 'auto' ? opts.layout : has('layernorm.weight') && !has('qformer.layernorm.weight') ? 'qformer' : 'blip2';
  if (layout === 'blip2') return loadMixinPrefixed(model, mixinName, file, prefix, opts.strict ?? true);
  // A bare Blip2QFormerModel state_dict (layernorm.*, encoder.layer.N.*, embeddings.*): the Q-Former's own
  // tensors, required under strict; query_tokens and language_projection.* load when the file has them.
  const mine = `${mixinName}.`;
  const optional = (l: string) => l === 'query_tokens' || l.startsWith('language_projection.');
  const vars = new Map([...model.stateDict()].filter(([n]) => n.startsWith(mine) && (!optional(n.slice(mine.length)) || has(n.slice(mine.length)))));
  return loadStateDict(vars, file, {
    strict: opts.strict ?? true,
    nameMap: (n) => {
      if (!n.startsWith(prefix)) return null;
      const rest = n.slice(prefix.length);
      const local = optional(rest) ? rest : `qformer.${rest}`;
      return model.hasParam(mine + local) ? mine + local : null;
    },
  });
}

/** Media keys of an InstructBLIP instruction: token ids [B, L] (int32) and their mask [B, L]. */
export const QFORMER_INPUT_IDS = 'qformer_input_ids';
export const QFORMER_ATTENTION_MASK = 'qformer_attention_mask';

/**
 * InstructBLIP's connector: a Q-Former with `instructionVocabSize` whose queries read the instruction too
 * (ctx.media['qformer_input_ids'] / ['qformer_attention_mask'], the prompt tokenized for the Q-Former).
 * Without an instruction in the media it works as BLIP-2's.
 */
export class InstructQFormerConnectorMixin extends QFormerConnectorMixin {
  constructor(opts: QFormerConnectorOptions) {
    super(opts);
    this.recordOptions(opts);
    if (!opts.qformer.instructionVocabSize) fail('InstructQFormerConnectorMixin: qformer.instructionVocabSize must be set (the instruction vocabulary)');
  }

  override hooks(): HookImpls {
    const base = super.hooks();
    return {
      ...base,
      encodeMedia: (state, ctx, next) => {
        const out = next(state, ctx);
        const feats = out.get(this.featuresKey);
        const plan = out.require(this.planKey, this.name);
        if (feats == null || (plan.total === 0 && ctx.pastLength > 0)) return out;
        const ids = ctx.media[QFORMER_INPUT_IDS] as tf.Tensor | undefined;
        const mask = ctx.media[QFORMER_ATTENTION_MASK] as tf.Tensor | undefined;
        const tokens = tf.tidy(() => this.qformer.forward(feats, undefined, ids ? { ids, mask: mask ?? tf.onesLike(ids) } : undefined).languageTokens) as tf.Tensor3D;
        return out.with(this.tokensKey, tokens, this.name);
      },
    };
  }
}
