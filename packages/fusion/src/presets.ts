/** The tiny fusion presets (`vlmix inspect typeA-tiny`, `vlmix train typeC-tiny`, the demo). */
import { fail, registerPreset } from '@vlmix/core';
import type { Tokenizer } from '@vlmix/data';
import type { RecipeOptions } from './common.js';
import { qaTokenizer } from './tokenizer.js';
import { buildTypeA } from './type-a.js';
import { buildTypeB } from './type-b.js';
import { buildTypeC } from './type-c.js';
import { buildTypeD } from './type-d.js';
import { baseLm } from './common.js';
import { Vlm } from './vlm.js';

export interface VlmPreset {
  name: string;
  description: string;
  /** Peak learning rate the preset was tuned with on the synthetic set (default 1e-3 when absent). */
  lr?: number;
  build(tok: Tokenizer, opts: RecipeOptions): Vlm;
}

const textOnly = (tok: Tokenizer, opts: RecipeOptions) =>
  new Vlm({ type: 'LM', model: baseLm(tok, opts), tokenizer: tok, imageSize: 32, imageTokens: 0, usesPixels: false, description: 'text-only LM baseline (no image): answers at chance' });

export const VLM_PRESETS: VlmPreset[] = [
  // lr 5e-4: at 1e-3 position questions stall near 75% for thousands of steps (bench/results/demo-*/).
  { name: 'typeA-tiny', description: 'Type A (Flamingo): ViT -> Perceiver resampler -> gated cross-attention in every layer of a tiny LLaMA', lr: 5e-4, build: buildTypeA },
  { name: 'typeB-tiny', description: 'Type B (CogVLM): ViT -> MLP projector -> image tokens; visual-expert QKV/FFN in every layer', build: buildTypeB },
  { name: 'typeC-tiny', description: 'Type C (LLaVA): ViT -> mlp2x_gelu projector -> embeddings at <image> placeholders', build: (t, o) => buildTypeC(t, o) },
  { name: 'typeC-qformer-tiny', description: 'Type C (BLIP-2): ViT -> Q-Former (8 queries) -> embeddings at <image> placeholders', build: (t, o) => buildTypeC(t, { ...o, connector: 'qformer' }) },
  { name: 'typeD-tiny', description: 'Type D (Chameleon): VQ-VAE codes as tokens of one vocabulary with text', build: buildTypeD },
  { name: 'lm-tiny', description: 'Text-only LLaMA baseline on the QA text (cannot see the image)', build: textOnly },
];

let tokenizer: Tokenizer | null = null;
/** The presets' tokenizer (deterministic; built once per process). */
export function presetTokenizer(): Tokenizer {
  tokenizer ??= qaTokenizer();
  return tokenizer;
}

export function getVlmPreset(name: string): VlmPreset {
  const p = VLM_PRESETS.find((x) => x.name === name);
  if (!p) fail(`unknown fusion preset '${name}'; available: ${VLM_PRESETS.map((x) => x.name).join(', ')}`);
  return p;
}

export function createVlm(name: string, opts: RecipeOptions = {}): Vlm {
  return getVlmPreset(name).build(presetTokenizer(), opts);
}

for (const p of VLM_PRESETS) {
  registerPreset({ name: p.name, description: p.description, create: (o = {}) => createVlm(p.name, { seed: o.seed }).model });
}
