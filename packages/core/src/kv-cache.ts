/**
 * Per-layer key/value cache for incremental decoding. Holds kept tensors; dispose() when done.
 *
 * Two layouts (HF's DynamicCache and StaticCache):
 * - dynamic (default): each layer's keys/values grow by concatenation, [B, Hkv, length, D];
 * - static (`capacity`): each layer's keys/values are preallocated as [B, Hkv, capacity, D] on the first
 *   write and each pass writes its positions into them (ops.cacheWrite: in place on vlmix-cpu, no copy of
 *   the cache per token). Attention then runs over all `capacity` slots, the slots not yet written masked
 *   (the model builds that mask from `positionTensor()`), so every decoding step has the same shapes: a
 *   step that can be recorded once and replayed (capture.ts; generate does).
 */
import * as tf from '@tensorflow/tfjs';
import { fail } from './errors.js';
import * as ops from './ops/index.js';

export interface KVCacheOptions {
  /** Preallocate room for this many positions per row (a static cache); default: grow per pass (dynamic). */
  capacity?: number;
}

export class KVCache {
  private readonly k: (tf.Tensor | null)[];
  private readonly v: (tf.Tensor | null)[];
  /** Static layout: positions written per layer (the buffers' own length is the capacity). */
  private readonly filled: number[];
  /** Static layout: the int32 scalar of the position the current pass writes at (see positionTensor). */
  private position: { value: number; t: tf.Tensor } | null = null;
  #capacity: number | null;
  /** Mixin state that must survive between decoding steps (e.g. M-RoPE position deltas). */
  readonly meta = new Map<string, unknown>();
  /** Tensors computed at the prompt and reused by the decoding steps (e.g. a vision tower's features). */
  private readonly heldTensors = new Map<string, tf.Tensor>();

  constructor(readonly numLayers: number, opts: KVCacheOptions = {}) {
    if (!Number.isInteger(numLayers) || numLayers < 1) fail(`KVCache: numLayers must be a positive integer, got ${JSON.stringify(numLayers)}`);
    const cap = opts.capacity;
    if (cap != null && !(Number.isInteger(cap) && cap >= 1)) fail(`KVCache: capacity must be a positive integer (positions per row), got ${JSON.stringify(cap)}`);
    this.#capacity = cap ?? null;
    this.k = new Array(numLayers).fill(null);
    this.v = new Array(numLayers).fill(null);
    this.filled = new Array(numLayers).fill(0);
  }

  /** Room per row of a static cache (see `grow`); null for a dynamic one. */
  get capacity(): number | null {
    return this.#capacity;
  }

  /**
   * Static layout: more room per row, the written positions kept (each buffer copied once into a larger
   * one). Generation grows its cache in steps rather than reserving prompt + maxNewTokens up front, so a
   * long budget that ends early neither holds nor attends over slots it never uses.
   */
  grow(capacity: number): void {
    const cap = this.#capacity;
    if (cap === null) fail('KVCache.grow: only a static cache (made with a capacity) grows');
    if (!Number.isInteger(capacity) || capacity < cap) fail(`KVCache.grow: expected an integer >= the capacity ${cap}, got ${JSON.stringify(capacity)}`);
    if (capacity === cap) return;
    for (const store of [this.k, this.v]) {
      store.forEach((t, l) => {
        if (!t) return;
        const [b, h, , d] = t.shape as number[];
        store[l] = tf.tidy(() => tf.keep(tf.concat([t, tf.zeros([b!, h!, capacity - cap, d!])], 2)));
        t.dispose();
      });
    }
    this.#capacity = capacity;
  }

  /** Whether keys/values are preallocated ([B, Hkv, capacity, D]) rather than grown. */
  get isStatic(): boolean {
    return this.#capacity !== null;
  }

  /** Cached positions (keys per row) before the current forward pass. */
  get length(): number {
    return this.lengthAt(0);
  }

  /** Positions cached at `layer` (differs from `length` only while a forward pass is filling layers). */
  lengthAt(layer: number): number {
    return this.#capacity !== null ? this.filled[layer]! : this.k[layer]?.shape[2] ?? 0;
  }

  /**
   * Static layout: the int32 scalar `position` (default: `length`), the cache's own tensor (do not dispose
   * it). Every write of a pass and the model's mask read this one tensor, so that a caller that creates it
   * before a recorded step (capture.ts) can pass it as one of the step's inputs.
   */
  positionTensor(position = this.length): tf.Tensor {
    if (this.position?.value !== position) {
      this.position?.t.dispose();
      this.position = { value: position, t: tf.keep(tf.scalar(position, 'int32')) };
    }
    return this.position.t;
  }

  /**
   * Appends this step's [B, Hkv, T, D] keys/values at `layer`; returns the keys/values attention reads:
   * every cached position (dynamic), or the whole preallocated buffers (static; slots past the written
   * positions hold zeros and must be masked, as the model's mask does).
   */
  append(layer: number, k: tf.Tensor, v: tf.Tensor): [tf.Tensor, tf.Tensor] {
    if (this.#capacity !== null) return this.write(layer, k, v, this.#capacity);
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

  private write(layer: number, k: tf.Tensor, v: tf.Tensor, cap: number): [tf.Tensor, tf.Tensor] {
    const t = k.shape[2]!;
    const at = this.filled[layer]!;
    if (at + t > cap) fail(`KVCache: capacity ${cap} positions per row; layer ${layer} holds ${at} and this pass adds ${t} (make the cache with a larger capacity)`);
    const pos = this.positionTensor(at);
    const stores = [this.k, this.v];
    [k, v].forEach((x, i) => {
      const store = stores[i]!;
      const [b, h, , d] = x.shape as number[];
      const buf = store[layer] ?? tf.keep(tf.zeros([b!, h!, cap, d!]));
      const written = ops.cacheWrite(buf, x, pos);
      // in place (same buffer): the buffer stays the cache's tensor, so a recorded step's inputs stay live
      if (written.dataId === buf.dataId) {
        written.dispose();
        store[layer] = buf;
      } else {
        buf.dispose();
        store[layer] = tf.keep(written);
      }
    });
    this.filled[layer] = at + t;
    return [this.k[layer]!, this.v[layer]!];
  }

  /**
   * Static layout: counts `t` positions as written at every layer without running a pass: for a caller that
   * replayed a recorded decoding step (its kernels wrote the buffers in place; the model code did not run).
   */
  advance(t: number): void {
    const cap = this.#capacity;
    if (cap === null) fail('KVCache.advance: only a static cache (made with a capacity) advances without a pass');
    if (!Number.isInteger(t) || t < 0 || this.length + t > cap) fail(`KVCache.advance: expected an integer in [0, ${cap - this.length}], got ${t}`);
    for (let l = 0; l < this.numLayers; l++) this.filled[l] = this.filled[l]! + t;
  }

  /** The tensors the cache owns (keys, values, held tensors), in a fixed order: a recorded step's inputs. */
  tensors(): tf.Tensor[] {
    const out: tf.Tensor[] = [];
    for (let l = 0; l < this.numLayers; l++) for (const t of [this.k[l], this.v[l]]) if (t) out.push(t);
    return [...out, ...this.heldTensors.values()];
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
    this.position?.t.dispose();
    this.position = null;
    for (const t of this.heldTensors.values()) t.dispose();
    this.heldTensors.clear();
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
    this.filled.fill(0);
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
