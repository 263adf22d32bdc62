/**
 * A LLaVA-style model composed in vlmix (a LLaMA LM + 'vision' CLIP-style VisionEncoderMixin + 'projector'
 * mlp2x_gelu ProjectorMixin, e.g. the typeC presets or one built from pretrained parts) written as a HF
 * `LlavaForConditionalGeneration` folder: config.json (model_type "llava", text_config, vision_config) and
 * model.safetensors in the transformers >= 4.52 layout (model.language_model.*, model.vision_tower.*,
 * model.multi_modal_projector.*, lm_head.weight). loadLlava reads it back; so does HF code. Only the
 * weights and config: a tokenizer is the caller's (vlmix's byte tokenizer has no tokenizer.json form).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { exportWeightMap, fail, llamaWeightMap, writeFileAtomic, writeSafetensors, type Model, type RotaryOptions } from '@vlmix/core';
import type { ProjectorMixin, VisionEncoderMixin, VisionEncoderOptions } from '@vlmix/mixins';
import { llavaWeightMap } from './llava.js';

const HF_ACT: Record<string, string> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_tanh: 'gelu_pytorch_tanh' };

/** canonical (< 4.52 without language_model.) -> transformers >= 4.52 names */
function layoutName(n: string): string {
  if (n === 'lm_head.weight') return n;
  if (n.startsWith('model.')) return `model.language_model.${n.slice('model.'.length)}`;
  return `model.${n}`;
}

export interface ExportLlavaOptions {
  /** The id of the image placeholder token (config image_token_index). */
  imageTokenId: number;
  overwrite?: boolean;
}

/** Writes `dir` (see the file comment) and returns the config.json it wrote. */
export async function exportLlava(model: Model, dir: string, opts: ExportLlavaOptions): Promise<Record<string, unknown>> {
  const where = `exportLlava(${dir})`;
  for (const m of ['vision', 'projector']) {
    if (!model.hasMixin(m)) fail(`${where}: the model needs a '${m}' mixin (LLaVA = LM + 'vision' + 'projector'); it has ${model.mixinNames().join(', ')}`);
  }
  const c = model.config;
  const want: [string, unknown, unknown][] = [
    ['norm', c.norm, 'rmsnorm'], ['activation', c.activation, 'swiglu'], ['positionEmbedding', c.positionEmbedding, 'none'],
    ['bias', c.bias, false], ['qkvBias', c.qkvBias, false], ['normOrder', c.normOrder, 'pre'],
  ];
  for (const [k, v, w] of want) if (v !== w) fail(`${where}: config.${k} = ${JSON.stringify(v)}, a LLaMA text model needs ${JSON.stringify(w)}`);
  if (!model.hasMixin('rope')) fail(`${where}: the language model has no 'rope' mixin (LLaMA uses rotary positions)`);
  const rope = (model.getMixin('rope').recipeOptions ?? {}) as RotaryOptions;
  if ((rope.style ?? 'half') !== 'half' || (rope.dim != null && rope.dim !== c.headDim)) fail(`${where}: rope ${JSON.stringify(rope)}: LLaMA rotates the whole head in the rotate-half layout`);
  const visionMixin = model.getMixin<VisionEncoderMixin>('vision');
  const v = visionMixin.encoder.config;
  const vo = (visionMixin.recipeOptions ?? {}) as VisionEncoderOptions;
  const clip: [string, unknown, unknown][] = [['classToken', v.classToken, true], ['preLayerNorm', v.preLayerNorm, true], ['postLayerNorm', v.postLayerNorm, true], ['patchBias', v.patchBias, false]];
  for (const [k, x, w] of clip) if (x !== w) fail(`${where}: vision.${k} = ${JSON.stringify(x)}, a CLIP tower needs ${JSON.stringify(w)}`);
  const act = HF_ACT[v.activation] ?? fail(`${where}: vision.activation ${JSON.stringify(v.activation)} has no HF hidden_act`);
  const pc = model.getMixin<ProjectorMixin>('projector').projector.config;
  if (pc.kind !== 'mlp' || pc.mlpDepth !== 2) fail(`${where}: projector ${pc.kind}${pc.kind === 'mlp' ? ` depth ${pc.mlpDepth}` : ''}: LLaVA's multi_modal_projector is mlp2x_gelu`);
  const strategy = (vo.selectFeature ?? 'patch') === 'patch' ? 'default' : 'full';
  const patches = (v.imageSize / v.patchSize) ** 2;

  const hfConfig: Record<string, unknown> = {
    architectures: ['LlavaForConditionalGeneration'], model_type: 'llava',
    image_token_index: opts.imageTokenId, image_seq_length: patches + (strategy === 'full' ? 1 : 0),
    vision_feature_layer: vo.selectLayer ?? -2, vision_feature_select_strategy: strategy,
    projector_hidden_act: 'gelu', multimodal_projector_bias: true, tie_word_embeddings: c.tieEmbeddings, torch_dtype: 'float32',
    text_config: {
      model_type: 'llama', vocab_size: c.vocabSize, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
      num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, head_dim: c.headDim,
      max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps, rope_theta: rope.base ?? 10000, hidden_act: 'silu',
      attention_bias: false, mlp_bias: false, tie_word_embeddings: c.tieEmbeddings,
    },
    vision_config: {
      model_type: 'clip_vision_model', hidden_size: v.hiddenSize, intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numLayers, num_attention_heads: v.numHeads, image_size: v.imageSize, patch_size: v.patchSize,
      num_channels: v.numChannels, layer_norm_eps: v.layerNormEps, hidden_act: act,
    },
  };
  const map = llavaWeightMap(model, llamaWeightMap({ numLayers: c.numLayers, tied: c.tieEmbeddings, qkvBias: false, bias: false }));
  const missing = model.params.names().filter((n) => !map.targets.has(n));
  if (missing.length) {
    fail(`${where}: ${missing.length} parameter(s) have no LLaVA name (${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''}); ` +
      `fold adapters in first (LoraMixin.mergeAndUnload()) or remove the mixins that added them`);
  }
  const held = existsSync(dir) ? readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')) : [];
  if (held.length && !opts.overwrite) fail(`${where}: the folder already holds a model (${held.join(', ')}); pass { overwrite: true } to replace it`);
  mkdirSync(dir, { recursive: true });
  for (const f of held) rmSync(join(dir, f));
  // fused q/k/v split back into q_proj (heads x headDim rows) and k_proj / v_proj (kv heads x headDim)
  const rowsOf = (src: string) => /\.q_proj\.(weight|bias)$/.test(src) ? c.numHeads * c.headDim
    : /\.(k|v)_proj\.(weight|bias)$/.test(src) ? c.numKvHeads * c.headDim : undefined;
  const tensors = exportWeightMap(model, map, rowsOf);
  try {
    const named = Object.fromEntries([...tensors].map(([n, t]) => [layoutName(n), t]));
    await writeFileAtomic(join(dir, 'model.safetensors'), writeSafetensors(named, { metadata: { format: 'pt' } }));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);
  return hfConfig;
}
