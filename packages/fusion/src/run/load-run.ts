/** Rebuilds a trained model from a run directory: preset + seed + recipe, then verified checkpoint weights. */
import * as tf from '@tensorflow/tfjs';
import { fail } from '@vlmix/core';
import { tokenizerFromJSON } from '@vlmix/data';
import { checkpointWeights, loadCheckpoint } from '@vlmix/train';
import { buildVlm, getVlmPreset, type VlmPreset } from '../presets.js';
import type { Vlm } from '../vlm.js';
import { readRunMeta } from './run-dir.js';

export interface LoadRunOptions {
  /** The recipe, when the run was trained with an unregistered VlmPreset (its name must match the run's). */
  preset?: VlmPreset;
  /** When the newest checkpoint fails verification and an older one is used (default: stderr). */
  onWarning?: (message: string) => void;
  /** Load NaN/Infinity weights instead of refusing them. */
  allowNonFinite?: boolean;
}

/**
 * The model of a `trainVlm` / `vlmix train --out` run, with the weights of its newest checkpoint that
 * passes verification. Errors name the run directory and what is wrong.
 */
export async function loadRun(dir: string, opts: LoadRunOptions = {}): Promise<Vlm> {
  const meta = await readRunMeta(dir);
  if (opts.preset && opts.preset.name !== meta.preset) fail(`loadRun: the run in ${dir} is preset '${meta.preset}', the preset given is '${opts.preset.name}'`);
  const vlm = buildVlm(opts.preset ?? getVlmPreset(meta.preset), { ...meta.recipe, seed: meta.seed });
  try {
    const saved = JSON.stringify(tokenizerFromJSON(meta.tokenizer).toJSON());
    if (saved !== JSON.stringify(vlm.tokenizer.toJSON())) fail(`${dir}: the run's tokenizer differs from preset '${meta.preset}''s`);
    const ck = await loadCheckpoint(dir);
    for (const w of ck.warnings) (opts.onWarning ?? ((m: string) => void process.stderr.write(`warning: ${m}\n`)))(w);
    const weights = checkpointWeights(ck);
    try {
      vlm.model.loadStateDict(weights, { strict: true, allowNonFinite: opts.allowNonFinite });
    } catch (e) {
      fail(`${dir}: checkpoint step ${ck.state.step}: ${(e as Error).message}`);
    } finally {
      tf.dispose([...weights.values()]);
    }
  } catch (e) {
    vlm.dispose();
    throw e;
  }
  return vlm;
}
