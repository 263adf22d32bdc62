/**
 * CogAgent (Hong et al. 2023, type B): CogVLM (low-res ViT -> GLU adapter -> image tokens + visual expert)
 * plus a high-resolution branch: a second, smaller ViT on a 2x larger copy of the image whose features every
 * decoder layer cross-attends to after its self-attention (HighResCrossAttentionMixin, CogAgent's
 * cross_attn names). 1120-px high-res input in the reference; 64 px here.
 */
import * as tf from '@tensorflow/tfjs';
import { CLIP_MEAN, CLIP_STD, resize, toFloatCHW, type Tokenizer } from '@vlmix/data';
import { HighResCrossAttentionMixin, VisionEncoderMixin } from '@vlmix/mixins';
import type { RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';
import { buildCogvlm } from './cogvlm.js';

const HR = { imageSize: 64, patchSize: 16, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64 };

export function buildCogagent(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const low = buildCogvlm(tok, opts);
  const model = low.model;
  model.addMixin('vision_hr', new VisionEncoderMixin({ vit: HR, mediaKey: 'pixels_hr', featuresKey: 'vision.hr', selectLayer: -1, selectFeature: 'patch' }));
  model.addMixin('cross_hr', new HighResCrossAttentionMixin({ featuresKey: 'vision.hr', encoderSize: HR.hiddenSize, crossHiddenSize: 32, heads: 2 }));
  const s = HR.imageSize;
  return new Vlm({
    type: 'B', model, tokenizer: tok, imageSize: low.imageSize, imageTokens: low.imageTokens, usesPixels: true, imageTokenTypes: true,
    // the high-res copy of each image, normalised like the low-res one
    extraMedia: (b, samples) => ({
      pixels_hr: tf.tensor4d(Float32Array.from(samples.flatMap((x) => Array.from(toFloatCHW(resize(x.image, s, s), CLIP_MEAN, CLIP_STD)))), [b, 3, s, s]),
    }),
    description: `CogAgent (B): CogVLM + a ${s}-px high-res ViT cross-attended by every layer`,
  });
}

export const cogagent: VlmPreset = {
  name: 'cogagent', description: 'CogAgent (type B): CogVLM + high-resolution ViT branch cross-attended in every decoder layer; CogAgent cross_attn names', build: buildCogagent,
};
