/** The base transformer's configuration: a plain typed object, validated once. */
import { fail } from './errors.js';

export type NormKind = 'layernorm' | 'rmsnorm';
/** pre: x + f(norm(x)); post: norm(x + f(x)); sandwich: x + norm2(f(norm1(x))) (CogView). */
export type NormOrder = 'pre' | 'post' | 'sandwich';
export type Activation = 'gelu' | 'gelu_tanh' | 'relu' | 'swiglu';
export type MaskKind = 'causal' | 'bidirectional';

export interface TransformerConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (GQA/MQA); defaults to numHeads. */
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxSeqLen: number;
  norm: NormKind;
  normEps: number;
  normOrder: NormOrder;
  activation: Activation;
  /** Learned absolute positions in the base, or none (e.g. when a rotary mixin provides positions). */
  positionEmbedding: 'learned' | 'none';
  /** Biases on linear layers. */
  bias: boolean;
  /** Bias on the fused query_key_value projection only; defaults to `bias` (Qwen2: true with bias false). */
  qkvBias: boolean;
  tieEmbeddings: boolean;
  /** Final norm before the head (pre / sandwich order). */
  finalNorm: boolean;
  /** Default attention mask of the stack. */
  mask: MaskKind;
  initStd: number;
  seed: number | string;
  /**
   * Dropout in training passes only (as HF configs declare it; absent = 0): on the attention
   * probabilities (attention_dropout / attn_pdrop), on each sub-layer's output before the residual add
   * (resid_pdrop / hidden_dropout), and on the embeddings (embd_pdrop). Seeded per pass (ForwardInputs.dropoutSeed).
   */
  attentionDropout?: number;
  hiddenDropout?: number;
  embeddingDropout?: number;
}

export type TransformerConfigInput = Partial<TransformerConfig> &
  Pick<TransformerConfig, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads'>;

export function resolveConfig(c: TransformerConfigInput): TransformerConfig {
  const out: TransformerConfig = {
    numKvHeads: c.numHeads,
    headDim: c.hiddenSize / c.numHeads,
    intermediateSize: 4 * c.hiddenSize,
    maxSeqLen: 1024,
    norm: 'layernorm',
    normEps: 1e-5,
    normOrder: 'pre',
    activation: 'gelu',
    positionEmbedding: 'learned',
    bias: true,
    qkvBias: c.bias ?? true,
    tieEmbeddings: true,
    finalNorm: (c.normOrder ?? 'pre') !== 'post',
    mask: 'causal',
    initStd: 0.02,
    seed: 0,
    ...c,
  };
  for (const k of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize', 'maxSeqLen'] as const) {
    const v = out[k];
    if (!Number.isInteger(v) || v <= 0) fail(`config.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  }
  if (out.numHeads % out.numKvHeads !== 0) {
    fail(`config.numKvHeads: numHeads (${out.numHeads}) must be a multiple of numKvHeads (${out.numKvHeads})`);
  }
  const oneOf = <T extends string>(k: keyof TransformerConfig, allowed: readonly T[]) => {
    if (!allowed.includes(out[k] as T)) fail(`config.${k}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(out[k])}`);
  };
  oneOf('norm', ['layernorm', 'rmsnorm']);
  oneOf('normOrder', ['pre', 'post', 'sandwich']);
  oneOf('activation', ['gelu', 'gelu_tanh', 'relu', 'swiglu']);
  oneOf('positionEmbedding', ['learned', 'none']);
  oneOf('mask', ['causal', 'bidirectional']);
  if (!(out.normEps > 0)) fail(`config.normEps: expected > 0, got ${out.normEps}`);
  for (const k of ['attentionDropout', 'hiddenDropout', 'embeddingDropout'] as const) {
    const v = out[k];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v < 1)) fail(`config.${k}: expected a probability in [0, 1), got ${JSON.stringify(v)}`);
  }
  return out;
}
