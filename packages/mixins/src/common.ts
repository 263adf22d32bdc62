/**
 * Conventions shared by the catalogue (see docs/writing-a-mixin.md):
 * - ctx.media['pixels']: float32 [B, 3, H, W] (NCHW, normalised) images, one per row (or
 *   [B, N, 3, H, W] for several media per row where a component supports it).
 * - VISION_FEATURES ('vision.features'): [B, N, Cv] encoder output, written by a vision mixin's encodeMedia.
 * - MEDIA_LATENTS ('media.latents'): [B, M, L, C] resampled media for cross-attention (Flamingo).
 * - token types: [B, T] int32, 1 at image-token positions (projected features / VQ codes), 0 text;
 *   set in the host stage (tokenTypes hooks), read as ctx.tokenTypes.
 * Parameters are created in the host model's ParamStore under the mixin's prefix, component = mixin name.
 */
import type * as tf from '@tensorflow/tfjs';
import { stateKey } from '@vlmix/core';

export { ParamScope, type ParamOverrides } from '@vlmix/core';

export const MEDIA_PIXELS = 'pixels';
/** Image features [B, N, Cv] of a vision encoder (encodeMedia). */
export const VISION_FEATURES = stateKey<tf.Tensor3D>('vision.features');
/** Resampled media [B, M, L, C] for cross-attention (Perceiver, encodeMedia). */
export const MEDIA_LATENTS = stateKey<tf.Tensor4D>('media.latents');
/** @deprecated the key's name; use VISION_FEATURES. */
export const STATE_VISION_FEATURES = VISION_FEATURES.name;
/** @deprecated the key's name; use MEDIA_LATENTS. */
export const STATE_MEDIA_LATENTS = MEDIA_LATENTS.name;
