/**
 * The one registry of named presets. Packages register theirs (fusion adds typeA-tiny ... typeD-tiny,
 * with its vision-language recipe attached to the entry); `vlmix inspect`, `vlmix train --help` and
 * createModel read it, so a third-party preset registered here shows up everywhere.
 */
import type { Model } from './model.js';
import { fail } from './errors.js';
import { createGpt2 } from './models/gpt2.js';
import { createLlama } from './models/llama.js';

export interface PresetOptions {
  seed?: number | string;
}

export interface Preset {
  name: string;
  description: string;
  create(opts?: PresetOptions): Model;
}

const registry = new Map<string, Preset>();

export function registerPreset(p: Preset): void {
  if (registry.has(p.name)) fail(`registerPreset: preset '${p.name}' is already registered`);
  registry.set(p.name, p);
}

/** Removes a preset (e.g. a plugin being reloaded); returns whether it existed. */
export function unregisterPreset(name: string): boolean {
  return registry.delete(name);
}

export function listPresets(): Preset[] {
  return [...registry.values()];
}

export function getPreset(name: string): Preset {
  const p = registry.get(name);
  if (!p) fail(`unknown preset '${name}'; available presets: ${[...registry.keys()].join(', ')}`);
  return p;
}

export function createModel(preset: string, opts: PresetOptions = {}): Model {
  return getPreset(preset).create(opts);
}

registerPreset({
  name: 'gpt2-tiny',
  description: 'GPT-2 style: 2 layers, width 64, 4 heads, learned positions, LayerNorm, GELU, tied embeddings',
  create: (o = {}) => createGpt2({ vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, maxSeqLen: 128, seed: o.seed ?? 0 }),
});

registerPreset({
  name: 'llama-tiny',
  description: 'LLaMA style: 2 layers, width 64, 4 query / 2 key-value heads, RMSNorm, SwiGLU, RoPE',
  create: (o = {}) => createLlama(
    { vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 176, maxSeqLen: 128, seed: o.seed ?? 0 },
    { base: 10000 },
  ),
});
