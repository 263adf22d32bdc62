/**
 * Chameleon (Chameleon Team 2024, type D): images become discrete codes of a VQGAN (HF ChameleonVQVAE's
 * encoder and quantizer names, taming's decoder for reconstruction and generation), joined with text in one
 * vocabulary between <boi> and <eoi>; one autoregressive LM reads and generates both. The tokenizer trains
 * on its own objective first (reconstruction + the legacy VQ loss; no perceptual or GAN terms here) and is
 * frozen for the LM. Reference sizes: base 128 channels, multipliers [1, 1, 2, 2, 4], 8192 codes, 512 px.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { VqganTokenizerMixin, VqTokenMixin, type VqganConfig, type VqVocab } from '@vlmix/mixins';
import { baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** 32-px synthetic images, two downsamplings: an 8x8 code grid (the toy VQ-VAE's grid). */
export const CHAMELEON_TINY_VQGAN: VqganConfig = {
  baseChannels: 16, channelMultiplier: [1, 2, 2], numResBlocks: 1, latentChannels: 16, embedDim: 16, numEmbeddings: 128,
  resolution: 32, attnResolutions: [], groups: 8,
};

export function buildChameleon(tok: Tokenizer, opts: RecipeOptions & { imageLoss?: boolean } = {}): Vlm {
  const cfg = { ...CHAMELEON_TINY_VQGAN, seed: opts.seed ?? 0 };
  const model = baseLm(tok, opts, cfg.numEmbeddings);
  // named 'vq': pretrainImageTokenizer trains the parameters of component 'vq'
  const vae = model.addMixin('vq', new VqganTokenizerMixin({ vqgan: cfg })).vae;
  const grid = cfg.resolution / vae.factor;
  const vocab: VqVocab = { codeOffset: tok.vocabSize, codebookSize: cfg.numEmbeddings, boiId: specialId(tok, '<boi>'), eoiId: specialId(tok, '<eoi>') };
  model.addMixin('vq-tokens', new VqTokenMixin({ vocab, tokensPerImage: grid * grid }));
  for (const p of model.params.list()) if (p.component === 'vq') { p.trainable = false; p.variable.trainable = false; }
  finish(model, { ...opts, freeze: opts.freeze === 'connector' ? 'all' : opts.freeze }, []);
  return new Vlm({
    type: 'D', model, tokenizer: tok, imageSize: cfg.resolution, imageTokens: grid * grid, usesPixels: false,
    vq: { vae, vocab }, imageLoss: opts.imageLoss ?? true,
    description: `Chameleon (D): VQGAN (${cfg.numEmbeddings} codes, ${grid}x${grid} grid, ChameleonVQVAE names) -> <boi> codes <eoi> in one vocabulary`,
  });
}

export const chameleon: VlmPreset = {
  name: 'chameleon', description: 'Chameleon (type D): VQGAN image tokenizer (HF ChameleonVQVAE names + taming decoder) -> image codes in the LM vocabulary', build: buildChameleon,
};
