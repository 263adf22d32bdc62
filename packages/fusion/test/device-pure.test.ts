/**
 * A training step reads nothing back from the device: the batch is encoded once (Vlm.encode runs the
 * host stage), then loss + gradients + the AdamW update run without a single dataSync / data /
 * arraySync. Counted on the backend's read path (testkit countHostReads), for every preset, on the
 * native vlmix-cpu backend (when built) and on stock tfjs 'cpu'.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, ops } from '@vlmix/core';
import { countHostReads } from '@vlmix/core/testkit';
import { makeShapesDataset } from '@vlmix/data';
import { createVlm, listVlmPresets, presetTokenizer, SMALL_PRESETS, VLM_PRESETS, type Vlm } from '../src/index.js';

const BUILT_IN = ['typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeC-qformer-tiny', 'typeD-tiny', 'lm-tiny'];
// every registered fusion preset: the built-in ones and the zoo's (the small tier is the same recipes at size:
// a step of each on stock tfjs 'cpu' would take minutes)
const PRESETS = listVlmPresets().map((p) => p.name).filter((n) => !SMALL_PRESETS.some((s) => s.name === n));
const data = makeShapesDataset({ seed: 5, train: 4, heldOut: 0 });
const initial = tf.getBackend();
afterAll(async () => {
  await tf.setBackend(initial);
});

/** One optimizer step (AdamW's fused update per parameter, as @vlmix/train's AdamW.step). */
function trainStep(vlm: Vlm, batch: ReturnType<Vlm['encode']>, moments: Map<tf.Variable, [tf.Tensor, tf.Tensor]>): void {
  const vars = vlm.model.params.trainable().map((p) => p.variable);
  const { value, grads } = tf.variableGrads(() => vlm.loss(batch), vars);
  for (const v of vars) {
    const g = grads[v.name];
    if (!g) continue; // no gradient reaches it (as AdamW.step, like PyTorch's grad=None)
    const [m, s] = moments.get(v)!;
    const [p2, m2, s2] = ops.adamwUpdate(v, g, m, s, { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, step: 1 });
    v.assign(p2);
    tf.dispose([p2, m, s]);
    moments.set(v, [m2, s2]);
  }
  tf.dispose([value, ...Object.values(grads)]);
}

async function backends(): Promise<string[]> {
  const out = ['cpu'];
  try {
    const native = await import('@vlmix/backend-native');
    if (native.registerNativeBackend().ok) out.unshift('vlmix-cpu');
  } catch {
    // addon not built: tfjs 'cpu' only
  }
  return out;
}

describe('device-pure training step', async () => {
  const list = await backends();
  expect(VLM_PRESETS.map((p) => p.name).sort()).toEqual([...BUILT_IN].sort()); // the built-in ones are registered
  expect(PRESETS).toEqual(expect.arrayContaining(BUILT_IN));

  for (const backend of list) {
    it(`${backend}: loss + gradients + AdamW update of every preset read nothing back`, async () => {
      await tf.setBackend(backend);
      // the instrument itself counts: one explicit read is one read
      const probe = tf.tensor1d([1, 2]);
      expect(countHostReads(() => probe.dataSync()).reads).toBe(1);
      probe.dispose();
      const counts: Record<string, number> = {};
      for (const name of PRESETS) {
        const vlm = createVlm(name, { seed: 0 });
        const batch = vlm.encode(data.train); // encoding is the host stage: it may read (type D reads its codes)
        const moments = new Map(vlm.model.params.trainable().map((p) => [p.variable, [tf.zerosLike(p.variable), tf.zerosLike(p.variable)] as [tf.Tensor, tf.Tensor]]));
        const before = tf.memory().numTensors;
        counts[name] = countHostReads(() => trainStep(vlm, batch, moments)).reads;
        expect(tf.memory().numTensors, `${name}: no tensor leak`).toBe(before);
        for (const [m, s] of moments.values()) tf.dispose([m, s]);
        tf.dispose(batch.tensors);
        vlm.dispose();
      }
      expect(counts).toEqual(Object.fromEntries(PRESETS.map((p) => [p, 0])));
    });
  }

  it('greedy generation reads one logits row per step and nothing else (host ids, host stage per step)', async () => {
    await tf.setBackend(list[0]!);
    for (const name of ['typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeD-tiny']) {
      const vlm = createVlm(name, { seed: 0 });
      const batch = vlm.encode(data.train.slice(0, 1), { withAnswer: false });
      const steps = 4;
      const run = (replaySteps: boolean) => countHostReads(() => generate(vlm.model, batch.ids[0]!, { maxNewTokens: steps, greedy: true, replaySteps, inputs: { media: batch.inputs.media } }));
      const eager = run(false);
      expect(eager.result.newTokens[0]!.length, name).toBe(steps);
      expect(eager.reads, name).toBe(steps);
      if (ops.cacheWritesInPlace()) {
        // replayed decoding steps (static cache): the recording is checked once against the eager step (its
        // two outputs read), later calls read the logits rows only
        const first = run(true);
        expect(first.result.newTokens, name).toEqual(eager.result.newTokens);
        expect(first.reads, name).toBe(steps + 2);
        expect(run(true).reads, name).toBe(steps);
      }
      tf.dispose(batch.tensors);
      vlm.dispose();
    }
    expect(presetTokenizer().vocabSize).toBeGreaterThan(0);
  });
});
