/** Per-layer key/value cache for incremental decoding. Holds kept tensors; dispose() when done. */
import * as tf from '@tensorflow/tfjs';

export class KVCache {
  private readonly k: (tf.Tensor | null)[];
  private readonly v: (tf.Tensor | null)[];
  /** Mixin state that must survive between decoding steps (e.g. M-RoPE position deltas). */
  readonly meta = new Map<string, unknown>();
  /** Tensors computed at the prompt and reused by the decoding steps (e.g. a vision tower's features). */
  private readonly heldTensors = new Map<string, tf.Tensor>();

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

  /** Keeps a copy of `t` under `key` until the cache is disposed (replacing an earlier one). */
  hold(key: string, t: tf.Tensor): void {
    this.heldTensors.get(key)?.dispose();
    this.heldTensors.set(key, tf.keep(t.clone()));
  }

  /** The tensor held under `key`, if any (owned by the cache: do not dispose it). */
  held(key: string): tf.Tensor | undefined {
    return this.heldTensors.get(key);
  }

  /** Reorders the batch (beam search): row i becomes old row indices[i]. */
  reorder(indices: number[]): void {
    const rows = this.k[0]?.shape[0];
    for (const [key, t] of this.heldTensors) {
      // per-row tensors follow the rows; any other layout is dropped (its owner recomputes it)
      const moved = t.shape[0] === rows ? tf.keep(tf.gather(t, indices, 0)) : null;
      t.dispose();
      if (moved) this.heldTensors.set(key, moved);
      else this.heldTensors.delete(key);
    }
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
    for (const t of this.heldTensors.values()) t.dispose();
    this.heldTensors.clear();
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
  }
}

/**
 * A tensor of the prompt that decoding steps reuse (a vision tower's features, a resampler's latents): at a
 * step after the prompt (pastLength > 0) the one the cache holds under `key`; otherwise `compute()`, held by
 * the cache when there is one. Without a cache it is computed every pass.
 */
export function heldAcrossSteps<T extends tf.Tensor>(ctx: { cache: KVCache | null; pastLength: number }, key: string, compute: () => T): T {
  const reuse = ctx.cache && ctx.pastLength > 0 ? ctx.cache.held(key) : undefined;
  if (reuse) return reuse as T;
  const t = compute();
  ctx.cache?.hold(key, t);
  return t;
}
