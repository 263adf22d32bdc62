// Calling one hook of a model directly, as a forward pass would (unit tests of a mixin).
import { ForwardContext } from '../context.js';

/** Moves a pass context (from `model.passContext(inputs)`) to `layer` (-1 = outside the layers) and returns it. */
export function atLayer(ctx: ForwardContext, layer: number): ForwardContext {
  if (!Number.isInteger(layer) || layer < -1 || layer >= ctx.config.numLayers) {
    throw new Error(`atLayer: layer must be an integer in [-1, ${ctx.config.numLayers}), got ${layer}`);
  }
  ForwardContext.enterLayer(ctx, layer);
  return ctx;
}
