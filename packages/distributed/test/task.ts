// The training task shared by the 2-rank workers and the single-process references: a 1-layer GPT-2
// learning to copy a sequence (as in packages/train/test), global batches of 8 rows.
import * as tf from '@tensorflow/tfjs';
import { Rng, createGpt2, type Model } from '@vlmix/core';

export const VOCAB = 16;
const SEP = 1;
export const GLOBAL_BATCH = 8;
export const BATCHES = 6;
export const LR = 1e-2;
export const CLIP = 1.0;

export function tinyModel(): Model {
  return createGpt2({ vocabSize: VOCAB, hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 16, seed: 7 });
}

export interface Rows {
  ids: number[][];
  labels: number[][];
}

/** Global batch i: `rows` rows of x1..x4 SEP x1..x4, loss on the copied half; a pure function of i. */
export function globalBatch(i: number, rows = GLOBAL_BATCH): Rows {
  const rng = new Rng(`copy/${i}`);
  const out: Rows = { ids: [], labels: [] };
  for (let r = 0; r < rows; r++) {
    const xs = Array.from({ length: 4 }, () => 2 + rng.int(VOCAB - 2));
    const seq = [...xs, SEP, ...xs];
    out.ids.push(seq.slice(0, -1));
    out.labels.push(seq.slice(1).map((t, j) => (j >= 4 ? t : -100)));
  }
  return out;
}

export function slice(b: Rows, start: number, end: number): Rows {
  return { ids: b.ids.slice(start, end), labels: b.labels.slice(start, end) };
}

/** Mean cross-entropy over the rows' labelled tokens (every row has the same number). */
export function lossOf(model: Model, b: Rows): tf.Scalar {
  return model.loss({ inputIds: b.ids }, tf.tensor2d(b.labels, undefined, 'int32'), { ignoreIndex: -100 });
}
