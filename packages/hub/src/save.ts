/**
 * Writing a model loaded from a Hugging Face folder back in that folder's own format: config.json,
 * model.safetensors under the reference names (the inverse of the weight map it was loaded through) and
 * the folder's tokenizer, chat template and preprocessing files. Fine-tune, save, and the folder loads
 * again with loadPretrained (or with HF transformers: same names and config). Adapters must be folded in
 * first (LoraMixin.mergeAndUnload()): every parameter has to have a reference name.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { exportWeightMap, fail, writeFileAtomic, writeSafetensors } from '@vlmix/core';
import type { PretrainedLlava } from './llava.js';
import type { PretrainedLM } from './pretrained.js';

/** Files of a folder that are not weights and that savePretrained carries over as they are. */
export const COMPANION_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.json', 'chat_template.jinja',
  'preprocessor_config.json', 'processor_config.json', 'generation_config.json',
];

export interface SavePretrainedOptions {
  /** Replace a folder that already holds a model (config.json / safetensors). Default false: an error. */
  overwrite?: boolean;
}

export async function savePretrained(p: PretrainedLM | PretrainedLlava, dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
  const { model, source } = p;
  const where = `savePretrained(${dir})`;
  const mapped = new Set(source.weightMap.targets.keys());
  const extra = model.params.names().filter((n) => !mapped.has(n));
  if (extra.length) {
    fail(`${where}: ${extra.length} parameter(s) have no name in ${source.weightMap.source} (${extra.slice(0, 4).join(', ')}${extra.length > 4 ? ', ...' : ''}); ` +
      `fold adapters in first (LoraMixin.mergeAndUnload()) or remove the mixins that added them (${model.mixinNames().join(', ')})`);
  }
  const held = existsSync(dir) ? readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')) : [];
  if (held.length && !opts.overwrite) fail(`${where}: the folder already holds a model (${held.join(', ')}); pass { overwrite: true } to replace it`);
  mkdirSync(dir, { recursive: true });
  for (const f of held) rmSync(join(dir, f));
  const tensors = exportWeightMap(model, source.weightMap, (n) => source.rows.get(n));
  try {
    await writeFileAtomic(join(dir, 'model.safetensors'), writeSafetensors(Object.fromEntries([...tensors].map(([n, t]) => [source.exportName?.(n) ?? n, t])), { metadata: { format: 'pt' } }));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  for (const f of COMPANION_FILES) if (source.dir !== dir && existsSync(join(source.dir, f))) copyFileSync(join(source.dir, f), join(dir, f));
  // config.json last: a folder without it is not a model yet (an interrupted save is not loadable).
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify({ ...p.hfConfig, torch_dtype: 'float32' }, null, 2)}\n`);
}
