/**
 * InternVL's connector: the ViT's patch features on their h x w grid are pixel-shuffled (each 2x2 block of
 * neighbours concatenated: 4x fewer tokens, 4x wider; `pixel_shuffle` with downsample_ratio 0.5, ps_version
 * v2, as InternVLChatModel) and projected by `mlp1` = LayerNorm -> Linear -> GELU -> Linear.
 * Reference names: InternVLChatModel `mlp1.0` (LayerNorm), `mlp1.1`, `mlp1.3` (Linear).
 */
import * as tf from '@tensorflow/tfjs';
import { fail, normal, ones, ops, shapeStr, zeros, type Model } from '@vlmix/core';
import { ImageTokenMixin, type ImageTokenOptions } from './projectors.js';

export interface PixelShuffleOptions extends ImageTokenOptions {
  /** Vision feature width Cv. */
  inputSize: number;
  /** 1 / downsample_ratio: the side of the merged block (default 2, InternVL's 0.5). */
  factor?: number;
}

/**
 * InternVL pixel_shuffle (ps_version v2) on [N, W, H, C] with scale 1 / factor, written as its views and
 * permutes: -> [N, W, H/f, C*f] -> [N, H/f, W, C*f] -> [N, H/f, W/f, C*f*f] -> [N, W/f, H/f, C*f*f].
 */
export function internvlPixelShuffle(x: tf.Tensor, factor = 2): tf.Tensor4D {
  if (x.rank !== 4) fail(`pixelShuffle: expected [N, W, H, C], got ${shapeStr(x.shape)}`);
  const [n, w, h, c] = x.shape as [number, number, number, number];
  if (w % factor !== 0 || h % factor !== 0) fail(`pixelShuffle: the ${w}x${h} patch grid is not divisible by ${factor}`);
  return tf.tidy(() => {
    let y = tf.reshape(x, [n, w, h / factor, c * factor]);
    y = tf.transpose(y, [0, 2, 1, 3]);
    y = tf.reshape(y, [n, h / factor, w / factor, c * factor * factor]);
    return tf.transpose(y, [0, 2, 1, 3]) as tf.Tensor4D;
  });
}

export class PixelShuffleProjectorMixin extends ImageTokenMixin {
  readonly inputSize: number;
  readonly factor: number;

  constructor(opts: PixelShuffleOptions) {
    super(opts);
    this.recordOptions(opts);
    if (!Number.isInteger(opts.inputSize) || opts.inputSize < 1) fail(`pixelShuffle: inputSize must be a positive integer, got ${JSON.stringify(opts.inputSize)}`);
    this.inputSize = opts.inputSize;
    this.factor = opts.factor ?? 2;
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
    const cin = this.inputSize * this.factor ** 2;
    const d = model.config.hiddenSize;
    const c = { component: this.name };
    const p = `${this.name}.mlp1`;
    model.params.create(`${p}.0.weight`, [cin], ones, c);
    model.params.create(`${p}.0.bias`, [cin], zeros, c);
    model.params.create(`${p}.1.weight`, [d, cin], normal(1 / Math.sqrt(cin)), c);
    model.params.create(`${p}.1.bias`, [d], zeros, c);
    model.params.create(`${p}.3.weight`, [d, d], normal(1 / Math.sqrt(d)), c);
    model.params.create(`${p}.3.bias`, [d], zeros, c);
  }

  /** Patch features [B, h*w, Cv] (no class token, row-major square grid) -> [B, h*w / factor^2, D]. */
  imageTokens(features: tf.Tensor): tf.Tensor {
    const m = this.model;
    return tf.tidy(() => {
      const [b, n, cv] = features.shape as [number, number, number];
      const side = Math.round(Math.sqrt(n));
      if (side * side !== n) fail(`pixelShuffle: expected a square grid of patch features, got ${n} tokens`);
      const shuffled = internvlPixelShuffle(tf.reshape(features, [b, side, side, cv]), this.factor);
      const x = tf.reshape(shuffled, [b, -1, cv * this.factor ** 2]);
      const p = (k: string) => m.param(`${this.name}.mlp1.${k}`);
      const hdn = ops.gelu(ops.linear(ops.layerNorm(x, p('0.weight'), p('0.bias'), 1e-5), p('1.weight'), p('1.bias')), 'none');
      return ops.linear(hdn, p('3.weight'), p('3.bias'));
    });
  }
}
