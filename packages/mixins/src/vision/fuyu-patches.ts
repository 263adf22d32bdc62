/**
 * Fuyu (Adept 2023): no vision encoder. The image is cut into patch x patch squares, each flattened
 * (rows, columns, channels — HF FuyuImageProcessor.patchify_image) and linearly projected to the LM width
 * (`vision_embed_tokens`, as HF FuyuForCausalLM); after each row of patches comes a newline embedding
 * (Fuyu's |NEWLINE| token: here the learned `image_newline`, a copy of that token's embedding row when
 * loading HF weights). The image tokens go to the <image> placeholders: rows x (columns + 1) per image.
 * Any image size whose sides are multiples of the patch size (pad first, as FuyuImageProcessor does).
 * `media.pixels` is [B, C, H, W] (one size per batch) or a list of [1, C, H_i, W_i] (HF's per-image
 * `image_patches`): images of different sizes, whose tokens are packed in order into the placeholders.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, normal, ops, shapeStr, zeros, type HookImpls, type Model } from '@vlmix/core';
import { ImageTokenMixin, type ImageTokenOptions } from '../connectors/projectors.js';
import { MEDIA_PIXELS } from '../common.js';

export interface FuyuPatchOptions extends ImageTokenOptions {
  /** Side of a square patch in pixels (30 in the reference). */
  patchSize: number;
  /** Image channels (default 3). */
  channels?: number;
}

/** [B, C, H, W] -> [B, H/p, W/p, p*p*C]: each patch flattened over (row, column, channel). */
export function fuyuPatchify(pixels: tf.Tensor, p: number): tf.Tensor4D {
  if (pixels.rank !== 4) fail(`fuyu: pixels must be [B, C, H, W], got ${shapeStr(pixels.shape)}`);
  const [b, c, h, w] = pixels.shape as [number, number, number, number];
  if (h % p !== 0 || w % p !== 0) fail(`fuyu: image ${h}x${w} is not a multiple of the patch size ${p}; pad it to ${Math.ceil(h / p) * p}x${Math.ceil(w / p) * p} first (as FuyuImageProcessor)`);
  return tf.tidy(() => {
    const x = tf.reshape(pixels, [b, c, h / p, p, w / p, p]); // b, c, nh, ph, nw, pw
    return tf.reshape(tf.transpose(x, [0, 2, 4, 3, 5, 1]), [b, h / p, w / p, p * p * c]) as tf.Tensor4D; // b, nh, nw, ph, pw, c
  });
}

/** Patches [B, nh, nw, p*p*C] -> tokens [B, nh*(nw+1), D]: linear projection, a newline after each row. */
export function fuyuTokens(patches: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, newline: tf.Tensor): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, nh] = patches.shape as [number, number];
    const d = weight.shape[0]!;
    const emb = ops.linear(patches, weight, bias); // [B, nh, nw, D]
    const nl = tf.broadcastTo(tf.reshape(newline, [1, 1, 1, d]), [b, nh, 1, d]);
    return tf.reshape(tf.concat([emb, nl], 2), [b, -1, d]) as tf.Tensor3D;
  });
}

export class FuyuPatchMixin extends ImageTokenMixin {
  readonly patchSize: number;
  readonly channels: number;

  constructor(opts: FuyuPatchOptions) {
    super(opts);
    this.recordOptions(opts);
    if (!Number.isInteger(opts.patchSize) || opts.patchSize < 1) fail(`fuyu: patchSize must be a positive integer, got ${JSON.stringify(opts.patchSize)}`);
    this.patchSize = opts.patchSize;
    this.channels = opts.channels ?? 3;
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
    const d = model.config.hiddenSize;
    const k = this.patchSize * this.patchSize * this.channels;
    const c = { component: this.name };
    model.params.create(`${this.name}.vision_embed_tokens.weight`, [d, k], normal(1 / Math.sqrt(k)), c);
    model.params.create(`${this.name}.vision_embed_tokens.bias`, [d], zeros, c);
    model.params.create(`${this.name}.image_newline`, [d], normal(0.02), c);
  }

  /** Patch features [B, N, p*p*C] (one row of patches) -> tokens; the full layout is fuyuTokens. */
  imageTokens(features: tf.Tensor): tf.Tensor {
    const m = this.model;
    return ops.linear(features, m.param(`${this.name}.vision_embed_tokens.weight`), m.param(`${this.name}.vision_embed_tokens.bias`));
  }

  override hooks(): HookImpls {
    const base = super.hooks();
    return {
      ...base,
      // The media stage: pixels -> patch tokens with row newlines (no encoder before it).
      encodeMedia: (state, ctx, next) => {
        const out = next(state, ctx);
        const pixels = ctx.media[MEDIA_PIXELS] as tf.Tensor | tf.Tensor[] | undefined;
        const plan = out.require(this.planKey, this.name);
        if (pixels == null || (plan.total === 0 && ctx.pastLength > 0)) return out;
        const one = (px: tf.Tensor) => fuyuTokens(fuyuPatchify(px, this.patchSize), ctx.param(`${this.name}.vision_embed_tokens.weight`),
          ctx.param(`${this.name}.vision_embed_tokens.bias`), ctx.param(`${this.name}.image_newline`));
        if (Array.isArray(pixels)) {
          if (pixels.length !== ctx.batch) fail(`media.${MEDIA_PIXELS}: expected one image per row (${ctx.batch}), got a list of ${pixels.length}`);
          pixels.forEach((px, i) => {
            if (!(px instanceof tf.Tensor) || px.rank !== 4 || px.shape[0] !== 1) fail(`media.${MEDIA_PIXELS}[${i}]: expected a [1, C, H, W] tensor, got ${px instanceof tf.Tensor ? shapeStr(px.shape) : typeof px}`);
          });
          // different sizes: each image's tokens in turn, packed [1, total, D] (scatterWithPlan)
          const tokens = tf.tidy(() => tf.concat(pixels.map(one), 1));
          return out.with(this.tokensKey, tokens as tf.Tensor3D, this.name);
        }
        return out.with(this.tokensKey, tf.tidy(() => one(pixels)), this.name);
      },
    };
  }
}
