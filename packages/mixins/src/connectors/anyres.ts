/**
 * LLaVA-1.6 (LLaVA-NeXT) any-resolution connector: the vision tower sees the base image and its tiles as
 * media [B, 1 + rows*cols, 3, s, s] (host-side tiling: anyResTiles of @vlmix/data); their features are
 * projected (mlp2x_gelu), the tiles' patch features are put back on one (rows*side) x (cols*side) grid, a
 * learned `image_newline` vector ends each grid row, and the base image's tokens come first
 * (HF LlavaNextForConditionalGeneration: `image_newline`, `multi_modal_projector.linear_1/2`).
 * With the original image sizes (`media.image_sizes`, [h, w] per image, as HF) the tile grid is unpadded as
 * HF's `unpad_image` does: the rows (or columns) that only hold the letterbox padding are dropped.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, normal, type HookImpls, type Model } from '@vlmix/core';
import { ProjectorMixin, type ProjectorOptions } from './projectors.js';

/** Media key of the original image sizes [h, w] per image (HF `image_sizes`): turns on the unpadding. */
export const LLAVA_IMAGE_SIZES = 'image_sizes';

export interface AnyResOptions extends ProjectorOptions {
  /** Tile rows and columns of the chosen resolution. */
  grid: [number, number];
  /** Patches per side of one crop (crop / patch). */
  side: number;
}

/**
 * HF LLaVA-NeXT `unpad_image` on a feature grid of height x width for an image of originalSize [h, w]: the
 * kept rows [top, top + height) and columns [left, left + width) (the letterbox padding removed).
 */
export function llavaNextUnpad(height: number, width: number, originalSize: readonly [number, number]): { top: number; height: number; left: number; width: number } {
  const [oh, ow] = originalSize;
  if (!(oh > 0 && ow > 0)) fail(`anyres: original image size must be positive [h, w], got [${originalSize.join(', ')}]`);
  const round7 = (x: number) => Math.round(x * 1e7) / 1e7; // Python round(x, 7) before int()
  if (ow / oh > width / height) {
    const newHeight = Math.trunc(round7(oh * (width / ow)));
    const pad = Math.floor((height - newHeight) / 2);
    return { top: pad, height: height - 2 * pad, left: 0, width };
  }
  const newWidth = Math.trunc(round7(ow * (height / oh)));
  const pad = Math.floor((width - newWidth) / 2);
  return { top: 0, height, left: pad, width: width - 2 * pad };
}

/** Tokens per image: base side^2, then the (unpadded) grid rows x (columns + 1 newline). */
export function anyResTokenCount(grid: readonly [number, number], side: number, originalSize?: readonly [number, number]): number {
  const u = originalSize ? llavaNextUnpad(grid[0] * side, grid[1] * side, originalSize) : { height: grid[0] * side, width: grid[1] * side };
  return side * side + u.height * (u.width + 1);
}

/**
 * Projected features [B, (1 + rows*cols) * side^2, D] (base first, tiles row by row) -> [B, anyResTokenCount, D]:
 * the base's tokens, then the tile grid row by row with `newline` after each row.
 */
export function anyResLayout(tokens: tf.Tensor, newline: tf.Tensor, grid: readonly [number, number], side: number, originalSizes?: readonly (readonly [number, number])[]): tf.Tensor3D {
  const [b, n, d] = tokens.shape as [number, number, number];
  const [rows, cols] = grid;
  const per = side * side;
  if (n !== (1 + rows * cols) * per) fail(`anyres: ${n} image tokens, expected ${(1 + rows * cols) * per} (base + ${rows}x${cols} tiles of ${side}x${side} patches)`);
  let u = { top: 0, height: rows * side, left: 0, width: cols * side };
  if (originalSizes) {
    if (originalSizes.length !== b) fail(`anyres: image_sizes has ${originalSizes.length} entries for ${b} images`);
    const crops = originalSizes.map((o) => llavaNextUnpad(rows * side, cols * side, o));
    u = crops[0]!;
    crops.forEach((c, i) => {
      if (c.height !== u.height || c.width !== u.width) {
        fail(`anyres: image ${i} unpads to ${c.height}x${c.width} grid positions, image 0 to ${u.height}x${u.width}; one batch needs one token count (batch images of the same aspect ratio)`);
      }
    });
  }
  return tf.tidy(() => {
    const base = tf.slice(tokens, [0, 0, 0], [b, per, d]);
    const tiles = tf.reshape(tf.slice(tokens, [0, per, 0], [b, n - per, d]), [b, rows, cols, side, side, d]);
    let canvas = tf.reshape(tf.transpose(tiles, [0, 1, 3, 2, 4, 5]), [b, rows * side, cols * side, d]);
    if (originalSizes) {
      // each image keeps its own window (same size for all; offsets may differ)
      const crops = originalSizes.map((o) => llavaNextUnpad(rows * side, cols * side, o));
      canvas = tf.concat(crops.map((c, i) => tf.slice(canvas, [i, c.top, c.left, 0], [1, c.height, c.width, d])), 0);
    }
    const nl = tf.broadcastTo(tf.reshape(newline, [1, 1, 1, d]), [b, u.height, 1, d]);
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

  /** The pass's `media.image_sizes` ([h, w] per image), read by the media stage before imageTokens. */
  private sizes: [number, number][] | undefined = undefined;

  override imageTokens(features: tf.Tensor): tf.Tensor {
    return tf.tidy(() => anyResLayout(super.imageTokens(features), this.model.param(`${this.name}.image_newline`), this.grid, this.side, this.sizes));
  }

  override hooks(): HookImpls {
    const base = super.hooks();
    return {
      ...base,
      encodeMedia: (state, ctx, next) => {
        const v = ctx.media[LLAVA_IMAGE_SIZES];
        if (v != null && !(Array.isArray(v) && v.every((r) => Array.isArray(r) && r.length === 2))) fail(`media.${LLAVA_IMAGE_SIZES}: expected [h, w] per image (number[][]), got ${typeof v}`);
        this.sizes = v as [number, number][] | undefined;
        try {
          return base.encodeMedia!(state, ctx, next);
        } finally {
          this.sizes = undefined;
        }
      },
    };
  }
}
