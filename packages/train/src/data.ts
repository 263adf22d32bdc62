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
  /**
   * Optional, for sources that load asynchronously (e.g. images decoded by worker threads): the indices
   * that come next, in order. The trainer calls it before each step with the step's batches and a few
   * steps ahead (`TrainerOptions.prefetchSteps`); the source starts loading them and may drop anything
   * not listed. It never changes what get() returns.
   */
  prefetch?(indices: readonly number[]): void;
  /** Optional: resolves once get(index) will not wait for loading; rejects with the loading error. */
  ready?(index: number): Promise<void>;
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

  /** The next `n` indices next() will return (across epoch ends), without advancing. */
  upcoming(n: number): number[] {
    const out: number[] = [];
    let [epoch, index] = [this.epoch, this.index];
    let perm = this.perm;
    while (out.length < n) {
      if (index >= this.source.length) {
        epoch++;
        index = 0;
        perm = null;
      }
      perm ??= epoch === this.epoch && this.perm ? this.perm : epochPermutation(this.seed, epoch, this.source.length, this.shuffle);
      out.push(perm[index++]!);
    }
    return out;
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
