/**
 * Freeing intermediates as soon as they are read. A tf.tidy frees its tensors only when it ends, so a layer's
 * transients would all be live at its peak, where PyTorch frees each one when its last reference goes.
 * Disposing is safe under the gradient tape too: the engine keeps its own reference to whatever a gradient
 * needs (saved inputs and outputs), so this only lowers the forward pass's peak.
 */
import type * as tf from '@tensorflow/tfjs';

/**
 * Applies `fs` in order, x -> f1(x) -> f2(..) ..., disposing x and each intermediate once the next function
 * has read it (never a function's own input returned unchanged). Only for a tensor that nothing else holds:
 * a fresh intermediate, never a parameter, an input, or a tensor stored in the pass's state.
 */
export function consume(x: tf.Tensor, ...fs: ((x: tf.Tensor) => tf.Tensor)[]): tf.Tensor {
  let cur = x;
  for (const f of fs) {
    const next = f(cur);
    if (next !== cur) cur.dispose();
    cur = next;
  }
  return cur;
}
