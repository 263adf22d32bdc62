/**
 * Train a fusion preset on the fastest backend this machine has, with the library's recipe (trainVlm:
 * what `vlmix train` runs).
 *
 * useBackend('auto') tries, in order: tfjs-node-gpu / tfjs-node ('tensorflow'), vlmix-cuda (where a GPU is
 * present; VLMIX_CUDA=0 skips it), vlmix-cpu (the native addon), 'wasm', then tfjs 'cpu', and returns the
 * reason for its choice.
 *
 * GPU status: vlmix's own CUDA backend, 'vlmix-cuda', is compiled at install where nvcc is found and was
 * verified on an NVIDIA H200 (bench/results/2026-12-04-nvidia-h200). Ask for it by name
 * (`backend: 'vlmix-cuda'` here, `vlmix train --backend vlmix-cuda`): where it cannot run, useBackend
 * throws with the addon's reason.
 *
 * Run: pnpm exec tsx --conditions=@vlmix/source examples/train-gpu.ts [preset] [steps] [backend]
 */
import { pathToFileURL } from 'node:url';
import { useBackend, type BackendChoice } from '@vlmix/backend-native';
import { trainVlm } from '@vlmix/fusion';
import type { StepRecord } from '@vlmix/train';

export interface TrainGpuOptions {
  preset?: string;
  steps?: number;
  batchSize?: number;
  trainSize?: number;
  heldOut?: number;
  /** Peak learning rate (default: the preset's). */
  lr?: number;
  seed?: number;
  /** Run directory for checkpoint/ and metrics.jsonl (none: nothing is written). Must be empty or absent. */
  outDir?: string;
  backend?: BackendChoice;
  log?: 'auto' | 'tty' | 'plain' | 'silent';
}

export interface TrainGpuResult {
  backend: string;
  reason: string;
  history: StepRecord[];
  accuracy: number | null;
  lastCheckpoint: { step: number; dir: string } | null;
}

export async function trainOnBestBackend(o: TrainGpuOptions = {}): Promise<TrainGpuResult> {
  const { backend, reason } = await useBackend(o.backend ?? 'auto');
  const history: StepRecord[] = [];
  // Type D first pre-trains its image tokenizer inside trainVlm (vqSteps); A-C train directly.
  const r = await trainVlm(o.preset ?? 'typeC-tiny', {
    steps: o.steps ?? 300, batchSize: o.batchSize ?? 32, trainSize: o.trainSize ?? 4000, heldOutSize: o.heldOut ?? 200,
    lr: o.lr, seed: o.seed ?? 0, outDir: o.outDir, log: o.log ?? 'auto',
    onStep: (rec) => void history.push(rec),
  });
  return { backend, reason, history, accuracy: r.accuracy, lastCheckpoint: r.lastCheckpoint };
}

async function main(): Promise<void> {
  const [preset = 'typeC-tiny', steps = '300', backend = 'auto'] = process.argv.slice(2);
  const r = await trainOnBestBackend({ preset, steps: Number(steps), backend: backend as BackendChoice });
  const last = r.history[r.history.length - 1]!;
  console.log(`backend ${r.backend} (${r.reason})`);
  console.log(`${preset}: ${r.history.length} steps, loss ${last.loss.toFixed(4)}, ${last.stepMs.toFixed(1)} ms/step, held-out accuracy ${r.accuracy === null ? '-' : `${(100 * r.accuracy).toFixed(1)}%`}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
