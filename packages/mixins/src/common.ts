/**
 * Conventions shared by the catalogue (see docs/architecture.md):
 * - ctx.media['pixels']: float32 [B, 3, H, W] (NCHW, normalised) images, one per row (or
 *   [B, N, 3, H, W] for several media per row where a component supports it).
 * - ctx.state['vision.features']: [B, N, Cv] encoder output written by a vision mixin's prepare().
 * - ctx.state['media.latents']: [B, M, L, C] resampled media for cross-attention (Flamingo).
 * - ctx.tokenTypes: [B, T] int32, 1 at image-token positions (projected features / VQ codes), 0 text.
 * Parameters are created in the host model's ParamStore under the mixin's prefix, component = mixin name.
 */
export const MEDIA_PIXELS = 'pixels';
export const STATE_VISION_FEATURES = 'vision.features';
export const STATE_MEDIA_LATENTS = 'media.latents';
