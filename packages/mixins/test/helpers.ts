/** Test helpers shared by the mixin tests. */
import * as tf from '@tensorflow/tfjs';
import { Mixin, type HookImpls } from '@vlmix/core';
import { assertClose } from '@vlmix/core/testkit';
import { VISION_FEATURES } from '../src/common.js';

/** Parity with a reference fixture: relative 1e-4 of the reference's largest magnitude. */
export function assertParity(actual: tf.Tensor, expected: tf.Tensor, name: string): void {
  const scale = tf.tidy(() => tf.max(tf.abs(expected)).dataSync()[0]!);
  assertClose(actual, expected, { rtol: 1e-4, atol: 1e-4 * scale, name });
}

/** Puts media.features into VISION_FEATURES (stands in for a vision encoder's encodeMedia). */
export class FeatureSource extends Mixin {
  hooks(): HookImpls {
    return {
      encodeMedia: (features, ctx, next) => {
        const out = next(features, ctx);
        const f = ctx.media['features'] as tf.Tensor3D | undefined;
        return f ? out.with(VISION_FEATURES, f, this.name) : out;
      },
    };
  }
}
