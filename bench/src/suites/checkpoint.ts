/**
 * `pnpm bench checkpoint`: memory saved and time spent by gradient checkpointing (Model.setGradientCheckpointing)
 * on one LLaMA-style model, a training step with AdamW, plain vs checkpointed, in this process: the native
 * allocator's peak over one step (vlmix-cpu), the engine's peak bytes (tf.profile) and the median step time.
 * Options: --layers 8 --hidden 256 --seq 256 --batch 8 --repeats 5 --out DIR
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { createLlama } from '@vlmix/core';
import { machineInfo } from '../machine.js';
import { makeTrainer, profileStep } from '../tfutil.js';

const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function runCheckpointBench(argv: string[]): Promise<number> {
  const opt = (k: string, d: number) => (argv.includes(`--${k}`) ? Number(argv[argv.indexOf(`--${k}`) + 1]) : d);
  const [layers, hidden, seq, batch, repeats] = [opt('layers', 8), opt('hidden', 256), opt('seq', 256), opt('batch', 8), opt('repeats', 5)];
  const out = argv.includes('--out') ? argv[argv.indexOf('--out') + 1]! : join(BENCH, 'out', `${new Date().toISOString().replace(/[:.]/g, '-')}-checkpoint`);
  await native.useBackend('auto');
  const rows: Record<string, unknown>[] = [];
  for (const on of [false, true]) {
    const model = createLlama({ vocabSize: 2048, hiddenSize: hidden, numLayers: layers, numHeads: hidden / 64, intermediateSize: 4 * hidden, maxSeqLen: seq, seed: 0 });
    model.setGradientCheckpointing(on);
    const t = makeTrainer(model, batch, seq);
    t.step();
    t.step(); // the first checkpointed pass runs plainly to record each layer's parameters
    const mem = await profileStep(() => t.step());
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      t.step();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    rows.push({ checkpointing: on, stepMs: times[Math.floor(times.length / 2)], nativePeakBytes: mem.nativePeakBytes ?? null, tfPeakBytes: mem.tfPeakBytes, kernels: mem.kernels });
    t.dispose();
    model.dispose();
  }
  const mib = (b: unknown) => (b == null ? '–' : ((b as number) / 2 ** 20).toFixed(1));
  const md = [
    `# pnpm bench checkpoint — ${new Date().toISOString().slice(0, 10)}`, '',
    `- Machine: ${machineInfo().label}; backend ${tf.getBackend()}`,
    `- LLaMA-style model: ${layers} layers, hidden ${hidden}, vocab 2048; batch ${batch} x ${seq} tokens; AdamW step; median of ${repeats} steps`, '',
    '| gradient checkpointing | step ms | native peak MiB (one step) | engine peak MiB | kernels per step |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.checkpointing ? 'on' : 'off'} | ${(r.stepMs as number).toFixed(1)} | ${mib(r.nativePeakBytes)} | ${mib(r.tfPeakBytes)} | ${r.kernels} |`),
  ];
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'report.md'), `${md.join('\n')}\n`);
  writeFileSync(join(out, 'results.json'), `${JSON.stringify({ layers, hidden, seq, batch, repeats, rows }, null, 1)}\n`);
  process.stdout.write(`${md.join('\n')}\nreport: ${out}/report.md\n`);
  return 0;
}
