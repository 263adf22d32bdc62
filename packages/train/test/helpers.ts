// Shared test fixtures: a very small GPT-2 and a synthetic copy task.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { createGpt2, type Model } from '@vlmix/core';
import type { DataSource, LossFn } from '../src/index.js';

export const VOCAB = 16;
export const SEP = 1;

export function tinyModel(seed = 0, dropout = 0): Model {
  return createGpt2({ vocabSize: VOCAB, hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 16, seed, attentionDropout: dropout, hiddenDropout: dropout, embeddingDropout: dropout });
}

export interface CopyBatch {
  ids: number[][];
  labels: number[][];
}

/** One sequence: x1..xL SEP x1..xL; loss only on the copied half (L targets per row). */
function copyRow(rng: () => number, len: number): { ids: number[]; labels: number[] } {
  const xs = Array.from({ length: len }, () => 2 + Math.floor(rng() * (VOCAB - 2)));
  const seq = [...xs, SEP, ...xs];
  const ids = seq.slice(0, -1);
  const labels = seq.slice(1).map((t, j) => (j >= len ? t : -100));
  return { ids, labels };
}

/** `length` batches of `batchSize` rows; item i is a pure function of (seed, i). */
export function copyData(length: number, batchSize: number, seqLen = 4, seed = 'copy'): DataSource<CopyBatch> {
  return {
    length,
    get(i: number): CopyBatch {
      const rng = seedrandom(`${seed}/${i}`);
      const rows = Array.from({ length: batchSize }, () => copyRow(rng, seqLen));
      return { ids: rows.map((r) => r.ids), labels: rows.map((r) => r.labels) };
    },
  };
}

/** Joins items of a data source pairwise into batches twice as large. */
export function mergedData(src: DataSource<CopyBatch>, groups: number[][]): DataSource<CopyBatch> {
  return {
    length: groups.length,
    get(i: number): CopyBatch {
      const parts = groups[i]!.map((j) => src.get(j));
      return { ids: parts.flatMap((p) => p.ids), labels: parts.flatMap((p) => p.labels) };
    },
  };
}

export const copyLoss: LossFn<CopyBatch> = (batch, { model }) =>
  (model as Model).loss({ inputIds: batch.ids }, tf.tensor2d(batch.labels, undefined, 'int32'), { ignoreIndex: -100 });

export const countTokens = (b: CopyBatch) => b.ids.length * b.ids[0]!.length;

/** A writable that records what is written. */
export function captureStream(isTTY = false): { write(s: string): boolean; isTTY: boolean; text(): string } {
  const chunks: string[] = [];
  return { isTTY, write: (s: string) => (chunks.push(s), true), text: () => chunks.join('') };
}

