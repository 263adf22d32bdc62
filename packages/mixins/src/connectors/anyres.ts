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
import { selectBestResolution } from '@vlmix/data';
import { ProjectorMixin, type ProjectorOptions } from './projectors.js';

/** Media key of the original image sizes [h, w] per image (HF `image_sizes`): turns on the unpadding. */
export const LLAVA_IMAGE_SIZES = 'image_sizes';

export interface AnyResOptions extends ProjectorOptions {
  /** Tile rows and columns when every image uses one resolution (ignored with `pinpoints`). */
  grid?: [number, number];
  /** Patches per side of one crop (crop / patch). */
  side: number;
  /**
   * HF `image_grid_pinpoints` ([h, w] in pixels, multiples of `cropSize`): each image's grid is the pinpoint
   * select_best_resolution picks for its `media.image_sizes` entry, as HF LlavaNext does; images of different
   * sizes then get different token counts in one batch.
   */
  pinpoints?: [number, number][];
  /** The vision tower's input side in pixels (HF vision_config.image_size); needed with `pinpoints`. */
  cropSize?: number;
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
 * Projected features [B, M * side^2, D] (per image: base first, then its tiles row by row; M >= 1 + rows*cols,
 * tiles past an image's grid are padding) -> the image tokens: the base's tokens, then the tile grid row by
 * row with `newline` after each row (HF pack_image_features). `grids` is one [rows, cols] for every image or
 * one per image; with `originalSizes` each grid is unpadded for its image. Returns [B, n, D] when every image
 * gets the same count n, else the images' tokens packed [1, total, D] (see scatterWithPlan).
 */
export function anyResLayout(tokens: tf.Tensor, newline: tf.Tensor, grids: readonly [number, number] | readonly (readonly [number, number])[], side: number, originalSizes?: readonly (readonly [number, number])[]): tf.Tensor3D {
  const [b, n, d] = tokens.shape as [number, number, number];
  const per = side * side;
  const perImage = Array.isArray(grids[0]);
  const gridOf = (i: number) => (perImage ? (grids as readonly (readonly [number, number])[])[i]! : (grids as readonly [number, number]));
  if (perImage && grids.length !== b) fail(`anyres: ${grids.length} grids for ${b} images`);
  if (originalSizes && originalSizes.length !== b) fail(`anyres: image_sizes has ${originalSizes.length} entries for ${b} images`);
  for (let i = 0; i < b; i++) {
    const [rows, cols] = gridOf(i);
    const need = (1 + rows * cols) * per;
    if (perImage ? n < need : n !== need) {
      fail(`anyres: ${n} image tokens${perImage ? ` for image ${i}` : ''}, expected ${perImage ? 'at least ' : ''}${need} (base + ${rows}x${cols} tiles of ${side}x${side} patches)`);
    }
  }
  return tf.tidy(() => {
    const nl = tf.reshape(newline, [1, 1, d]);
    const images = Array.from({ length: b }, (_, i) => {
      const [rows, cols] = gridOf(i);
      const x = tf.reshape(tf.slice(tokens, [i, 0, 0], [1, (1 + rows * cols) * per, d]), [-1, d]);
      const tiles = tf.reshape(tf.slice(x, [per, 0], [rows * cols * per, d]), [rows, cols, side, side, d]);
      let canvas = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [rows * side, cols * side, d]);
      if (originalSizes) {
        const c = llavaNextUnpad(rows * side, cols * side, originalSizes[i]!);
        canvas = tf.slice(canvas, [c.top, c.left, 0], [c.height, c.width, d]);
      }
      const h = canvas.shape[0]!;
      const withNl = tf.concat([canvas, tf.broadcastTo(nl, [h, 1, d])], 1);
      return tf.concat([tf.slice(x, [0, 0], [per, d]), tf.reshape(withNl, [-1, d])], 0);
    });
    const same = images.every((t) => t.shape[0] === images[0]!.shape[0]);
    return (same ? tf.stack(images) : tf.expandDims(tf.concat(images, 0), 0)) as tf.Tensor3D;
  });
}

/** HF LLaVA-NeXT `get_anyres_image_grid_shape`: the tile [rows, cols] of the pinpoint chosen for an image [h, w]. */
export function anyResGridShape(imageSize: readonly [number, number], pinpoints: readonly (readonly [number, number])[], crop: number): [number, number] {
  const [h, w] = selectBestResolution(imageSize[0], imageSize[1], pinpoints);
  if (h % crop !== 0 || w % crop !== 0) fail(`anyres: pinpoint ${h}x${w} is not a multiple of the crop size ${crop}`);
  return [h / crop, w / crop];
}

export class AnyResProjectorMixin extends ProjectorMixin {
  readonly grid: [number, number] | undefined;
  readonly side: number;
  readonly pinpoints: [number, number][] | undefined;
  readonly cropSize: number | undefined;

  constructor(opts: AnyResOptions) {
    super(opts);
    this.recordOptions(opts);
    const pair = (g: unknown) => Array.isArray(g) && g.length === 2 && g.every((x) => Number.isInteger(x) && x >= 1);
    if (!Number.isInteger(opts.side) || opts.side < 1) fail(`anyres: side must be a positive integer, got ${JSON.stringify(opts.side)}`);
    if (opts.pinpoints != null) {
      if (!Array.isArray(opts.pinpoints) || opts.pinpoints.length === 0 || !opts.pinpoints.every(pair)) fail(`anyres: pinpoints must be a non-empty list of [h, w] pixel sizes, got ${JSON.stringify(opts.pinpoints)}`);
      if (!Number.isInteger(opts.cropSize) || opts.cropSize! < 1) fail(`anyres: cropSize (the tower's input side in pixels) is needed with pinpoints, got ${JSON.stringify(opts.cropSize)}`);
      const bad = opts.pinpoints.find(([h, w]) => h % opts.cropSize! !== 0 || w % opts.cropSize! !== 0);
      if (bad) fail(`anyres: pinpoint [${bad.join(', ')}] is not a multiple of cropSize ${opts.cropSize}`);
    } else if (!pair(opts.grid)) {
      fail(`anyres: grid must be [rows, cols] of positive integers (or give pinpoints and cropSize), got ${JSON.stringify(opts.grid)}`);
    }
    this.grid = opts.pinpoints ? undefined : opts.grid;
    this.side = opts.side;
    this.pinpoints = opts.pinpoints;
    this.cropSize = opts.cropSize;
  }

  /** The tile grid of each image ([rows, cols]), from the pinpoints and the original sizes. */
  gridsFor(sizes: readonly (readonly [number, number])[]): [number, number][] {
    return sizes.map((s) => (this.pinpoints ? anyResGridShape(s, this.pinpoints, this.cropSize!) : this.grid!));
  }

  /** Tokens the image of original size [h, w] gets (what the prompt's placeholders must number). */
  tokenCount(size: readonly [number, number]): number {
    return anyResTokenCount(this.gridsFor([size])[0]!, this.side, size);
  }

  override attach(model: Model): void {
    super.attach(model);
    model.params.create(`${this.name}.image_newline`, [model.config.hiddenSize], normal(1 / Math.sqrt(model.config.hiddenSize)), { component: this.name });
  }

  /** The pass's `media.image_sizes` ([h, w] per image), read by the media stage before imageTokens. */
  private sizes: [number, number][] | undefined = undefined;

  override imageTokens(features: tf.Tensor): tf.Tensor {
    if (this.pinpoints && !this.sizes) fail(`${this.name}: with pinpoints each image's grid comes from media.${LLAVA_IMAGE_SIZES} ([h, w] per image), which is not set`);
    const grids = this.pinpoints ? this.gridsFor(this.sizes!) : this.grid!;
    return tf.tidy(() => anyResLayout(super.imageTokens(features), this.model.param(`${this.name}.image_newline`), grids, this.side, this.sizes));
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
