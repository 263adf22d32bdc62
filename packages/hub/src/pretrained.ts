/**
 * A Hugging Face language-model folder in one call: config.json + model.safetensors (or the sharded
 * model.safetensors.index.json) -> a vlmix Model with those weights, plus the folder's tokenizer and
 * chat template when it has them.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { loadWeightMap, openSafetensorsFolder, pretrainedSpec, type Model, type PretrainedArch, type TransformerConfigInput } from '@vlmix/core';
import { checkpointRows, readJsonFile, type PretrainedSource } from './files.js';
import { loadTokenizer, type HfTokenizer } from './tokenizer.js';
import { loadChatTemplate, type ChatTemplate } from './chat-template.js';
import { loadLlava, type PretrainedLlava } from './llava.js';
import { loadVisionTower, VISION_MODEL_TYPES, type PretrainedVisionTower } from './vision.js';

export interface LoadPretrainedOptions {
  /** Also load tokenizer.json (+ tokenizer_config.json) when present. Default true. */
  tokenizer?: boolean;
}

export interface PretrainedLM {
  kind: 'causal-lm';
  arch: PretrainedArch;
  model: Model;
  /** The vlmix config the model was built with (all sizes from config.json). */
  config: TransformerConfigInput;
  /** config.json as read. */
  hfConfig: Record<string, unknown>;
  /** The folder's tokenizer (tokenizer.json), or null when it has none or `tokenizer: false`. */
  tokenizer: HfTokenizer | null;
  /** tokenizer_config.json's chat_template (or chat_template.jinja), or null. */
  chatTemplate: ChatTemplate | null;
  /** Checkpoint tensors dropped on purpose (documented buffers, a tied head). */
  skipped: string[];
  /** Where it was loaded from, the weight map it was loaded through and the checkpoint's row counts (savePretrained). */
  source: PretrainedSource;
}

/** What a Hugging Face folder holds, by `kind`. */
export type Pretrained = PretrainedLM | PretrainedVisionTower | PretrainedLlava;
export type PretrainedKind = Pretrained['kind'];

/**
 * Loads a Hugging Face folder by its config.json's model_type: a language model ('causal-lm':
 * llama, qwen2, gpt2, nanoGPT; see loadPretrainedLM), a vision tower ('vision-tower': clip_vision_model,
 * clip, siglip_vision_model, siglip; see loadVisionTower) or a LLaVA checkpoint ('llava'; see loadLlava).
 * Narrow the result by `kind`, or call the loader of the kind you expect.
 */
export function loadPretrained(dir: string, opts: LoadPretrainedOptions = {}): Pretrained {
  if (!existsSync(dir)) throw new Error(`loadPretrained: folder ${dir} does not exist`);
  const mt = String(readJsonFile(dir, 'config.json').model_type);
  if (mt === 'llava') return loadLlava(dir, opts);
  if (mt in VISION_MODEL_TYPES) return loadVisionTower(dir);
  return loadPretrainedLM(dir, opts);
}

/**
 * Loads a language model from a Hugging Face folder (LLaMA / SmolLM / TinyLlama, Qwen2, GPT-2 as
 * GPT2LMHeadModel or the hub's bare GPT2Model names, nanoGPT): sizes from config.json, weights from
 * safetensors (F32, BF16 and F16 all load as float32, exactly), read tensor by tensor. Every
 * checkpoint tensor must map to a vlmix parameter or be on the documented skip list, and every
 * parameter must be loaded; otherwise nothing is loaded and the error lists the names.
 */
export function loadPretrainedLM(dir: string, opts: LoadPretrainedOptions = {}): PretrainedLM {
  if (!existsSync(dir)) throw new Error(`loadPretrained: folder ${dir} does not exist`);
  const hfConfig = readJsonFile(dir, 'config.json');
  const spec = pretrainedSpec(hfConfig);
  const file = openSafetensorsFolder(dir);
  const model = spec.create();
  try {
    const weightMap = spec.weightMap(file.names());
    const { skipped } = loadWeightMap(model, weightMap, file, { where: `loadPretrained(${dir})` });
    const withTokenizer = (opts.tokenizer ?? true) && existsSync(join(dir, 'tokenizer.json'));
    return {
      kind: 'causal-lm',
      arch: spec.arch,
      model,
      config: spec.config,
      hfConfig,
      tokenizer: withTokenizer ? loadTokenizer(dir) : null,
      chatTemplate: loadChatTemplate(dir),
      skipped,
      source: { dir, weightMap, rows: checkpointRows(file) },
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}
