// Trainer captureSteps on fusion recipes: the replayed steps give the eager losses and weights bit for bit.
// The presets cover the shapes of the problem: typeB-tiny (visual-expert weights that share the text weights'
// buffers until the first update), flamingo (gated cross-attention), qwen2-vl (M-RoPE positions from the host
// stage) and typeD-tiny (image tokens).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Trainer } from '@vlmix/train';
import { createVlm, type VlmBatch } from '../src/index.js';

function noiseBatches(vlm: ReturnType<typeof createVlm>, n: number): { length: number; get(i: number): VlmBatch; dispose(b: VlmBatch): void } {
  const s = vlm.imageSize;
  return {
    length: n,
    get: (i) => {
      let x = 1000 + i;
      const samples = [0, 1].map(() => {
        const data = new Uint8Array(s * s * 3);
        for (let k = 0; k < data.length; k++) data[k] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
        return { image: { width: s, height: s, data }, question: 'what color is the circle?', answer: i % 2 ? 'red' : 'blue' };
      });
      return vlm.encode(samples);
    },
    dispose: (b) => tf.dispose(b.tensors),
  };
}

async function train(preset: string, captureSteps: boolean) {
  const vlm = createVlm(preset, { seed: 0 });
  const warnings: string[] = [];
  const trainer = new Trainer<VlmBatch>({
    model: vlm.model, data: noiseBatches(vlm, 8), lossFn: (b) => vlm.loss(b), steps: 8, shuffle: false, seed: 1, log: 'silent',
    clipNorm: 1, optimizer: { lr: 1e-3 }, captureSteps, onWarning: (w) => warnings.push(w),
  });
  const tensors = tf.memory().numTensors;
  const { history } = await trainer.train();
  const out = {
    losses: history.map((r) => [r.loss, r.gradNorm]),
    weights: vlm.model.params.list().map((p) => Array.from(p.variable.dataSync())),
    status: trainer.replayStatus(),
    warnings,
    leaked: tf.memory().numTensors - tensors,
  };
  trainer.dispose();
  vlm.dispose();
  return out;
}

describe('captureSteps on fusion presets', () => {
  for (const preset of ['typeB-tiny', 'flamingo', 'qwen2-vl', 'typeD-tiny']) {
    it(`${preset}: losses, gradient norms and weights equal the eager run's bit for bit`, async () => {
      const eager = await train(preset, false);
      const replayed = await train(preset, true);
      expect(replayed.losses).toEqual(eager.losses);
      expect(replayed.weights).toEqual(eager.weights);
      expect(replayed.leaked).toBe(eager.leaked);
      expect(replayed.warnings).toEqual([]);
      // two shapes ('red' and 'blue' answers tokenise to different lengths), alternating: each is recorded
      // on its own and replayed
      expect(replayed.status).toHaveLength(2);
      for (const s of replayed.status) {
        expect(s.state).toBe('replaying');
        expect(s.replays).toBeGreaterThanOrEqual(1);
      }
    });
  }
});
