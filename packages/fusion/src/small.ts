/**
 * The small-model tier: one preset per fusion type at the size where real work starts (about 20-60 M
 * parameters: a ViT-S/16-like tower on 224-px images, 6 layers x 384; a LLaMA-style LM 8 layers x 512 with
 * its vocabulary padded to 8192). Same recipes as the tiny presets, only bigger: for benchmarks against
 * their PyTorch twins (`pnpm bench --suite small`) and for training runs that are not toys.
 */
import type { TransformerConfigInput } from '@vlmix/core';
import type { RecipeOptions } from './common.js';
import { registerVlmPreset, type VlmPreset } from './presets.js';
import { buildTypeA } from './type-a.js';
import { buildTypeB } from './type-b.js';
import { buildTypeC } from './type-c.js';
import { buildTypeD } from './type-d.js';
import type { VitConfig } from '@vlmix/mixins';

export const SMALL_LM: Partial<TransformerConfigInput> = {
  hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 4, intermediateSize: 1376, maxSeqLen: 320, vocabSize: 8192,
};

export const SMALL_VIT: Partial<VitConfig> = {
  imageSize: 224, patchSize: 16, hiddenSize: 384, numLayers: 6, numHeads: 6, intermediateSize: 1536,
};

const small = (o: RecipeOptions): RecipeOptions => ({ ...o, lm: { ...SMALL_LM, ...o.lm }, vision: { ...SMALL_VIT, ...o.vision } });

export const SMALL_PRESETS: VlmPreset[] = [
  {
    name: 'typeA-small', description: 'Type A (Flamingo) at the small tier: ViT-S/16 224 px -> Perceiver (64 latents) -> gated cross-attention every 2nd layer of an 8 x 512 LLaMA',
    lr: 3e-4, build: (t, o) => buildTypeA(t, { latents: 64, perceiverDepth: 2, everyN: 2, crossHeads: 8, crossDimHead: 64, ...small(o) }),
  },
  {
    name: 'typeB-small', description: 'Type B (CogVLM) at the small tier: ViT-S/16 224 px -> MLP projector -> 196 image tokens; visual expert in every layer of an 8 x 512 LLaMA (FFN 1024: the expert doubles the LM)',
    lr: 3e-4, build: (t, o) => buildTypeB(t, small({ ...o, lm: { intermediateSize: 1024, ...o.lm } })),
  },
  {
    name: 'typeC-small', description: 'Type C (LLaVA) at the small tier: ViT-S/16 224 px -> mlp2x_gelu -> 196 embeddings at <image> in an 8 x 512 LLaMA',
    lr: 3e-4, build: (t, o) => buildTypeC(t, small(o)),
  },
  {
    name: 'typeD-small', description: 'Type D (Chameleon) at the small tier: VQ-VAE on 224 px (4 stages, 14 x 14 = 196 codes of 1024) in the vocabulary of an 8 x 512 LLaMA',
    lr: 3e-4, build: (t, o) => buildTypeD(t, { ...o, lm: { ...SMALL_LM, ...o.lm }, imageSize: 224, vqHidden: [32, 64, 128, 128], codebookSize: 1024 }),
  },
];

for (const p of SMALL_PRESETS) registerVlmPreset(p);
