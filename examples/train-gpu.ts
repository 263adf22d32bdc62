/**
 * Train a fusion preset on the fastest backend this machine has.
 *
 * useBackend('auto') tries, in order: tfjs-node-gpu / tfjs-node ('tensorflow'), vlmix-cpu (the native
 * addon), 'wasm', then tfjs 'cpu', and returns the reason for its choice.
 *
 * GPU status: vlmix has NO CUDA backend yet (it is planned, not built). Today the only GPU path is
 * TensorFlow's own: `pnpm add @tensorflow/tfjs-node-gpu@4.22.0` where it installs (Linux x86-64 with
 * the CUDA/cuDNN versions it was built for). vlmix's fused kernels then run as their composite tfjs
 * bodies on that backend; model code does not change.
 *
 * This is what `vlmix train <preset>` does, written out with the library API.
 * Run: pnpm exec tsx --conditions=@vlmix/source examples/train-gpu.ts [preset] [steps]
 */
import * as tf from '@tensorflow/tfjs';
import { pathToFileURL } from 'node:url';
import { useBackend, type BackendChoice } from '@vlmix/backend-native';
import { makeShapesDataset, type ShapesSample } from '@vlmix/data';
import { createVlm } from '@vlmix/fusion';
import { Trainer, warmupCosine, type StepRecord } from '@vlmix/train';

export interface TrainGpuOptions {
  preset?: string;
  steps?: number;
  batchSize?: number;
  trainSize?: number;
  heldOut?: number;
  lr?: number;
  seed?: number;
  /** Run directory for checkpoint/ and metrics.jsonl (none: nothing is written). */
  outDir?: string;
  backend?: BackendChoice;
  log?: 'auto' | 'tty' | 'plain' | 'silent';
}

export interface TrainGpuResult {
  backend: string;
  reason: string;
  history: StepRecord[];
  accuracy: number;
  lastCheckpoint: { step: number; dir: string } | null;
}

export async function trainOnBestBackend(o: TrainGpuOptions = {}): Promise<TrainGpuResult> {
  const { backend, reason } = await useBackend(o.backend ?? 'auto');
  const bs = o.batchSize ?? 32;
  const lr = o.lr ?? 3e-3;
  const steps = o.steps ?? 300;
  const data = makeShapesDataset({ seed: o.seed ?? 0, size: 32, train: o.trainSize ?? 4000, heldOut: o.heldOut ?? 200 });
  // Type D would first need pretrainTokenizer(vlm, images, ...) for its VQ; A-C train directly.
  const vlm = createVlm(o.preset ?? 'typeC-tiny', { seed: o.seed ?? 0 });
  const trainer = new Trainer<ShapesSample[]>({
    model: vlm.model,
    data: { length: Math.floor(data.train.length / bs), get: (i) => data.train.slice(i * bs, (i + 1) * bs) },
    lossFn: (samples) => {
      const batch = vlm.encode(samples);
      try {
        return vlm.loss(batch);
      } finally {
        tf.dispose(batch.tensors); // input tensors live outside the trainer's tape
      }
    },
    steps,
    seed: o.seed ?? 0,
    clipNorm: 1,
    optimizer: { lr, weightDecay: 0.01, beta2: 0.99 },
    schedule: warmupCosine({ lr, warmupSteps: Math.min(50, Math.ceil(steps / 10)), totalSteps: steps, minLr: lr / 10 }),
    tokens: (samples) => vlm.tokenCount(samples),
    outDir: o.outDir,
    log: o.log ?? 'auto',
  });
  try {
    const res = await trainer.train();
    const correct = vlm.correct(data.heldOut);
    return { backend, reason, history: res.history, accuracy: correct.filter(Boolean).length / correct.length, lastCheckpoint: res.lastCheckpoint };
  } finally {
    trainer.dispose();
    vlm.dispose();
  }
}

async function main(): Promise<void> {
  const [preset = 'typeC-tiny', steps = '300'] = process.argv.slice(2);
  const r = await trainOnBestBackend({ preset, steps: Number(steps) });
  const last = r.history[r.history.length - 1]!;
  console.log(`backend ${r.backend} (${r.reason})`);
  console.log(`${preset}: ${r.history.length} steps, loss ${last.loss.toFixed(4)}, ${last.stepMs.toFixed(1)} ms/step, held-out accuracy ${(100 * r.accuracy).toFixed(1)}%`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
