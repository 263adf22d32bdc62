/**
 * The fusion presets. They live in core's one preset registry (registerPreset): each entry carries
 * its vision-language recipe (`vlm`), so `vlmix inspect`, `vlmix train --help` and trainVlm see the
 * built-in tiny presets and any registered with registerVlmPreset alike.
 */
import { fail, listPresets, registerPreset, type Preset } from '@vlmix/core';
import type { Tokenizer } from '@vlmix/data';
import type { RecipeOptions } from './common.js';
import { qaTokenizer } from './tokenizer.js';
import { buildTypeA } from './type-a.js';
import { buildTypeB } from './type-b.js';
import { buildTypeC } from './type-c.js';
import { buildTypeD } from './type-d.js';
import { baseLm } from './common.js';
import { Vlm } from './vlm.js';

/** A vision-language recipe with a name: what trainVlm, loadRun and the CLI build. */
export interface VlmPreset {
  name: string;
  description: string;
  /** Peak learning rate the preset was tuned with on the synthetic set (default 1e-3 when absent). */
  lr?: number;
  build(tok: Tokenizer, opts: RecipeOptions): Vlm;
  /** Its text tokenizer (default: presetTokenizer(), the synthetic-QA BPE). Must be deterministic. */
  tokenizer?: () => Tokenizer;
}

const textOnly = (tok: Tokenizer, opts: RecipeOptions) =>
  new Vlm({ type: 'LM', model: baseLm(tok, opts), tokenizer: tok, imageSize: 32, imageTokens: 0, usesPixels: false, description: 'text-only LM baseline (no image): answers at chance' });

/** The built-in presets (registered below). */
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

/** A registry entry that is a fusion preset. */
interface VlmEntry extends Preset {
  readonly vlm: VlmPreset;
}

function isVlmEntry(p: Preset): p is VlmEntry {
  return typeof (p as Partial<VlmEntry>).vlm?.build === 'function';
}

/** Builds a preset's Vlm with its own tokenizer. */
export function buildVlm(preset: VlmPreset, opts: RecipeOptions = {}): Vlm {
  const vlm = preset.build(preset.tokenizer?.() ?? presetTokenizer(), opts);
  vlm.preset = { name: preset.name, options: opts };
  return vlm;
}

/**
 * Registers a fusion preset in the one preset registry: it then shows up in `vlmix train --help`,
 * `vlmix inspect` (its model), createModel, getVlmPreset and trainVlm('<name>'). Names are unique.
 */
export function registerVlmPreset(p: VlmPreset): void {
  if (!p || typeof p.name !== 'string' || !p.name || typeof p.build !== 'function') fail(`registerVlmPreset: expected {name, description, build(tokenizer, options)}, got ${JSON.stringify(p)}`);
  const entry: VlmEntry = { name: p.name, description: p.description, create: (o = {}) => buildVlm(p, { seed: o.seed }).model, vlm: p };
  registerPreset(entry);
}

/** Every registered fusion preset (built-in ones first, then in registration order). */
export function listVlmPresets(): VlmPreset[] {
  return listPresets().filter(isVlmEntry).map((e) => e.vlm);
}

export function getVlmPreset(name: string): VlmPreset {
  const p = listPresets().find((x) => x.name === name);
  if (p && isVlmEntry(p)) return p.vlm;
  const names = listVlmPresets().map((x) => x.name).join(', ');
  if (p) fail(`'${name}' is a language-model preset, not a fusion preset; fusion presets: ${names}`);
  return fail(`unknown fusion preset '${name}'; available: ${names}`);
}

export function createVlm(name: string, opts: RecipeOptions = {}): Vlm {
  return buildVlm(getVlmPreset(name), opts);
}

for (const p of VLM_PRESETS) registerVlmPreset(p);
