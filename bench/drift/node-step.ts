/**
 * One fresh process: a bench-style training step of a preset (bench/src/tfutil.ts makeTrainer: loss, grads,
 * AdamW per parameter) on vlmix-cpu, 3 warm-up steps then 20 timed; prints one JSON line with the median
 * and p25-p75 ms. Run it in many fresh processes to see the run-to-run spread (bench/drift/README.md):
 *   pnpm exec tsx --conditions=@vlmix/source bench/drift/node-step.ts typeC-tiny
 */
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { createVlm } from '@vlmix/fusion';
import { makeTrainer } from '../src/tfutil.js';

await native.useBackend('vlmix-cpu');
const preset = process.argv[2] ?? 'typeC-tiny';
const vlm = createVlm(preset, { seed: 0 });
const s = vlm.imageSize;
let x = 12345;
const samples = Array.from({ length: 4 }, () => {
  const data = new Uint8Array(s * s * 3);
  for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return { image: { width: s, height: s, data }, question: 'what color is the circle?', answer: 'red' };
});
const b = vlm.encode(samples);
const tr = makeTrainer(vlm.model, 0, 0, () => vlm.model.loss(b.inputs, b.targets, { ignoreIndex: -1 }));
for (let i = 0; i < 3; i++) tr.step();
const ts: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  tr.step();
  ts.push(performance.now() - t0);
}
ts.sort((a, c) => a - c);
console.log(JSON.stringify({ preset, median: +ts[10]!.toFixed(2), p25: +ts[5]!.toFixed(2), p75: +ts[15]!.toFixed(2), numTensors: tf.memory().numTensors }));
tr.dispose();
tf.dispose(b.tensors);
vlm.dispose();
