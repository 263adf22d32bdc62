/**
 * From a Hugging Face `config.json` to a vlmix language model and the weight map of its checkpoint.
 * `model_type` picks the family: "llama" (LLaMA, SmolLM, TinyLlama), "qwen2", "gpt2", and "nanogpt"
 * (or a config.json without model_type holding nanoGPT's model_args: block_size, n_embd, ...).
 */
import { resolveConfig, type TransformerConfigInput } from '../config.js';
import { fail } from '../errors.js';
import type { RotaryOptions } from '../positions/rope.js';
import { Model } from '../model.js';
import { gpt2ConfigFromHF, gpt2Prefix, gpt2WeightMap, nanoGptConfig } from './gpt2.js';
import type { HfConfig } from './hf-config.js';
import { createLlama, llamaConfigFromHF, llamaWeightMap } from './llama.js';
import type { WeightMap } from './weight-map.js';

export type PretrainedArch = 'llama' | 'qwen2' | 'gpt2' | 'nanogpt';
export const PRETRAINED_ARCHS: readonly PretrainedArch[] = ['llama', 'qwen2', 'gpt2', 'nanogpt'];

export interface PretrainedSpec {
  arch: PretrainedArch;
  config: TransformerConfigInput;
  /** Rotary options (LLaMA / Qwen2); absent for learned positions. */
  rope?: RotaryOptions;
  /** A fresh model of this architecture (random weights until loaded). */
  create(): Model;
  /** The weight map for a checkpoint holding these tensor names (GPT-2 prefixes are detected). */
  weightMap(checkpointNames: readonly string[]): WeightMap;
}

/** The family of a config.json (error naming model_type and the supported ones). */
export function pretrainedArch(cfg: HfConfig): PretrainedArch {
  const mt = cfg.model_type;
  if (mt === undefined && 'block_size' in cfg && 'n_embd' in cfg) return 'nanogpt';
  if (typeof mt === 'string' && (PRETRAINED_ARCHS as readonly string[]).includes(mt)) return mt as PretrainedArch;
  return fail(`config.json: "model_type" = ${JSON.stringify(mt)} is not a supported language model (supported: ${PRETRAINED_ARCHS.join(', ')}; a nanoGPT config.json holds its model_args)`);
}

/** Everything needed to build and load a language model described by an HF config.json. */
export function pretrainedSpec(cfg: HfConfig): PretrainedSpec {
  const arch = pretrainedArch(cfg);
  if (arch === 'llama' || arch === 'qwen2') {
    const { config, rope } = llamaConfigFromHF(cfg, arch);
    const resolved = resolveConfig(config);
    return {
      arch, config, rope,
      create: () => createLlama(config, rope),
      weightMap: () => llamaWeightMap({ numLayers: resolved.numLayers, tied: resolved.tieEmbeddings, qkvBias: resolved.qkvBias, bias: resolved.bias }),
    };
  }
  const config = arch === 'gpt2' ? gpt2ConfigFromHF(cfg) : nanoGptConfig(cfg);
  const resolved = resolveConfig(config);
  return {
    arch, config,
    create: () => new Model(config),
    weightMap: (names) => gpt2WeightMap({
      numLayers: resolved.numLayers,
      prefix: gpt2Prefix(names),
      layout: arch === 'gpt2' ? 'conv1d' : 'linear',
      bias: resolved.bias,
      hiddenSize: resolved.hiddenSize,
      tied: resolved.tieEmbeddings,
    }),
  };
}
