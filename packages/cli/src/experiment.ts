/**
 * One training run of a fusion preset on the synthetic visual-QA set: build the model, (type D)
 * pre-train its image tokenizer, train with AdamW + warmup-cosine, checkpoint, and measure held-out
 * exact-match accuracy. Used by `vlmix train` and `vlmix demo`.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, writeFileAtomic } from '@vlmix/core';
import { loadImageTextFolder, makeShapesDataset, resize, tokenizerFromJSON, type QAKind, type RgbImage } from '@vlmix/data';
import { createVlm, getVlmPreset, pretrainTokenizer, presetTokenizer, type RecipeOptions, type Vlm } from '@vlmix/fusion';
import { Trainer, warmupCosine, hasCheckpoint, type StepRecord } from '@vlmix/train';

/** A training / evaluation item: an image, a question and its answer, and a kind for per-kind accuracy. */
export interface QAItem {
  image: RgbImage;
  question: string;
  answer: string;
  kind: string;
}

export interface ExperimentOptions {
  preset: string;
  /** Train on an images/ + labels/ folder (CogVLM-SFT-311K format) instead of the synthetic set. */
  dataDir?: string;
  steps: number;
  seed?: number;
  batchSize?: number;
  /** Peak learning rate; default the preset's (VlmPreset.lr), else DEFAULTS.lr. */
  lr?: number;
  outDir?: string;
  resume?: boolean;
  trainSize?: number;
  heldOutSize?: number;
  kinds?: QAKind[];
  /** Recipe overrides (vision tower, LM size, LoRA, freezing, M-RoPE). */
  recipe?: RecipeOptions;
  /** Held-out accuracy every N steps during training (logged, and in metrics.jsonl as eval_accuracy, eval_<kind>). */
  evalEvery?: number;
  /** Type D: tokenizer pre-training steps. */
  vqSteps?: number;
  log?: 'auto' | 'tty' | 'plain' | 'silent';
  logStream?: NodeJS.WritableStream;
  onStep?: (r: StepRecord) => void;
}

export interface ExperimentResult {
  preset: string;
  type: string;
  steps: number;
  /** Peak learning rate used. */
  lr: number;
  loss: number;
  accuracy: number;
  accuracyByKind: Record<string, number>;
  stepMs: number;
  tokensPerSec: number;
  params: number;
  trainableParams: number;
  trainSeconds: number;
  lossCurve: { step: number; loss: number }[];
  vqSeconds?: number;
}

/** Chosen by measurement (bench/results/demo-*): shape questions are the slow ones to learn, so the
 *  train split draws them 3x as often; the held-out split stays balanced. Type D's shape answers depend
 *  on the VQ codes: 1500 tokenizer steps give 92% on shape questions where 600 gave 72% (seed 0). */
export const DEFAULTS = { batchSize: 32, lr: 1e-3, trainSize: 20000, heldOutSize: 400, vqSteps: 1500, shapeWeight: 3 };

export function dataset(opts: Pick<ExperimentOptions, 'seed' | 'trainSize' | 'heldOutSize' | 'kinds'>) {
  return makeShapesDataset({
    seed: opts.seed ?? 0, size: 32,
    train: opts.trainSize ?? DEFAULTS.trainSize, heldOut: opts.heldOutSize ?? DEFAULTS.heldOutSize,
    kinds: opts.kinds,
    trainKindWeights: !opts.kinds || opts.kinds.includes('shape') ? { shape: DEFAULTS.shapeWeight } : undefined,
  });
}

/** Held-out exact-match accuracy (teacher-forced greedy equivalence), overall and per question kind. */
export function evaluate(vlm: Vlm, samples: QAItem[], batchSize = 100): { accuracy: number; byKind: Record<string, number> } {
  const hits: Record<string, [number, number]> = {};
  let ok = 0;
  for (let i = 0; i < samples.length; i += batchSize) {
    const chunk = samples.slice(i, i + batchSize);
    vlm.correct(chunk).forEach((c, j) => {
      const k = chunk[j]!.kind;
      hits[k] ??= [0, 0];
      hits[k][1]++;
      if (c) {
        hits[k][0]++;
        ok++;
      }
    });
  }
  const byKind = Object.fromEntries(Object.entries(hits).map(([k, [h, n]]) => [k, h / n]));
  return { accuracy: samples.length ? ok / samples.length : 0, byKind };
}

/**
 * Items from an images/ + labels/ folder: each user -> assistant turn pair is a question and answer,
 * a caption is the answer to "Describe the image.". Images are resized to the model's input; items
 * longer than the model's context are skipped (and counted). The last records are held out.
 */
export async function folderDataset(dir: string, vlm: Vlm, heldOut?: number): Promise<{ train: QAItem[]; heldOut: QAItem[] }> {
  const records = await loadImageTextFolder(dir);
  if (records.length < 2) fail(`--data ${dir}: need at least 2 records (train + held-out), found ${records.length}`);
  const items: QAItem[][] = records.map((r) => {
    const image = r.image.width === vlm.imageSize && r.image.height === vlm.imageSize ? r.image : resize(r.image, vlm.imageSize, vlm.imageSize);
    const out: QAItem[] = [];
    r.turns.forEach((t, i) => {
      if (t.role === 'caption') out.push({ image, question: 'Describe the image.', answer: t.content, kind: 'caption' });
      if (t.role === 'user' && r.turns[i + 1]?.role === 'assistant') out.push({ image, question: t.content, answer: r.turns[i + 1]!.content, kind: 'conversation' });
    });
    return out;
  });
  const max = vlm.model.config.maxSeqLen;
  let skipped = 0;
  const fits = (x: QAItem) => {
    const ok = vlm.tokenCount([x]) <= max;
    if (!ok) skipped++;
    return ok;
  };
  const n = Math.max(1, Math.min(heldOut ?? Math.ceil(records.length / 10), records.length - 1));
  const split = { train: items.slice(0, -n).flat().filter(fits), heldOut: items.slice(-n).flat().filter(fits) };
  if (skipped) process.stderr.write(`--data ${dir}: skipped ${skipped} question/answer pairs longer than the model's ${max} tokens\n`);
  if (split.train.length === 0) fail(`--data ${dir}: no training item fits the model's ${max}-token context`);
  return split;
}

interface RunMeta {
  preset: string;
  seed: number;
  /** Recipe overrides the run was built with (the architecture depends on them). */
  recipe?: RecipeOptions;
  tokenizer: object;
}

/** Writes what `vlmix generate` needs to rebuild the model next to the checkpoint. */
async function writeMeta(dir: string, meta: RunMeta): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'vlmix-run.json'), `${JSON.stringify(meta, null, 2)}\n`);
}

export async function readMeta(dir: string): Promise<RunMeta> {
  const p = join(dir, 'vlmix-run.json');
  if (!existsSync(p)) fail(`${dir}: not a vlmix run directory (no vlmix-run.json); pass the --out directory of 'vlmix train'`);
  return JSON.parse(await readFile(p, 'utf8')) as RunMeta;
}

/** Rebuilds a trained model from a run directory (preset + seed + tokenizer, then the checkpoint weights). */
export async function loadRun(dir: string): Promise<Vlm> {
  const meta = await readMeta(dir);
  const vlm = createVlm(meta.preset, { ...meta.recipe, seed: meta.seed });
  const saved = JSON.stringify(tokenizerFromJSON(meta.tokenizer).toJSON());
  if (saved !== JSON.stringify(vlm.tokenizer.toJSON())) fail(`${dir}: the run's tokenizer differs from preset '${meta.preset}''s`);
  const { loadCheckpoint } = await import('@vlmix/train');
  const ck = await loadCheckpoint(dir);
  const weights = new Map(ck.model.names().map((n) => [n, ck.model.toTensor(n)]));
  try {
    vlm.model.loadStateDict(weights, { strict: true });
  } finally {
    tf.dispose([...weights.values()]);
  }
  return vlm;
}

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const seed = o.seed ?? 0;
  const bs = o.batchSize ?? DEFAULTS.batchSize;
  if (!Number.isInteger(o.steps) || o.steps < 1) fail(`--steps: expected a positive integer, got ${o.steps}`);
  if (o.vqSteps != null && (!Number.isInteger(o.vqSteps) || o.vqSteps < 0)) fail(`--vq-steps: expected an integer >= 0, got ${o.vqSteps}`);
  const vlm = createVlm(o.preset, { ...o.recipe, seed });
  const lr = o.lr ?? getVlmPreset(o.preset).lr ?? DEFAULTS.lr;
  const data = o.dataDir ? await folderDataset(o.dataDir, vlm, o.heldOutSize) : dataset(o);
  const resuming = !!o.resume;
  if (resuming && !(o.outDir && hasCheckpoint(join(o.outDir, 'checkpoint')))) {
    fail(`--resume: no checkpoint in ${o.outDir ?? '(no --out)'}/checkpoint to resume from`);
  }
  try {
    let vqSeconds: number | undefined;
    if (vlm.vq && !resuming) {
      const t0 = performance.now();
      pretrainTokenizer(vlm, data.train.map((s) => s.image), { steps: o.vqSteps ?? DEFAULTS.vqSteps, seed });
      vqSeconds = (performance.now() - t0) / 1000;
    }
    if (o.outDir) await writeMeta(o.outDir, { preset: o.preset, seed, recipe: o.recipe, tokenizer: presetTokenizer().toJSON() });
    const batches = Math.floor(data.train.length / bs);
    if (batches < 1) fail(`--batch-size ${bs} exceeds the training set (${data.train.length} samples)`);
    const lossCurve: { step: number; loss: number }[] = [];
    const trainer = new Trainer<QAItem[]>({
      model: vlm.model,
      data: { length: batches, get: (i) => data.train.slice(i * bs, (i + 1) * bs) },
      lossFn: (batch) => {
        const b = vlm.encode(batch);
        try {
          return vlm.loss(b);
        } finally {
          tf.dispose(b.tensors);
        }
      },
      steps: o.steps,
      seed,
      clipNorm: 1,
      optimizer: { lr, weightDecay: 0.01, beta2: 0.99 },
      schedule: warmupCosine({ lr, warmupSteps: Math.min(50, Math.ceil(o.steps / 10)), totalSteps: o.steps, minLr: lr / 10 }),
      tokens: (batch) => vlm.tokenCount(batch),
      outDir: o.outDir,
      evalEvery: o.evalEvery,
      evalFn: o.evalEvery ? () => {
        const ev = evaluate(vlm, data.heldOut);
        return { accuracy: ev.accuracy, ...ev.byKind };
      } : undefined,
      checkpointEvery: o.outDir ? Math.max(50, Math.floor(o.steps / 4)) : undefined,
      log: o.log ?? 'auto',
      logStream: o.logStream as never,
      config: { preset: o.preset, seed, batchSize: bs },
      onStep: (r) => {
        lossCurve.push({ step: r.step, loss: r.loss });
        o.onStep?.(r);
      },
    });
    if (resuming) await trainer.resume(join(o.outDir!, 'checkpoint'));
    const t0 = performance.now();
    const res = await trainer.train();
    const trainSeconds = (performance.now() - t0) / 1000;
    trainer.dispose();
    const hist = res.history;
    const tail = hist.slice(-Math.max(1, Math.floor(hist.length / 5)));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    const ev = evaluate(vlm, data.heldOut);
    const counts = vlm.model.params.counts();
    return {
      preset: o.preset, type: vlm.type, steps: res.step, lr,
      loss: hist.length ? hist[hist.length - 1]!.loss : NaN,
      accuracy: ev.accuracy, accuracyByKind: ev.byKind,
      stepMs: mean(tail.map((r) => r.stepMs)),
      tokensPerSec: mean(tail.map((r) => r.tokensPerSec ?? 0)),
      params: counts.total, trainableParams: counts.trainable,
      trainSeconds, lossCurve, vqSeconds,
    };
  } finally {
    vlm.dispose();
  }
}
