/**
 * LLaVA-1.6 (LLaVA-NeXT) any-resolution connector: the vision tower sees the base image and its tiles as
 * media [B, 1 + rows*cols, 3, s, s] (host-side tiling: anyResTiles of @vlmix/data); their features are
 * projected (mlp2x_gelu), the tiles' patch features are put back on one (rows*side) x (cols*side) grid, a
 * learned `image_newline` vector ends each grid row, and the base image's tokens come first
 * (HF LlavaNextForConditionalGeneration: `image_newline`, `multi_modal_projector.linear_1/2`).
 * Square images on a square tile grid only: the unpadding of other aspect ratios is not written.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, normal, type Model } from '@vlmix/core';
import { ProjectorMixin, type ProjectorOptions } from './projectors.js';

export interface AnyResOptions extends ProjectorOptions {
  /** Tile rows and columns of the chosen resolution. */
  grid: [number, number];
  /** Patches per side of one crop (crop / patch). */
  side: number;
}

/** Tokens per image: base side^2, then (rows*side) x (cols*side + 1) with the newlines. */
export function anyResTokenCount(grid: readonly [number, number], side: number): number {
  return side * side + grid[0] * side * (grid[1] * side + 1);
}

/**
 * Projected features [B, (1 + rows*cols) * side^2, D] (base first, tiles row by row) -> [B, anyResTokenCount, D]:
 * the base's tokens, then the tile grid row by row with `newline` after each row.
 */
export function anyResLayout(tokens: tf.Tensor, newline: tf.Tensor, grid: readonly [number, number], side: number): tf.Tensor3D {
  const [b, n, d] = tokens.shape as [number, number, number];
  const [rows, cols] = grid;
  const per = side * side;
  if (n !== (1 + rows * cols) * per) fail(`anyres: ${n} image tokens, expected ${(1 + rows * cols) * per} (base + ${rows}x${cols} tiles of ${side}x${side} patches)`);
  return tf.tidy(() => {
    const base = tf.slice(tokens, [0, 0, 0], [b, per, d]);
    const tiles = tf.reshape(tf.slice(tokens, [0, per, 0], [b, n - per, d]), [b, rows, cols, side, side, d]);
    const canvas = tf.reshape(tf.transpose(tiles, [0, 1, 3, 2, 4, 5]), [b, rows * side, cols * side, d]);
    const nl = tf.broadcastTo(tf.reshape(newline, [1, 1, 1, d]), [b, rows * side, 1, d]);
    const grid2 = tf.reshape(tf.concat([canvas, nl], 2), [b, -1, d]);
    return tf.concat([base, grid2], 1) as tf.Tensor3D;
  });
}

export class AnyResProjectorMixin extends ProjectorMixin {
  readonly grid: [number, number];
  readonly side: number;

  constructor(opts: AnyResOptions) {
    super(opts);
    this.recordOptions(opts);
    if (!Array.isArray(opts.grid) || opts.grid.length !== 2 || opts.grid.some((g) => !Number.isInteger(g) || g < 1)) fail(`anyres: grid must be [rows, cols] of positive integers, got ${JSON.stringify(opts.grid)}`);
    if (!Number.isInteger(opts.side) || opts.side < 1) fail(`anyres: side must be a positive integer, got ${JSON.stringify(opts.side)}`);
    this.grid = opts.grid;
    this.side = opts.side;
  }

  override attach(model: Model): void {
    super.attach(model);
    model.params.create(`${this.name}.image_newline`, [model.config.hiddenSize], normal(1 / Math.sqrt(model.config.hiddenSize)), { component: this.name });
  }

  override imageTokens(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => anyResLayout(super.imageTokens(features), this.model.param(`${this.name}.image_newline`), this.grid, this.side));
  }
}
