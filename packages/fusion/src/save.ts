/**
 * Saving and loading a whole composed Vlm: the model's recipe and weights (saveModel / loadModel in
 * @vlmix/core), its tokenizer, and the wrapper's fields (fusion type, image size, placeholders, the VQ
 * vocabulary). Mixins added after the preset was built (LoRA, a frozen tower, ...) are in the recipe,
 * so the folder rebuilds the model as it was, not as the preset builds it. Per-batch media a recipe
 * computes in code (`extraMedia`: M-RoPE grids, high-res copies, tiles) is taken from the preset that
 * built the Vlm, which must be registered when the folder is loaded.
 */
import { fail, loadModel, saveModel, type Model } from '@vlmix/core';
import { tokenizerFromJSON } from '@vlmix/data';
import type { VqImageTokenizerMixin, VqVocab } from '@vlmix/mixins';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RecipeOptions } from './common.js';
import { buildVlm, getVlmPreset } from './presets.js';
import { Vlm, type FusionType } from './vlm.js';

export const VLM_TOKENIZER_FILE = 'vlmix-tokenizer.json';

interface SavedVlm {
  type: FusionType;
  imageSize: number;
  imageTokens: number;
  usesPixels: boolean;
  imageTokenTypes: boolean;
  imageLoss: boolean;
  description: string;
  /** Name of the VqImageTokenizerMixin and the vocabulary of a type D model. */
  vq?: { mixin: string; vocab: VqVocab };
  /** The preset (and options) that built it, when known. */
  preset?: { name: string; options: RecipeOptions };
  /** Whether the recipe computes per-batch media in code (then the preset is needed to load it). */
  extraMedia: boolean;
  /** Per-image token counts computed in code (any-resolution presets): taken from the preset, like extraMedia. */
  imageTokensFor?: boolean;
  textSpecials?: string[];
}

function vqMixinName(model: Model, vae: unknown): string {
  const name = model.mixinNames().find((n) => (model.getMixin(n) as Partial<VqImageTokenizerMixin>).vae === vae);
  return name ?? fail(`saveVlm: the Vlm's VQ tokenizer is not owned by a mixin of its model (mixins: ${model.mixinNames().join(', ')})`);
}

/** Writes `dir` (see the module comment); loadVlm(dir) in another process gives identical logits. */
export async function saveVlm(vlm: Vlm, dir: string, opts: { overwrite?: boolean } = {}): Promise<void> {
  const p = vlm.construction;
  const saved: SavedVlm = {
    type: p.type, imageSize: p.imageSize, imageTokens: p.imageTokens, usesPixels: p.usesPixels,
    imageTokenTypes: !!p.imageTokenTypes, imageLoss: !!p.imageLoss, description: p.description,
    ...(p.vq ? { vq: { mixin: vqMixinName(vlm.model, p.vq.vae), vocab: p.vq.vocab } } : {}),
    ...(vlm.preset ? { preset: vlm.preset } : {}),
    extraMedia: !!p.extraMedia,
    ...(p.imageTokensFor ? { imageTokensFor: true } : {}),
    ...(p.textSpecials?.length ? { textSpecials: [...p.textSpecials] } : {}),
  };
  if ((saved.extraMedia || saved.imageTokensFor) && !saved.preset) {
    fail(`saveVlm(${dir}): this Vlm computes per-batch media or token counts in code (extraMedia, imageTokensFor) and was not built from a preset, so a folder cannot rebuild it; ` +
      `register its recipe with registerVlmPreset and build it with createVlm / buildVlm`);
  }
  await saveModel(vlm.model, dir, {
    overwrite: opts.overwrite,
    meta: { vlm: saved },
    files: { [VLM_TOKENIZER_FILE]: `${JSON.stringify(vlm.tokenizer.toJSON())}\n` },
  });
}

/** Rebuilds a folder written by saveVlm / vlm.save(dir). */
export function loadVlm(dir: string, opts: { allowNonFinite?: boolean } = {}): Vlm {
  const loaded = loadModel(dir, opts);
  const model = loaded.model;
  try {
    const saved = loaded.meta.vlm as SavedVlm | undefined;
    if (!saved) fail(`loadVlm(${dir}): the folder holds a model without Vlm fields (saved with saveModel, not vlm.save); load it with loadModel`);
    let tokJson: unknown;
    try {
      tokJson = JSON.parse(readFileSync(join(dir, VLM_TOKENIZER_FILE), 'utf8'));
    } catch (e) {
      fail(`loadVlm(${dir}): cannot read ${VLM_TOKENIZER_FILE}: ${(e as Error).message}`);
    }
    const tokenizer = tokenizerFromJSON(tokJson as object);
    let extraMedia;
    let imageTokensFor;
    if (saved.extraMedia || saved.imageTokensFor) {
      // the preset's functions (they close over configs and the tokenizer, not the model)
      const donor = buildVlm(getVlmPreset(saved.preset!.name), saved.preset!.options);
      if (saved.extraMedia) extraMedia = donor.construction.extraMedia;
      if (saved.imageTokensFor) imageTokensFor = donor.construction.imageTokensFor;
      donor.dispose();
    }
    const vq = saved.vq ? { vae: model.getMixin<VqImageTokenizerMixin>(saved.vq.mixin).vae, vocab: saved.vq.vocab } : undefined;
    const vlm = new Vlm({
      type: saved.type, model, tokenizer, imageSize: saved.imageSize, imageTokens: saved.imageTokens, usesPixels: saved.usesPixels,
      imageTokenTypes: saved.imageTokenTypes, imageLoss: saved.imageLoss, description: saved.description, vq, extraMedia, imageTokensFor,
      ...(saved.textSpecials ? { textSpecials: saved.textSpecials } : {}),
    });
    if (saved.preset) vlm.preset = saved.preset;
    return vlm;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
