/**
 * Vision towers from Hugging Face folders: CLIPVisionModel, CLIPModel (its vision part), SiglipVisionModel
 * and SiglipModel (its vision part) -> a vlmix ViT encoder (`VitEncoder`, HF's vision_model.* names) with
 * the checkpoint's weights, sizes from config.json, and the folder's image processor.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import {
  checkWeightMap, fail, hfBool, hfInt, hfNumber, hfString, openSafetensorsFolder, ParamStore, shapeStr,
  type HfConfig, type Model, type SafetensorsFile, type WeightMap, type WeightSource,
} from '@vlmix/core';
import { VisionEncoderMixin, VitEncoder, type ResolvedVitConfig, type VitActivation, type VitConfig, type VitFeatureOptions } from '@vlmix/mixins';
import { readJsonFile } from './files.js';
import { loadImageProcessor, type ImageProcessor } from './image-processor.js';

export type VisionArch = 'clip' | 'siglip';

/** model_type -> family, and whether the vision settings sit in `vision_config` (a two-tower model). */
export const VISION_MODEL_TYPES: Readonly<Record<string, { arch: VisionArch; nested: boolean; hfClass: string }>> = {
  clip_vision_model: { arch: 'clip', nested: false, hfClass: 'CLIPVisionModel' },
  clip: { arch: 'clip', nested: true, hfClass: 'CLIPModel' },
  siglip_vision_model: { arch: 'siglip', nested: false, hfClass: 'SiglipVisionModel' },
  siglip: { arch: 'siglip', nested: true, hfClass: 'SiglipModel' },
};

const ACTIVATIONS: Record<string, VitActivation> = { quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh' };

/**
 * A CLIPVisionConfig / SiglipVisionConfig (config.json, or its `vision_config`) -> vlmix ViT config.
 * Absent fields take the transformers config class's defaults.
 */
export function vitConfigFromHF(vc: HfConfig, arch: VisionArch, where = 'config.json'): VitConfig {
  const clip = arch === 'clip';
  const act = hfString(vc, 'hidden_act', clip ? 'quick_gelu' : 'gelu_pytorch_tanh', where);
  const activation = ACTIVATIONS[act];
  if (!activation) fail(`${where}: "hidden_act" = ${JSON.stringify(act)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return {
    imageSize: hfInt(vc, 'image_size', 224, where),
    patchSize: hfInt(vc, 'patch_size', clip ? 32 : 16, where),
    hiddenSize: hfInt(vc, 'hidden_size', 768, where),
    numLayers: hfInt(vc, 'num_hidden_layers', 12, where),
    numHeads: hfInt(vc, 'num_attention_heads', 12, where),
    intermediateSize: hfInt(vc, 'intermediate_size', 3072, where),
    numChannels: hfInt(vc, 'num_channels', 3, where),
    layerNormEps: hfNumber(vc, 'layer_norm_eps', clip ? 1e-5 : 1e-6, where),
    activation,
    classToken: clip,
    patchBias: !clip,
    preLayerNorm: clip,
    postLayerNorm: true,
    pooling: clip ? 'cls' : hfBool(vc, 'vision_use_head', true, where) ? 'map' : 'none',
  };
}

/** The vision config of a folder's config.json (top level or `vision_config`) and its family. */
export function visionConfigOf(cfg: HfConfig, where = 'config.json'): { arch: VisionArch; hfClass: string; vision: HfConfig } {
  const t = VISION_MODEL_TYPES[String(cfg.model_type)];
  if (!t) fail(`${where}: "model_type" = ${JSON.stringify(cfg.model_type)} is not a supported vision tower (supported: ${Object.keys(VISION_MODEL_TYPES).join(', ')})`);
  const vision = t.nested ? cfg.vision_config : cfg;
  if (!vision || typeof vision !== 'object') fail(`${where}: "vision_config" must be an object for model_type ${JSON.stringify(cfg.model_type)}`);
  return { arch: t.arch, hfClass: t.hfClass, vision: vision as HfConfig };
}

/**
 * The weight map of a vision tower whose tensors sit under `prefix` (`vision_model.` in CLIP/SigLIP
 * folders, `vision_tower.vision_model.` in LLaVA's) onto parameters named `<target><HF local name>`.
 * `others` are reference tensors outside the tower that the folder holds and vlmix drops on purpose.
 */
export function visionTowerWeightMap(params: readonly string[], target: string, prefix: string, source: string, others: WeightMap['skip'] = []): WeightMap {
  const targets = new Map<string, WeightSource>();
  for (const n of params) if (n.startsWith(target)) targets.set(n, { from: prefix + n.slice(target.length) });
  return {
    source,
    targets,
    skip: [{ test: (n) => n === `${prefix}embeddings.position_ids`, why: `${prefix}embeddings.position_ids (a buffer: positions are 0..N-1)` }, ...others],
  };
}

const TWO_TOWER_SKIPS: Record<VisionArch, WeightMap['skip']> = {
  clip: [{ test: (n) => n.startsWith('text_model.') || ['text_projection.weight', 'logit_scale'].includes(n), why: 'CLIPModel text_model.*, text_projection, logit_scale (only the vision side is loaded)' }],
  siglip: [{ test: (n) => n.startsWith('text_model.') || ['logit_scale', 'logit_bias'].includes(n), why: 'SiglipModel text_model.*, logit_scale, logit_bias (only the vision tower is loaded)' }],
};

/**
 * Assigns `map` from `file` into `params` (any name -> variable lookup): names checked, then every shape,
 * all before the first assignment; tensor by tensor. Returns the reference tensors skipped on purpose.
 */
export function loadMapInto(lookup: (name: string) => tf.Variable | null, map: WeightMap, file: SafetensorsFile, where: string): string[] {
  const skipped = checkWeightMap(map, file.names(), where);
  const problems: string[] = [];
  for (const [target, src] of map.targets) {
    if (!('from' in src)) fail(`${where}: ${target}: only direct copies are supported here`);
    const v = lookup(target);
    const got = file.get(src.from).shape;
    if (!v) problems.push(`${target}: not a parameter (from ${src.from})`);
    else if (v.shape.length !== got.length || v.shape.some((d, i) => d !== got[i])) problems.push(`${target}: expected ${shapeStr(v.shape)}, the checkpoint gives ${shapeStr(got)} (from ${src.from})`);
  }
  if (problems.length) fail(`${where}: ${problems.length} problem(s); nothing was loaded:\n  ${problems.join('\n  ')}`);
  for (const [target, src] of map.targets) {
    const from = (src as { from: string }).from;
    const t = tf.tensor(file.toFloat32(from), file.get(from).shape, 'float32');
    lookup(target)!.assign(t);
    t.dispose();
  }
  return skipped;
}

export interface VisionTowerOutput {
  /** HF last_hidden_state [B, N(+1), C] (SigLIP: after post_layernorm). */
  lastHiddenState: tf.Tensor;
  /** HF pooler_output [B, C] (CLIP: post_layernorm(CLS); SigLIP: the attention-pooling head), or null. */
  poolerOutput: tf.Tensor | null;
  /** hidden_states when asked: embeddings, then each layer. */
  hiddenStates?: tf.Tensor[];
  /** CLIP's image_embeds = visual_projection(pooler_output) [B, projection_dim], when the folder has the projection. */
  imageEmbeds?: tf.Tensor;
}

export interface PretrainedVisionTower {
  kind: 'vision-tower';
  arch: VisionArch;
  /** The HF class the folder holds (CLIPVisionModel, CLIPModel, SiglipVisionModel, SiglipModel). */
  hfClass: string;
  /** The ViT with the checkpoint's weights; parameters are `vision_model.<HF name>` in `params`. */
  encoder: VitEncoder;
  params: ParamStore;
  config: ResolvedVitConfig;
  /** CLIP's `visual_projection.weight` [projection_dim, C] (CLIPModel, CLIPVisionModelWithProjection), else null. */
  visualProjection: tf.Variable | null;
  hfConfig: Record<string, unknown>;
  /** preprocessor_config.json's processor, or null when the folder has none. */
  imageProcessor: ImageProcessor | null;
  skipped: string[];
  /** HF's CLIPVisionModel / SiglipVisionModel forward on pixel_values [B, 3, H, W]. */
  forward(pixels: tf.Tensor, opts?: { outputHiddenStates?: boolean }): VisionTowerOutput;
  /**
   * Adds the tower to `model` as a VisionEncoderMixin named `name` (default 'vision') with these weights
   * (copied), selecting features as `features` says (LLaVA's defaults: hidden_states[-2], patches only).
   */
  addTo(model: Model, name?: string, features?: VitFeatureOptions): VisionEncoderMixin;
  dispose(): void;
}

export interface LoadVisionTowerOptions {
  /**
   * Accept images of other sizes by resizing the position table (bicubic), as HF's forward argument
   * `interpolate_pos_encoding=True`. Default false: other sizes are an error naming the expected one.
   */
  interpolatePositions?: boolean;
}

/** Loads a CLIP or SigLIP vision tower from a Hugging Face folder (config.json + safetensors). */
export function loadVisionTower(dir: string, opts: LoadVisionTowerOptions = {}): PretrainedVisionTower {
  if (!existsSync(dir)) fail(`loadVisionTower: folder ${dir} does not exist`);
  const where = `loadVisionTower(${dir})`;
  const hfConfig = readJsonFile(dir, 'config.json');
  const { arch, hfClass, vision } = visionConfigOf(hfConfig, `${dir}/config.json`);
  const config: VitConfig = {
    ...vitConfigFromHF(vision, arch, `${dir}/config.json${VISION_MODEL_TYPES[String(hfConfig.model_type)]!.nested ? ' vision_config' : ''}`),
    interpolatePositions: opts.interpolatePositions ?? false,
  };
  const file = openSafetensorsFolder(dir);
  const params = new ParamStore('vision-tower');
  try {
    const encoder = new VitEncoder(params, 'vision_model.', config, { component: 'vision_model' });
    const nested = VISION_MODEL_TYPES[String(hfConfig.model_type)]!.nested;
    // CLIPModel and CLIPVisionModelWithProjection hold the image-embedding projection (no bias)
    const withProjection = arch === 'clip' && file.has('visual_projection.weight');
    const projectionDim = withProjection ? hfInt(hfConfig, 'projection_dim', 512, `${dir}/config.json`) : 0;
    const visualProjection = withProjection ? params.create('visual_projection.weight', [projectionDim, config.hiddenSize], { kind: 'constant', value: 0 }, { component: 'visual_projection' }) : null;
    const map = visionTowerWeightMap(params.names(), 'vision_model.', 'vision_model.', `HF ${hfClass}`, nested ? TWO_TOWER_SKIPS[arch] : []);
    if (visualProjection) map.targets.set('visual_projection.weight', { from: 'visual_projection.weight' });
    const skipped = loadMapInto((n) => (params.has(n) ? params.get(n) : null), map, file, where);
    const imageProcessor = existsSync(`${dir}/preprocessor_config.json`) ? loadImageProcessor(dir) : null;
    return {
      kind: 'vision-tower', arch, hfClass: hfClass === 'CLIPVisionModel' && visualProjection ? 'CLIPVisionModelWithProjection' : hfClass,
      encoder, params, config: encoder.config, visualProjection, hfConfig, imageProcessor, skipped,
      forward: (pixels, opts = {}) => {
        const out: VisionTowerOutput = encoder.output(pixels, opts);
        if (visualProjection && out.poolerOutput) out.imageEmbeds = tf.tidy(() => tf.matMul(out.poolerOutput!, visualProjection, false, true));
        return out;
      },
      addTo: (model, name = 'vision', features = {}) => {
        const mixin = model.addMixin(name, new VisionEncoderMixin({ vit: encoder.config, ...features }));
        tf.tidy(() => {
          for (const n of params.names()) {
            if (n.startsWith('vision_model.')) model.param(`${name}.${n.slice('vision_model.'.length)}`).assign(params.get(n));
          }
        });
        return mixin;
      },
      dispose: () => {
        for (const p of params.list()) p.variable.dispose();
      },
    };
  } catch (err) {
    for (const p of params.list()) p.variable.dispose();
    throw err;
  }
}
