/**
 * The trainer owns the data order: each epoch is a permutation of [0, length) seeded only by
 * (seed, epoch), so a position (epoch, index) is all a checkpoint needs to continue the stream.
 */
import { Rng, fail } from '@vlmix/core';

/**
 * Random access to ready-made batches (batching is the source's job). A source that builds tensors
 * in `get` (e.g. encoded VLM batches) frees them in `dispose`, which the trainer calls once it is done
 * with the batch: the batch is built outside the gradient tape and lives for one micro-step.
 */
export interface DataSource<B> {
  readonly length: number;
  get(index: number): B;
  dispose?(batch: B): void;
}

/** The order of epoch `epoch`: a shuffle seeded by `${seed}/data/epoch/${epoch}` (identity when shuffle is false). */
export function epochPermutation(seed: string, epoch: number, length: number, shuffle = true): number[] {
  const idx = Array.from({ length }, (_, i) => i);
  return shuffle ? new Rng(`${seed}/data/epoch/${epoch}`).shuffle(idx) : idx;
}

export class DataStream<B> {
  epoch = 0;
  /** Position within the current epoch's permutation of the next item. */
  index = 0;
  private perm: number[] | null = null;

  constructor(readonly source: DataSource<B>, readonly seed: string, readonly shuffle = true) {
    if (!Number.isInteger(source.length) || source.length <= 0) fail(`DataSource: length must be a positive integer, got ${source.length}`);
  }

  next(): B {
    if (this.index >= this.source.length) {
      this.epoch++;
      this.index = 0;
      this.perm = null;
    }
    this.perm ??= epochPermutation(this.seed, this.epoch, this.source.length, this.shuffle);
    return this.source.get(this.perm[this.index++]!);
  }

  position(): { epoch: number; index: number } {
    return { epoch: this.epoch, index: this.index };
  }

  seek(epoch: number, index: number): void {
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0 || index > this.source.length) {
      fail(`DataStream.seek: invalid position epoch ${epoch}, index ${index} (length ${this.source.length})`);
    }
    if (epoch !== this.epoch) this.perm = null;
    this.epoch = epoch;
    this.index = index;
  }
}
