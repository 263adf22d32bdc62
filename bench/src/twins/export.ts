/**
 * Writes what the PyTorch twin of a preset (bench/reference/twins.py) needs: the vlmix model's own weights,
 * its encoded batches, the options of every mixin, the training recipe and, optionally, vlmix's per-step
 * training records. Built only on the public API: createVlm(preset), vlm.encode(samples),
 * vlm.model.stateDict(), the mixins' public options, and the Trainer of @vlmix/train.
 *
 * Directory layout (read by twins.py `load`):
 *   spec.json             {preset, type, seed, config, mixins[], recipe, batches, vlmix?}
 *   weights.safetensors   every parameter by vlmix name (F32)
 *   batches.safetensors   b<i>.inputs.<name>, b<i>.media.<name>, b<i>.targets; vlmix's host-computed
 *                         routing as b<i>.inputs.vlmix.<name> (CogVLM position ids and expert mask)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generate, RotaryMixin, writeSafetensors, type ForwardInputs, type Mixin } from '@vlmix/core';
import { makeShapesDataset } from '@vlmix/data';
import { createVlm, getVlmPreset, type QASample, type Vlm, type VlmBatch } from '@vlmix/fusion';
import {
  cogvlmPositionIds, GatedCrossAttentionMixin, PerceiverResamplerMixin, ProjectorMixin, QFormerConnectorMixin,
  VisionEncoderMixin, visionExpertMask, VisualExpertMixin, VqImageTokenizerMixin, VqTokenMixin,
  VqVae,
} from '@vlmix/mixins';
import { Trainer, warmupCosine, type WarmupCosineOptions } from '@vlmix/train';

export interface TwinRecipe {
  steps: number;
  clipNorm: number | null;
  optimizer: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number };
  schedule: Required<WarmupCosineOptions>;
  /** Names of the parameters that train (the others are frozen, e.g. type D's VQ). */
  trainable: string[];
}

export interface TwinMixin {
  name: string;
  kind: 'rope' | 'vision' | 'projector' | 'qformer' | 'perceiver' | 'xattn' | 'expert' | 'vq-tokens' | 'vq-encoder' | 'unknown';
  prefix?: string;
  options?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface TwinStepRecord {
  loss: number;
  lr: number;
  gradNorm: number;
}

export interface TwinSpec {
  preset: string;
  type: string;
  seed: number;
  config: Record<string, unknown>;
  mixins: TwinMixin[];
  recipe: TwinRecipe;
  batches: number;
  batchSize: number;
  /** vlmix's own training records on the same batches (exportTwin with train: true). */
  vlmix?: TwinStepRecord[];
  /** L2 norm of each trainable parameter's gradient of batch 0's loss at initialisation (train: true):
   *  checks every component on its own, where a loss can hide a small difference (e.g. positions). */
  vlmixGradNorms?: Record<string, number>;
  /** vlmix's greedy tokens (KV cache) for the exported prompt, at initialisation (prompt + train). */
  vlmixGenerate?: number[];
  /** The argmax per position of vlmix's inference forward over batch 0 at initialisation (train): type D's
   *  logits masked by VqTokenMixin, so the twin's forward must apply the same mask. */
  vlmixForwardArgmax?: number[][];
}

export interface TwinExportOptions {
  seed?: number;
  batchSize: number;
  batches: number;
  /** 'shapes': the synthetic visual-QA set (varied lengths, so padding); 'noise': the bench's fixed inputs. */
  samples: 'shapes' | ((vlm: Vlm, n: number) => QASample[]);
  /** Run vlmix's Trainer over the batches (one per step) and record loss, lr and grad norm per step. */
  train?: boolean;
  /** Also export the prompt of the first sample (no answer) for generation: b0.inputs.prompt_ids
   *  (and prompt_token_types, b0.media.prompt_pixels when the preset has them). */
  prompt?: boolean;
  /** With prompt and train: vlmix's greedy continuation of that many tokens (spec.vlmixGenerate). Default 8. */
  generateTokens?: number;
}

/**
 * The recipe of `vlmix train` (cli/src/experiment.ts: AdamW beta2 0.99, weight decay 0.01 on rank >= 2,
 * clipping at 1, nanoGPT warmup-cosine to lr/10) with a short schedule, so that a few steps see warmup,
 * peak and decay.
 */
export function twinRecipe(vlm: Vlm, preset: string, steps: number): TwinRecipe {
  const lr = getVlmPreset(preset).lr ?? 1e-3;
  return {
    steps,
    clipNorm: 1,
    optimizer: { lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 },
    schedule: { lr, warmupSteps: 2, totalSteps: steps + 3, minLr: lr / 10 },
    trainable: vlm.model.params.trainable().map((p) => p.name),
  };
}

/** The options of each mixin the twin rebuilds, from the mixins' public fields. */
export function describeMixins(vlm: Vlm): TwinMixin[] {
  const model = vlm.model;
  return model.mixinNames().map((name): TwinMixin => {
    const m: Mixin = model.getMixin(name);
    if (m instanceof RotaryMixin) return { name, kind: 'rope', options: { base: m.base, style: m.style, dim: m.dim } };
    if (m instanceof VisionEncoderMixin) {
      const vit = m.encoder.config;
      return {
        name, kind: 'vision', prefix: `${name}.`,
        options: { ...vit, featureLayer: m.encoder.resolveLayer(m.options.selectLayer ?? -2), selectFeature: m.options.selectFeature ?? 'patch', postNorm: !!m.options.postNorm },
      };
    }
    if (m instanceof ProjectorMixin) return { name, kind: 'projector', prefix: `${name}.`, options: { ...m.projector.config }, imageTokenId: m.imageTokenId };
    if (m instanceof QFormerConnectorMixin) return { name, kind: 'qformer', prefix: `${name}.`, options: { ...m.qformer.config }, imageTokenId: m.imageTokenId };
    if (m instanceof PerceiverResamplerMixin) return { name, kind: 'perceiver', prefix: m.prefix, options: { ...m.opts } };
    if (m instanceof GatedCrossAttentionMixin) return { name, kind: 'xattn', prefix: m.prefix, options: { ...m.options }, everyN: m.everyN, mediaTokenId: m.mediaTokenId };
    if (m instanceof VisualExpertMixin) return { name, kind: 'expert', options: { cogvlmPositions: m.cogvlmPositions } };
    // Type D's VQ encoder: pixels become code ids when the batch is encoded, before the model runs.
    if (m instanceof VqImageTokenizerMixin) return { name, kind: 'vq-encoder' };
    if (m instanceof VqTokenMixin) {
      const vae = vlm.vq?.vae instanceof VqVae ? vlm.vq.vae : undefined; // the twins mirror the toy VQ-VAE only
      // The VAE's name prefix as its parameters spell it (typeD-tiny's are 'vq..*', see the report of issue 16).
      const codebook = vae?.paramNames().find((n) => n.endsWith('quantize.embedding.weight'));
      const prefix = codebook?.slice(0, -'quantize.embedding.weight'.length);
      return {
        name, kind: 'vq-tokens',
        options: { vocab: m.vocab, tokensPerImage: m.tokensPerImage, maskOutside: m.maskOutside, applyInTraining: m.applyInTraining, vae: vae ? { prefix, hidden: vae.config.hidden, codebookSize: vae.config.codebookSize, codeDim: vae.config.codeDim } : null },
      };
    }
    return { name, kind: 'unknown' };
  });
}

/** Every tensor of an encoded batch, by the names twins.py reads. */
function batchTensors(vlm: Vlm, b: VlmBatch, i: number, samples: QASample[]): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  const pre = `b${i}.`;
  const inputs = b.inputs as ForwardInputs;
  // The host stage's tensors (token types, position ids) as the forward pass sees them.
  const asTensor = (v: unknown): tf.Tensor | null => (v instanceof tf.Tensor ? v : null);
  const tokenTypes = inputs.prepared?.tokenTypes ?? asTensor(inputs.tokenTypes);
  const named: [string, tf.Tensor | null | undefined][] = [
    ['input_ids', asTensor(inputs.inputIds)], ['attention_mask', asTensor(inputs.attentionMask)], ['token_types', tokenTypes], ['position_ids', asTensor(inputs.positionIds)],
  ];
  for (const [k, t] of named) if (t) out[`${pre}inputs.${k}`] = t;
  for (const [k, v] of Object.entries(inputs.media ?? {})) {
    if (v instanceof tf.Tensor) out[`${pre}media.${k}`] = v;
    else if (Array.isArray(v) && v.every((r) => Array.isArray(r))) out[`${pre}media.${k}`] = tf.tensor2d(v as number[][], undefined, 'int32');
  }
  out[`${pre}targets`] = b.targets;
  // Host-computed routing of the visual expert, through its public functions, for the twin to check.
  if (tokenTypes && vlm.model.mixinNames().some((n) => vlm.model.getMixin(n) instanceof VisualExpertMixin)) {
    const [bs, t] = tokenTypes.shape as [number, number];
    const tt = tokenTypes.dataSync();
    out[`${pre}inputs.vlmix.expert_mask`] = tf.tensor2d(Int32Array.from(visionExpertMask(tt, bs, t)), [bs, t], 'int32');
    out[`${pre}inputs.vlmix.position_ids`] = tf.tensor2d(cogvlmPositionIds(tt, bs, t), [bs, t], 'int32');
  }
  // Type D: the pixels its codes came from (the twin re-encodes them with the VQ encoder).
  if (vlm.vq) out[`${pre}media.vq_pixels`] = vlm.pixels(samples.map((s) => s.image));
  return out;
}

export function shapesSamples(vlm: Vlm, n: number, seed: number): QASample[] {
  return makeShapesDataset({ seed, size: vlm.imageSize, train: n, heldOut: 1 }).train.map((s) => ({ image: s.image, question: s.question, answer: s.answer }));
}

/** Lets the event loop run between long synchronous steps (stock tfjs 'cpu' takes seconds per step). */
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Exports preset `preset` into `dir` (created). Returns the spec (also written as spec.json). */
export async function exportTwin(preset: string, dir: string, o: TwinExportOptions): Promise<TwinSpec> {
  const seed = o.seed ?? 0;
  const vlm = createVlm(preset, { seed });
  const made: tf.Tensor[] = [];
  const batches: VlmBatch[] = [];
  try {
    mkdirSync(dir, { recursive: true });
    const all = o.samples === 'shapes' ? shapesSamples(vlm, o.batchSize * o.batches, seed) : o.samples(vlm, o.batchSize * o.batches);
    const tensors: Record<string, tf.Tensor> = {};
    for (let i = 0; i < o.batches; i++) {
      await tick();
      const samples = all.slice(i * o.batchSize, (i + 1) * o.batchSize);
      const b = vlm.encode(samples);
      batches.push(b);
      const t = batchTensors(vlm, b, i, samples);
      for (const [k, v] of Object.entries(t)) {
        tensors[k] = v;
        if (!b.tensors.includes(v)) made.push(v);
      }
    }
    let prompt: VlmBatch | null = null;
    if (o.prompt) {
      const p = (prompt = vlm.encode(all.slice(0, 1), { withAnswer: false }));
      made.push(...p.tensors);
      tensors['b0.inputs.prompt_ids'] = p.inputs.inputIds as tf.Tensor;
      const ptt = p.inputs.prepared?.tokenTypes;
      if (ptt) tensors['b0.inputs.prompt_token_types'] = ptt;
      const px = p.inputs.media?.pixels;
      if (px instanceof tf.Tensor) tensors['b0.media.prompt_pixels'] = px;
    }
    writeFileSync(join(dir, 'batches.safetensors'), writeSafetensors(tensors));
    writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(Object.fromEntries(vlm.model.stateDict())));
    const { seed: _s, ...config } = vlm.model.config;
    const spec: TwinSpec = {
      preset, type: vlm.type, seed, config: config as Record<string, unknown>, mixins: describeMixins(vlm),
      recipe: twinRecipe(vlm, preset, o.batches), batches: o.batches, batchSize: o.batchSize,
    };
    if (o.train && prompt) {
      await tick();
      // Before any update: the twin generates from the same initial weights.
      const ids = Array.from((prompt.inputs.inputIds as tf.Tensor).dataSync());
      spec.vlmixGenerate = generate(vlm.model, ids, {
        maxNewTokens: o.generateTokens ?? 8, greedy: true, useCache: true,
        inputs: { media: prompt.inputs.media, tokenTypes: prompt.inputs.tokenTypes ?? null },
      }).newTokens[0]!;
    }
    if (o.train) {
      await tick();
      const { logits } = vlm.model.forward(batches[0]!.inputs);
      spec.vlmixForwardArgmax = tf.tidy(() => tf.argMax(logits, -1).arraySync() as number[][]);
      logits.dispose();
      spec.vlmixGradNorms = gradNorms(vlm, batches[0]!);
      spec.vlmix = await trainVlmix(vlm, batches, spec.recipe);
    }
    writeFileSync(join(dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`);
    return spec;
  } finally {
    for (const b of batches) tf.dispose(b.tensors);
    tf.dispose(made);
    vlm.dispose();
  }
}

/** Per-parameter gradient norms of one batch's loss (nothing is updated). */
export function gradNorms(vlm: Vlm, b: VlmBatch): Record<string, number> {
  const params = vlm.model.params.trainable();
  const { value, grads } = tf.variableGrads(() => vlm.loss(b), params.map((p) => p.variable));
  try {
    const out: Record<string, number> = {};
    for (const p of params) {
      const g = grads[p.variable.name];
      if (g) out[p.name] = tf.tidy(() => tf.norm(g).dataSync()[0]!);
    }
    return out;
  } finally {
    value.dispose();
    tf.dispose(grads);
  }
}

/** vlmix's Trainer over the batches in order, one per step; returns each step's loss, lr and grad norm. */
export async function trainVlmix(vlm: Vlm, batches: VlmBatch[], r: TwinRecipe): Promise<TwinStepRecord[]> {
  const trainer = new Trainer<VlmBatch>({
    model: vlm.model,
    data: { length: batches.length, get: (i) => batches[i]! },
    shuffle: false,
    lossFn: (b) => vlm.loss(b),
    steps: r.steps,
    clipNorm: r.clipNorm ?? undefined,
    optimizer: r.optimizer,
    schedule: warmupCosine(r.schedule),
    log: 'silent',
  });
  try {
    const out: TwinStepRecord[] = [];
    for (let s = 0; s < r.steps; s++) {
      await tick();
      const rec = trainer.trainStep();
      out.push({ loss: rec.loss, lr: rec.lr, gradNorm: rec.gradNorm });
    }
    return out;
  } finally {
    trainer.dispose();
  }
}
