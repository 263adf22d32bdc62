/** Pieces shared by the recipes: the base LM, the vision tower, and the options that compose. */
import { createLlama, fail, type Model, type TransformerConfigInput } from '@vlmix/core';
import { LoraMixin, MRopeMixin, VisionEncoderMixin, loraOnly, type VitConfig } from '@vlmix/mixins';
import { specialId, type Tokenizer } from '@vlmix/data';

/** Which parameters train. */
export type FreezePolicy = 'all' | 'connector' | 'expert' | 'lora';

export interface RecipeOptions {
  seed?: number | string;
  /** Base LM overrides (vocabSize is set from the tokenizer). */
  lm?: Partial<TransformerConfigInput>;
  /** Vision tower overrides. */
  vision?: Partial<VitConfig>;
  /** Multimodal rotary (Qwen2-VL) instead of 1-D RoPE. */
  mrope?: boolean;
  /** LoRA on the attention projections of the LM. */
  lora?: { r: number; alpha?: number };
  freeze?: FreezePolicy;
}

export const TINY_LM: Partial<TransformerConfigInput> = {
  hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 176, maxSeqLen: 128,
};

export const TINY_VIT: VitConfig = {
  imageSize: 32, patchSize: 8, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128,
  activation: 'gelu', classToken: true, preLayerNorm: true, postLayerNorm: true, positionInit: 'sincos2d',
};

/**
 * The base LM (LLaMA style: RMSNorm, SwiGLU, RoPE, GQA) sized for the tokenizer (+ extraVocab image codes).
 * `opts.lm.vocabSize` larger than that pads the vocabulary (rows past the tokenizer's are never fed).
 */
export function baseLm(tok: Tokenizer, opts: RecipeOptions, extraVocab = 0): Model {
  const vocabSize = Math.max(tok.vocabSize + extraVocab, opts.lm?.vocabSize ?? 0);
  return createLlama({ ...TINY_LM, ...opts.lm, vocabSize, seed: opts.seed ?? 0 }, { base: 10000 });
}

export function vitConfig(opts: RecipeOptions): VitConfig {
  return { ...TINY_VIT, ...opts.vision };
}

/** Patch tokens the ViT yields per image (CLS dropped). */
export function patchTokens(v: VitConfig): number {
  return (v.imageSize / v.patchSize) ** 2;
}

export function addVision(model: Model, opts: RecipeOptions): VitConfig {
  const vit = vitConfig(opts);
  model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: -1, selectFeature: 'patch' }));
  return vit;
}

/** Replaces 1-D RoPE by M-RoPE; image placeholders get (h, w) positions over the patch grid. */
export function useMrope(model: Model, tok: Tokenizer, vit: VitConfig): void {
  const half = model.config.headDim / 2;
  const t = Math.floor(half / 4);
  const h = Math.floor((half - t) / 2);
  model.addMixin('mrope', new MRopeMixin({ mropeSection: [t, h, half - t - h], spatialMergeSize: 1, imageTokenId: specialId(tok, '<image>'), override: true }));
  void vit;
}

/** Applies LoRA and the freezing policy. `connector` names the mixins that bridge vision and text. */
export function finish(model: Model, opts: RecipeOptions, connector: string[], expert: string[] = []): void {
  if (opts.lora) {
    model.addMixin('lora', new LoraMixin({
      r: opts.lora.r, alpha: opts.lora.alpha ?? 2 * opts.lora.r,
      targets: ['transformer.layers.*.attention.query_key_value', 'transformer.layers.*.attention.dense'],
    }));
  }
  const policy = opts.freeze ?? 'all';
  const keep = (components: string[]) => {
    for (const p of model.params.list()) {
      const on = components.includes(p.component);
      p.trainable = on;
      p.variable.trainable = on;
    }
  };
  switch (policy) {
    case 'all':
      return;
    case 'connector':
      return keep(connector);
    case 'expert':
      if (expert.length === 0) fail(`freeze: 'expert' needs a model with a visual expert (type B)`);
      return keep([...connector, ...expert]);
    case 'lora':
      if (!opts.lora) fail(`freeze: 'lora' needs the lora option (e.g. {r: 4})`);
      loraOnly(model);
      for (const p of model.params.list()) if (connector.includes(p.component)) { p.trainable = true; p.variable.trainable = true; }
      return;
    default:
      fail(`freeze: expected one of all, connector, expert, lora, got ${JSON.stringify(policy)}`);
  }
}

/** Media passed for M-RoPE: one (t, h, w) grid per image. */
export function mropeMedia(batch: number, vit: VitConfig): number[][] {
  const g = vit.imageSize / vit.patchSize;
  return Array.from({ length: batch }, () => [1, g, g]);
}
