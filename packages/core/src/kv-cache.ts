/** Per-layer key/value cache for incremental decoding. Holds kept tensors; dispose() when done. */
import * as tf from '@tensorflow/tfjs';

export class KVCache {
  private readonly k: (tf.Tensor | null)[];
  private readonly v: (tf.Tensor | null)[];
  /** Mixin state that must survive between decoding steps (e.g. M-RoPE position deltas). */
  readonly meta = new Map<string, unknown>();

  constructor(readonly numLayers: number) {
    this.k = new Array(numLayers).fill(null);
    this.v = new Array(numLayers).fill(null);
  }

  /** Cached positions (keys per row) before the current forward pass. */
  get length(): number {
    return this.k[0]?.shape[2] ?? 0;
  }

  /** Appends this step's [B, Hkv, T, D] keys/values at `layer`; returns the full keys/values. */
  append(layer: number, k: tf.Tensor, v: tf.Tensor): [tf.Tensor, tf.Tensor] {
    const pk = this.k[layer];
    const pv = this.v[layer];
    const nk = tf.keep(pk ? tf.concat([pk, k], 2) : k.clone());
    const nv = tf.keep(pv ? tf.concat([pv, v], 2) : v.clone());
    pk?.dispose();
    pv?.dispose();
    this.k[layer] = nk;
    this.v[layer] = nv;
    return [nk, nv];
  }

  /** Positions cached at `layer` (differs from `length` only while a forward pass is filling layers). */
  lengthAt(layer: number): number {
    return this.k[layer]?.shape[2] ?? 0;
  }

  /** Reorders the batch (beam search): row i becomes old row indices[i]. */
  reorder(indices: number[]): void {
    const idx = tf.tensor1d(indices, 'int32');
    for (let l = 0; l < this.numLayers; l++) {
      for (const store of [this.k, this.v]) {
        const t = store[l];
        if (!t) continue;
        store[l] = tf.keep(tf.gather(t, idx, 0));
        t.dispose();
      }
    }
    idx.dispose();
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
  }
}
