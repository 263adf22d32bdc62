/**
 * LLaVA-style composite folders (HF `LlavaForConditionalGeneration`: config.json with vision_config +
 * text_config, the projector, vision_feature_layer, vision_feature_select_strategy, image_token_index)
 * -> a vlmix type-C model assembled from mixins: the LLaMA / Qwen2 language model, a VisionEncoderMixin
 * ('vision', the CLIP or SigLIP tower) and a ProjectorMixin ('projector', mlp2x_gelu) writing the
 * projected patches at the image-token positions.
 *
 * Checkpoint layouts (both read):
 *   transformers < 4.52   vision_tower.vision_model.*, multi_modal_projector.linear_{1,2}.*,
 *                         language_model.model.*, language_model.lm_head.weight
 *   transformers >= 4.52  model.vision_tower.vision_model.*, model.multi_modal_projector.*,
 *                         model.language_model.*, lm_head.weight
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  fail, loadWeightMap, openSafetensorsFolder, pretrainedSpec,
  type HfConfig, type Model, type PretrainedArch, type SafetensorsFile, type TransformerConfigInput, type WeightMap, type WeightSource,
} from '@vlmix/core';
import { expandImagePlaceholders, ProjectorMixin, VisionEncoderMixin, type ResolvedVitConfig } from '@vlmix/mixins';
import { checkpointRows, readJsonFile, type PretrainedSource } from './files.js';
import { loadChatTemplate, type ChatMessage, type ChatTemplate, type RenderOptions } from './chat-template.js';
import { loadImageProcessor, type ImageProcessor } from './image-processor.js';
import { loadTokenizer, type HfTokenizer } from './tokenizer.js';
import { VISION_MODEL_TYPES, visionTowerWeightMap, vitConfigFromHF } from './vision.js';

/** transformers' LlamaConfig defaults, for the partial text_config of LLaVA releases (llava-1.5 lists a few fields). */
const LLAMA_DEFAULTS: HfConfig = {
  model_type: 'llama', vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32,
  num_attention_heads: 32, max_position_embeddings: 2048, rms_norm_eps: 1e-6,
};

export interface PretrainedLlava {
  kind: 'llava';
  /** LM + 'vision' (VisionEncoderMixin) + 'projector' (ProjectorMixin); forward({ inputIds, media: { pixels } }). */
  model: Model;
  /** The language model's family and vlmix config (from text_config). */
  arch: PretrainedArch;
  config: TransformerConfigInput;
  /** The vision tower's config (from vision_config). */
  vision: ResolvedVitConfig;
  hfConfig: Record<string, unknown>;
  /** image_token_index: the id the projected image tokens replace. */
  imageTokenId: number;
  /** Image tokens per image (patches, + the CLS token for strategy "full"). */
  imageTokens: number;
  tokenizer: HfTokenizer | null;
  chatTemplate: ChatTemplate | null;
  imageProcessor: ImageProcessor | null;
  skipped: string[];
  /** Where it was loaded from and how (savePretrained writes the folder back). */
  source: PretrainedSource;
  /** Replaces each image token in `ids` by `imageTokens` copies (what LlavaProcessor does to the prompt). */
  expandImageTokens(ids: number[]): number[];
  /** Chat template -> ids (structured content: {type: 'image'} | {type: 'text', text}) with image tokens expanded. */
  encodeChat(messages: ChatMessage[], opts?: RenderOptions): number[];
}

/** Reference names -> the names used below (the < 4.52 layout without `language_model.`), or null. */
function canonicalName(n: string): string | null {
  for (const [from, to] of [
    ['language_model.', ''], ['model.language_model.', 'model.'], ['vision_tower.', 'vision_tower.'], ['model.vision_tower.', 'vision_tower.'],
    ['multi_modal_projector.', 'multi_modal_projector.'], ['model.multi_modal_projector.', 'multi_modal_projector.'],
  ] as const) {
    if (n.startsWith(from)) return to + n.slice(from.length);
  }
  return n === 'lm_head.weight' ? n : null;
}

/** The checkpoint seen under canonical names (one layout for both transformers versions). */
function canonicalView(file: SafetensorsFile, where: string): SafetensorsFile & { realName(n: string): string } {
  const real = new Map<string, string>();
  const stray: string[] = [];
  for (const n of file.names()) {
    const c = canonicalName(n);
    if (c === null) stray.push(n);
    else real.set(c, n);
  }
  if (stray.length) fail(`${where}: tensors outside language_model / vision_tower / multi_modal_projector (${stray.length}): ${stray.slice(0, 8).join(', ')}${stray.length > 8 ? ', ...' : ''}`);
  const r = (n: string) => real.get(n) ?? n;
  return {
    realName: r,
    metadata: file.metadata,
    names: () => [...real.keys()],
    has: (n) => real.has(n),
    get: (n) => file.get(r(n)),
    toFloat32: (n) => file.toFloat32(r(n)),
    toInt32: (n) => file.toInt32(r(n)),
    toTensor: (n) => file.toTensor(r(n)),
  };
}

function intField(cfg: HfConfig, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${where}: "${key}": expected an integer, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The LLaVA map under canonical names (the < 4.52 layout without `language_model.`): the LM's map, the
 * 'vision' tower under `vision_tower.vision_model.`, the 'projector' as `multi_modal_projector.linear_{1,2}`.
 */
export function llavaWeightMap(model: Model, lm: WeightMap): WeightMap {
  const vision = visionTowerWeightMap(model.params.names(), 'vision.', 'vision_tower.vision_model.', 'vision tower');
  const targets = new Map<string, WeightSource>([...lm.targets, ...vision.targets]);
  for (const [k, i] of [[1, 0], [2, 2]] as const) {
    for (const s of ['weight', 'bias']) targets.set(`projector.mm_projector.${i}.${s}`, { from: `multi_modal_projector.linear_${k}.${s}` });
  }
  return { source: 'HF LlavaForConditionalGeneration', targets, skip: [...lm.skip, ...vision.skip] };
}

/** Loads a LlavaForConditionalGeneration folder (see the file comment). */
export function loadLlava(dir: string, opts: { tokenizer?: boolean } = {}): PretrainedLlava {
  if (!existsSync(dir)) fail(`loadLlava: folder ${dir} does not exist`);
  const where = `loadLlava(${dir})`;
  const w = `${dir}/config.json`;
  const hfConfig = readJsonFile(dir, 'config.json');
  if (hfConfig.model_type !== 'llava') fail(`${w}: "model_type" = ${JSON.stringify(hfConfig.model_type)}, expected "llava"`);
  const vc = (hfConfig.vision_config ?? { model_type: 'clip_vision_model' }) as HfConfig;
  const vt = VISION_MODEL_TYPES[String(vc.model_type ?? 'clip_vision_model')];
  if (!vt || vt.nested) fail(`${w}: vision_config "model_type" = ${JSON.stringify(vc.model_type)} is not supported (clip_vision_model, siglip_vision_model)`);
  const vit = vitConfigFromHF(vc, vt.arch, `${w} vision_config`);
  const textConfig = { ...LLAMA_DEFAULTS, ...(hfConfig.text_config as HfConfig | undefined) };
  const layer = hfConfig.vision_feature_layer ?? -2;
  if (typeof layer !== 'number' || !Number.isInteger(layer)) fail(`${w}: "vision_feature_layer" = ${JSON.stringify(layer)} is not supported (one layer index; lists of layers are not)`);
  const strategy = hfConfig.vision_feature_select_strategy ?? 'default';
  if (strategy !== 'default' && strategy !== 'full') fail(`${w}: "vision_feature_select_strategy": expected "default" or "full", got ${JSON.stringify(strategy)}`);
  if (strategy === 'default' && !vit.classToken) fail(`${w}: "vision_feature_select_strategy" = "default" drops the first token, but a ${vt.arch} tower has no class token (use "full")`);
  const act = hfConfig.projector_hidden_act ?? 'gelu';
  if (act !== 'gelu') fail(`${w}: "projector_hidden_act" = ${JSON.stringify(act)} is not supported (only "gelu")`);
  if (hfConfig.multimodal_projector_bias === false) fail(`${w}: "multimodal_projector_bias" = false is not supported`);
  const imageTokenId = intField({ image_token_index: 32000, ...hfConfig }, 'image_token_index', w);

  const spec = pretrainedSpec(textConfig);
  if (spec.arch !== 'llama' && spec.arch !== 'qwen2') fail(`${w}: text_config "model_type" = ${JSON.stringify(textConfig.model_type)} is not supported in LLaVA (llama, qwen2)`);
  const file = canonicalView(openSafetensorsFolder(dir), where);
  const model = spec.create();
  try {
    model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: layer, selectFeature: strategy === 'default' ? 'patch' : 'cls_patch' }));
    const projector = model.addMixin('projector', new ProjectorMixin({ imageTokenId, projector: { kind: 'mlp2x_gelu', inputSize: vit.hiddenSize } }));
    const map = llavaWeightMap(model, spec.weightMap(file.names().filter((n) => !n.startsWith('vision_tower.') && !n.startsWith('multi_modal_projector.'))));
    const { skipped } = loadWeightMap(model, map, file, { where });
    const tokenizer = (opts.tokenizer ?? true) && existsSync(join(dir, 'tokenizer.json')) ? loadTokenizer(dir) : null;
    const chatTemplate = loadChatTemplate(dir);
    const imageTokens = projector.projector.numTokens((vit.imageSize / vit.patchSize) ** 2 + (strategy === 'full' && vit.classToken ? 1 : 0));
    const declared = hfConfig.image_seq_length; // newer configs state it (LlavaProcessor's num_image_tokens)
    if (declared !== undefined && declared !== null && declared !== imageTokens) {
      fail(`${w}: "image_seq_length" = ${JSON.stringify(declared)} disagrees with vision_config (${imageTokens} image tokens: (image_size / patch_size)^2${strategy === 'full' && vit.classToken ? ' + 1' : ''})`);
    }
    const expandImageTokens = (ids: number[]) => expandImagePlaceholders([ids], imageTokenId, imageTokens)[0]!;
    return {
      kind: 'llava', model, arch: spec.arch, config: spec.config, vision: model.getMixin<VisionEncoderMixin>('vision').encoder.config, hfConfig,
      imageTokenId, imageTokens, tokenizer, chatTemplate,
      imageProcessor: existsSync(join(dir, 'preprocessor_config.json')) ? loadImageProcessor(dir) : null,
      skipped: skipped.map((n) => file.realName(n)), // the checkpoint's own names
      source: { dir, weightMap: map, rows: checkpointRows(file), exportName: file.realName }, // saved under the folder's own layout
      expandImageTokens,
      encodeChat: (messages, o = {}) => {
        if (!tokenizer || !chatTemplate) fail(`${where}: encodeChat needs tokenizer.json and a chat template in the folder`);
        return expandImageTokens(chatTemplate.encode(tokenizer, messages, o));
      },
    };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** pixel_values for a batch of images (one per row) with the folder's processor: float32 [B, 3, H, W]. */
export function pixelValues(processor: ImageProcessor, images: Parameters<ImageProcessor['preprocess']>[0][]): tf.Tensor4D {
  if (!Array.isArray(images) || images.length === 0) fail(`pixelValues: images: expected a non-empty array of RGB images, got ${Array.isArray(images) ? 'an empty array' : typeof images}`);
  const px = images.map((img) => processor.preprocess(img));
  const { width, height } = px[0]!;
  const data = new Float32Array(px.length * 3 * width * height);
  px.forEach((p, i) => {
    if (p.width !== width || p.height !== height) fail(`pixelValues: image ${i} is ${p.width}x${p.height} after preprocessing, image 0 is ${width}x${height}`);
    data.set(p.data, i * 3 * width * height);
  });
  return tf.tensor4d(data, [px.length, 3, height, width]);
}
