/** Architecture and scaling suites: whole-model forward, training step and generation. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { exportTwin } from '../twins/export.js';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createGpt2, createModel, generate, gpt2Config, listPresets, resolveConfig, RotaryMixin, type ForwardInputs, type Model, type TransformerConfig } from '@vlmix/core';
import type { Sizes } from '../sizes.js';
import type { BenchCase, Prepared, TorchJob } from '../types.js';
import { ADAMW, makeTrainer, profileStep, randn, sync } from '../tfutil.js';
import { ops } from '@vlmix/core';

/** Loads @vlmix/fusion (it registers typeA-tiny ... typeD-tiny) when the workspace has it. */
/** What the harness uses of @vlmix/fusion (duck-typed: bench does not depend on it). */
interface VlmLike {
  type: string;
  model: Model;
  imageSize: number;
  encode(samples: { image: { width: number; height: number; data: Uint8Array }; question: string; answer?: string }[],
    opts?: { withAnswer?: boolean }): { inputs: ForwardInputs; targets: tf.Tensor2D; tensors: tf.Tensor[] };
  /** The training loss of an encoded batch (what `vlmix train` and the demo minimise). */
  loss(batch: { inputs: ForwardInputs; targets: tf.Tensor2D; tensors: tf.Tensor[] }): tf.Scalar;
  dispose(): void;
}
interface FusionLike {
  createVlm?: (name: string, opts?: { seed?: number }) => VlmLike;
  VLM_PRESETS?: { name: string }[];
  /** The small-model tier (the 'small' suite). */
  SMALL_PRESETS?: { name: string }[];
  /** Every registered fusion preset (tiny built-ins, the zoo, the small tier, user ones). */
  listVlmPresets?: () => { name: string }[];
}
let fusion: FusionLike | null = null;

/** A bundled bench (bench/device/bench-entry.ts) hands @vlmix/fusion in directly: there is no package resolution there. */
export function provideFusion(f: FusionLike): void {
  fusion = f;
}

export async function loadExtraPresets(): Promise<string | null> {
  if (fusion) return null;
  const spec = '@vlmix/fusion';
  try {
    fusion = (await import(/* @vite-ignore */ spec)) as FusionLike;
    return null;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    // bench does not depend on @vlmix/fusion; in the workspace, load its sources directly (tsx / vitest).
    const src = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'packages', 'fusion', 'src', 'index.ts');
    if (!/Cannot find (package|module) '@vlmix\/fusion'/.test(msg) || !existsSync(src)) return msg;
    try {
      fusion = (await import(/* @vite-ignore */ pathToFileURL(src).href)) as FusionLike;
      return null;
    } catch (e2) {
      return `${msg}; ${src}: ${(e2 as Error).message.split('\n')[0]}`;
    }
  }
}

interface ModelShape {
  config: TransformerConfig;
  mixins: string[];
  rope: { base: number; style: string; dim: number } | null;
}

function describe(model: Model): ModelShape {
  const mixins = model.mixinNames();
  let rope: ModelShape['rope'] = null;
  if (model.hasMixin('rope')) {
    const r = model.getMixin('rope');
    if (r instanceof RotaryMixin) rope = { base: r.base, style: r.style, dim: r.dim };
  }
  return { config: { ...model.config }, mixins, rope };
}

/** Whether bench/reference/models.py can replicate it: base transformer (+ rotary), pre-norm. */
function torchSupports(s: ModelShape): string | null {
  const extra = s.mixins.filter((m) => m !== 'rope');
  if (extra.length) return `mixins ${extra.join(', ')} have no PyTorch reference`;
  if (s.mixins.includes('rope') && !s.rope) return 'rotary mixin of an unknown kind';
  if (s.config.normOrder !== 'pre') return `normOrder '${s.config.normOrder}' has no PyTorch reference`;
  return null;
}

function torchJob(s: ModelShape, kind: string, params: Record<string, unknown>): TorchJob | undefined {
  if (torchSupports(s)) return undefined;
  const { seed: _seed, ...config } = s.config;
  return { script: 'models', kind, params: { config, ...(s.rope ? { rope: s.rope } : {}), ...params } };
}

function withModel(create: () => Model, make: (m: Model) => Prepared): () => Prepared {
  return () => {
    const model = create();
    try {
      const p = make(model);
      return { run: p.run, dispose: () => { p.dispose(); model.dispose(); } };
    } catch (e) {
      model.dispose();
      throw e;
    }
  };
}

function forwardPrepared(model: Model, batch: number, seq: number): Prepared {
  const ids = tf.randomUniformInt([batch, seq], 0, model.config.vocabSize, 1);
  return {
    run: () => {
      const { logits } = model.forward({ inputIds: ids });
      sync(logits);
      logits.dispose();
    },
    dispose: () => ids.dispose(),
  };
}

function trainPrepared(model: Model, batch: number, seq: number, replay = false): Prepared {
  const tr = makeTrainer(model, batch, seq, undefined, replay ? { inputs: [] } : undefined);
  return { run: () => tr.step(), dispose: () => tr.dispose() };
}

// ---------------------------------------------------------------- vision-language presets (@vlmix/fusion)

/** Deterministic noise images and a fixed question/answer: the inputs a fusion preset trains on. */
function vlmSamples(vlm: { imageSize: number }, n: number) {
  const s = vlm.imageSize;
  let x = 12345;
  return Array.from({ length: n }, () => {
    const data = new Uint8Array(s * s * 3);
    for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return { image: { width: s, height: s, data }, question: 'what color is the circle?', answer: 'red' };
  });
}

const isFusionBench = (name: string) => !!fusion?.VLM_PRESETS?.some((p) => p.name === name) || !!fusion?.SMALL_PRESETS?.some((p) => p.name === name);

function vlmShape(name: string, batch: number): { seq: number; type: string } | null {
  if (!fusion?.createVlm || !isFusionBench(name)) return null;
  const vlm = fusion.createVlm(name, { seed: 0 });
  try {
    if (vlm.type === 'LM') return null; // text-only baseline: plain token ids
    const b = vlm.encode(vlmSamples(vlm, batch));
    const seq = b.targets.shape[1];
    tf.dispose(b.tensors);
    return { seq, type: vlm.type };
  } finally {
    vlm.dispose();
  }
}

function withVlm(name: string, make: (v: VlmLike) => Prepared): () => Prepared {
  return () => {
    const vlm = fusion!.createVlm!(name, { seed: 0 });
    try {
      const p = make(vlm);
      return { run: p.run, dispose: () => { p.dispose(); vlm.dispose(); } };
    } catch (e) {
      vlm.dispose();
      throw e;
    }
  };
}

function vlmForward(vlm: VlmLike, batch: number): Prepared {
  const b = vlm.encode(vlmSamples(vlm, batch));
  return {
    run: () => {
      const { logits } = vlm.model.forward(b.inputs);
      sync(logits);
      logits.dispose();
    },
    dispose: () => tf.dispose(b.tensors),
  };
}

function vlmTrain(vlm: VlmLike, batch: number, replay = false): Prepared {
  const b = vlm.encode(vlmSamples(vlm, batch));
  const tr = makeTrainer(vlm.model, 0, 0, () => vlm.loss(b), replay ? { inputs: b.tensors } : undefined);
  return { run: () => tr.step(), dispose: () => { tr.dispose(); tf.dispose(b.tensors); } };
}

function vlmGenerate(vlm: VlmLike, newTokens: number): Prepared {
  const b = vlm.encode(vlmSamples(vlm, 1), { withAnswer: false });
  const prompt = Array.from((b.inputs.inputIds as tf.Tensor).dataSync());
  return {
    run: () => {
      const r = generate(vlm.model, prompt, { maxNewTokens: newTokens, greedy: true, useCache: true,
        inputs: { media: b.inputs.media, tokenTypes: b.inputs.tokenTypes ?? null } });
      if (r.newTokens[0]!.length !== newTokens) throw new Error(`generate produced ${r.newTokens[0]!.length} tokens, expected ${newTokens}`);
    },
    dispose: () => tf.dispose(b.tensors),
  };
}

function generatePrepared(model: Model, promptLen: number, newTokens: number): Prepared {
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7 + 1) % model.config.vocabSize);
  return {
    run: () => {
      const r = generate(model, prompt, { maxNewTokens: newTokens, greedy: true, useCache: true });
      if (r.newTokens[0]!.length !== newTokens) throw new Error(`generate produced ${r.newTokens[0]!.length} tokens, expected ${newTokens}`);
    },
    dispose: () => {},
  };
}

/** What the '(replayed)' train-step rows measure. */
const REPLAY_NOTE = 'forward + backward replayed from a recording (StepReplayer, the Trainer\'s captureSteps); AdamW as in the train step';
const DECODE_NOTE = "generate's default: a static KV cache with replayed decoding steps where the backend writes it in place (vlmix-cpu), else the dynamic cache; PyTorch's twin grows its cache by concatenation (HF's DynamicCache)";
const memoryExtra = async (p: Prepared) => ({ ...(await profileStep(() => p.run())) });

export interface ArchOptions {
  /** Where to export each vision-language preset for its PyTorch twin (bench/reference/twins.py); no twin
   *  column without it (e.g. --torch off). */
  twinDir?: string;
  /**
   * 'tiny' (the arch suite): core presets and the tiny fusion presets; the zoo's recipes and the small tier
   * are left out. 'small' (the small suite): the *-small presets only, at Sizes.small.
   */
  tier?: 'tiny' | 'small';
}

/** Exports the preset's weights and the bench's own inputs (batch, and the generation prompt) for its twin. */
async function twinJobs(preset: string, batch: number, newTokens: number, dir: string): Promise<{ forward: TorchJob; train: TorchJob; generate: TorchJob }> {
  await exportTwin(preset, dir, { batchSize: batch, batches: 1, samples: vlmSamples, prompt: true });
  return {
    forward: { script: 'twins', kind: 'vlm_forward', params: { dir } },
    train: { script: 'twins', kind: 'vlm_train', params: { dir, lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, weight_decay: ADAMW.weightDecay } },
    generate: { script: 'twins', kind: 'vlm_generate', params: { dir, new_tokens: newTokens } },
  };
}

export async function archCases(s: Sizes, o: ArchOptions = {}): Promise<{ cases: BenchCase[]; notes: string[] }> {
  const notes: string[] = [];
  const loadError = await loadExtraPresets();
  if (loadError) notes.push(`@vlmix/fusion not loaded (${loadError}); benchmarking the core presets only`);
  const cases: BenchCase[] = [];
  const small = o.tier === 'small';
  if (small && !fusion?.SMALL_PRESETS) notes.push('the small tier needs @vlmix/fusion (its *-small presets); nothing to run');
  const otherFusion = new Set((fusion?.listVlmPresets?.() ?? []).map((p) => p.name).filter((n) => !fusion?.VLM_PRESETS?.some((p) => p.name === n)));
  const presets = small ? listPresets().filter((p) => fusion?.SMALL_PRESETS?.some((x) => x.name === p.name)) : listPresets().filter((p) => !otherFusion.has(p.name));
  for (const preset of presets) {
    let shape: ModelShape;
    try {
      const m = createModel(preset.name);
      shape = describe(m);
      m.dispose();
    } catch (e) {
      notes.push(`${preset.name}: could not be created (${(e as Error).message})`);
      continue;
    }
    const why = torchSupports(shape);
    const cfg = shape.config;
    const seq = Math.min(s.arch.seq, cfg.maxSeqLen);
    const batch = small ? s.small.batch : s.arch.batch;
    const newTokens = Math.max(1, Math.min(s.arch.newTokens, cfg.maxSeqLen - s.arch.promptLen));
    const promptLen = Math.min(s.arch.promptLen, cfg.maxSeqLen - 1);
    let vlm: ReturnType<typeof vlmShape> = null;
    try {
      vlm = vlmShape(preset.name, batch);
    } catch (e) {
      notes.push(`${preset.name}: could not build its image+text inputs (${(e as Error).message.split('\n')[0]}); benchmarking it on token ids`);
    }
    if (vlm) {
      const common = { suite: small ? 'small' as const : 'arch' as const, group: preset.name };
      const vp = { preset: preset.name, fusionType: vlm.type, hiddenSize: cfg.hiddenSize, numLayers: cfg.numLayers, numHeads: cfg.numHeads, vocabSize: cfg.vocabSize, mixins: shape.mixins, inputs: 'noise images + fixed question/answer via Vlm.encode' };
      const vNew = Math.max(1, Math.min(small ? s.small.newTokens : s.arch.newTokens, cfg.maxSeqLen - vlm.seq));
      let tj: Awaited<ReturnType<typeof twinJobs>> | undefined;
      if (o.twinDir) {
        try {
          tj = await twinJobs(preset.name, batch, vNew, join(o.twinDir, preset.name));
        } catch (e) {
          notes.push(`${preset.name}: no PyTorch twin (${(e as Error).message.split('\n')[0]})`);
        }
      }
      cases.push({ ...common, name: `${preset.name} forward`, unit: 'ms', params: { ...vp, batch, seq: vlm.seq }, torch: tj?.forward, setup: withVlm(preset.name, (v) => vlmForward(v, batch)), extra: memoryExtra });
      cases.push({ ...common, name: `${preset.name} train step`, unit: 'ms', params: { ...vp, batch, seq: vlm.seq, optimizer: 'AdamW', ...ADAMW }, torch: tj?.train, setup: withVlm(preset.name, (v) => vlmTrain(v, batch)), extra: memoryExtra });
      cases.push({ ...common, name: `${preset.name} train step (replayed)`, unit: 'ms', params: { ...vp, batch, seq: vlm.seq, optimizer: 'AdamW', ...ADAMW, replay: REPLAY_NOTE }, torch: tj?.train, setup: withVlm(preset.name, (v) => vlmTrain(v, batch, true)), extra: memoryExtra });
      cases.push({ ...common, name: `${preset.name} generate`, unit: 'tokens/s', perCall: vNew, params: { ...vp, batch: 1, newTokens: vNew, greedy: true, kvCache: true, decode: DECODE_NOTE }, torch: tj?.generate, setup: withVlm(preset.name, (v) => vlmGenerate(v, vNew)), extra: memoryExtra });
      continue;
    }
    if (why) notes.push(`${preset.name}: no PyTorch side by side (${why})`);
    const create = () => createModel(preset.name);
    const common = { suite: 'arch' as const, group: preset.name };
    const modelParams = { preset: preset.name, hiddenSize: cfg.hiddenSize, numLayers: cfg.numLayers, numHeads: cfg.numHeads, numKvHeads: cfg.numKvHeads, vocabSize: cfg.vocabSize, mixins: shape.mixins };
    cases.push({
      ...common, name: `${preset.name} forward`, unit: 'ms', params: { ...modelParams, batch, seq },
      torch: torchJob(shape, 'forward', { batch, seq }),
      setup: withModel(create, (m) => forwardPrepared(m, batch, seq)), extra: memoryExtra,
    });
    cases.push({
      ...common, name: `${preset.name} train step`, unit: 'ms', params: { ...modelParams, batch, seq, optimizer: 'AdamW', ...ADAMW },
      torch: torchJob(shape, 'train', { batch, seq, lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, weight_decay: ADAMW.weightDecay }),
      setup: withModel(create, (m) => trainPrepared(m, batch, seq)), extra: memoryExtra,
    });
    cases.push({
      ...common, name: `${preset.name} train step (replayed)`, unit: 'ms', params: { ...modelParams, batch, seq, optimizer: 'AdamW', ...ADAMW, replay: REPLAY_NOTE },
      torch: torchJob(shape, 'train', { batch, seq, lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, weight_decay: ADAMW.weightDecay }),
      setup: withModel(create, (m) => trainPrepared(m, batch, seq, true)), extra: memoryExtra,
    });
    cases.push({
      ...common, name: `${preset.name} generate`, unit: 'tokens/s', perCall: newTokens,
      params: { ...modelParams, batch: 1, promptLen, newTokens, greedy: true, kvCache: true, decode: DECODE_NOTE },
      torch: torchJob(shape, 'generate', { prompt_len: promptLen, new_tokens: newTokens, batch: 1 }),
      setup: withModel(create, (m) => generatePrepared(m, promptLen, newTokens)), extra: memoryExtra,
    });
  }
  return { cases, notes };
}

function scalingModel(width: number, maxSeq: number): { create: () => Model; shape: ModelShape } {
  const input = gpt2Config({ vocabSize: 512, hiddenSize: width, numLayers: 2, numHeads: 4, maxSeqLen: maxSeq, seed: 0 });
  return { create: () => createGpt2(input), shape: { config: resolveConfig(input), mixins: [], rope: null } };
}

export function scalingCases(s: Sizes): BenchCase[] {
  const sc = s.scaling;
  const cases: BenchCase[] = [];
  const maxSeq = Math.max(sc.base.seq, ...sc.seq);
  const add = (series: string, xLabel: string, x: number, batch: number, seq: number, width: number) => {
    const { create, shape } = scalingModel(width, maxSeq);
    cases.push({
      suite: 'scaling', group: series, name: `${series}: ${xLabel}=${x}`, unit: 'ms',
      params: { model: 'gpt2-style, 2 layers, 4 heads, vocab 512', batch, seq, width },
      curve: { series, x, xLabel },
      torch: torchJob(shape, 'train', { batch, seq, lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, weight_decay: ADAMW.weightDecay }),
      setup: withModel(create, (m) => trainPrepared(m, batch, seq)),
    });
  };
  for (const seq of sc.seq) add('train step vs sequence length', 'seq', seq, sc.base.batch, seq, sc.base.width);
  for (const batch of sc.batch) add('train step vs batch', 'batch', batch, batch, sc.base.seq, sc.base.width);
  for (const width of sc.width) add('train step vs width', 'width', width, sc.base.batch, sc.base.seq, width);
  const { batch: B, heads: H, headDim: D } = s.attn;
  for (const t of sc.attnSeq) {
    const series = 'attention fwd+bwd vs sequence length';
    cases.push({
      suite: 'scaling', group: series, name: `${series}: T=${t}`, unit: 'ms',
      params: { b: B, h: H, t, d: D, causal: true },
      curve: { series, x: t, xLabel: 'T' },
      torch: { script: 'kernels', kind: 'attention', params: { b: B, h: H, t, d: D, causal: true, backward: true } },
      setup: () => {
        const q = randn([B, H, t, D], 1);
        const k = randn([B, H, t, D], 2);
        const v = randn([B, H, t, D], 3);
        const dy = randn([B, H, t, D], 4);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.attention(a, b, c, { causal: true }));
        return {
          run: () => {
            const out = g([q, k, v], dy);
            sync(...out);
            tf.dispose(out);
          },
          dispose: () => tf.dispose([q, k, v, dy]),
        };
      },
    });
  }
  return cases;
}
