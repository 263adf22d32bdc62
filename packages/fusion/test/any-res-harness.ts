// Shared checks for any-resolution presets (llava-1.6, internvl): non-square samples, and each row's logits at
// its own positions, so a mixed batch can be compared with each sample alone.
import * as tf from '@tensorflow/tfjs';
import { makeImage } from '@vlmix/data';
import type { QASample, Vlm } from '../src/index.js';

/** A w x h image with a deterministic texture (different per seed). */
export function texturedSample(w: number, h: number, seed: number): QASample {
  const img = makeImage(w, h, [10, 200, 10]);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 7 + seed * 31) % 251;
  return { image: img, question: 'what color?', answer: 'green' };
}

/** Logits of each row at its own (unpadded) positions. */
export function rowLogits(vlm: Vlm, samples: QASample[]): number[][][] {
  const batch = vlm.encode(samples);
  try {
    const logits = vlm.model.forward(batch.inputs).logits;
    const all = logits.arraySync() as number[][][];
    logits.dispose();
    const m = (batch.inputs.attentionMask as tf.Tensor2D).arraySync();
    return all.map((row, r) => row.filter((_, i) => m[r]![i] === 1));
  } finally {
    tf.dispose(batch.tensors);
  }
}

/** Largest difference between each sample's logits in the mixed batch and alone. */
export function mixedVsAlone(vlm: Vlm, samples: QASample[]): number {
  const together = rowLogits(vlm, samples);
  let diff = 0;
  samples.forEach((s, i) => {
    const alone = rowLogits(vlm, [s])[0]!;
    if (together[i]!.length !== alone.length) throw new Error(`row ${i}: ${together[i]!.length} positions in the batch, ${alone.length} alone`);
    alone.forEach((row, t) => row.forEach((v, k) => (diff = Math.max(diff, Math.abs(v - together[i]![t]![k]!)))));
  });
  return diff;
}
