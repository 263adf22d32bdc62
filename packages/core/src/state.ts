/**
 * Typed state of a forward pass. A `StateKey<T>` names a value and carries its type, so
 * `ctx.state.get(VISION_FEATURES)` is a `tf.Tensor3D` without a cast. Values are written once: the host
 * stage (`hostInputs` hook) and the media stage (`encodeMedia` hook) each return a new `StateMap` with
 * their entries added, and a second write of one key fails naming both writers. Inside the layers the
 * state is read-only, except `memo()`: a value derived once per pass and shared by every layer (e.g.
 * M-RoPE's cos/sin tables).
 */
import * as tf from '@tensorflow/tfjs';
import { fail } from './errors.js';

export interface StateKey<T> {
  readonly name: string;
  /** Type carrier only (never set). */
  readonly __value?: T;
}

/** A typed key, e.g. `stateKey<tf.Tensor3D>('vision.features')`. Keys with the same name are the same entry. */
export function stateKey<T>(name: string): StateKey<T> {
  if (typeof name !== 'string' || name === '') fail(`stateKey: name must be a non-empty string, got ${JSON.stringify(name)}`);
  return Object.freeze({ name }) as StateKey<T>;
}

interface Entry {
  value: unknown;
  /** Who wrote it (a mixin name, 'base', or 'input'). */
  owner: string;
}

/** An immutable map from typed keys to values; `with()` returns a new map. */
export class StateMap {
  static readonly empty = new StateMap(new Map());

  private constructor(private readonly entries: ReadonlyMap<string, Entry>) {}

  get<T>(key: StateKey<T>): T | undefined {
    return this.entries.get(key.name)?.value as T | undefined;
  }

  has(key: StateKey<unknown>): boolean {
    return this.entries.has(key.name);
  }

  /** The value, or an error naming `who` needs it and that nothing wrote it. */
  require<T>(key: StateKey<T>, who: string): T {
    const e = this.entries.get(key.name);
    if (!e) fail(`${who}: needs state '${key.name}', which no stage wrote (state holds: ${this.names().join(', ') || '(nothing)'})`);
    return e.value as T;
  }

  /** Who wrote `key` (undefined when unset). */
  ownerOf(key: StateKey<unknown>): string | undefined {
    return this.entries.get(key.name)?.owner;
  }

  /** A new map with `key` set. Each key is written once per pass: a second writer is an error naming both. */
  with<T>(key: StateKey<T>, value: T, owner: string): StateMap {
    const prev = this.entries.get(key.name);
    if (prev) fail(`state '${key.name}': already written by '${prev.owner}'; '${owner}' cannot write it again (use another key)`);
    const next = new Map(this.entries);
    next.set(key.name, { value, owner });
    return new StateMap(next);
  }

  /** Both maps' entries; a key present in both is an error naming both writers. */
  merge(other: StateMap): StateMap {
    let out: StateMap = this;
    for (const [name, e] of other.entries) out = out.with(stateKey(name), e.value, e.owner);
    return out;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Every tensor held, also inside plain objects and arrays (for keep/dispose). */
  tensors(): tf.Tensor[] {
    const out: tf.Tensor[] = [];
    for (const e of this.entries.values()) collectTensors(e.value, out);
    return out;
  }

  /**
   * The map's host values as text, its tensors by shape and dtype only: two passes with equal keys upload
   * the same host-derived constants (a replayed decoding step's signature, capture.ts).
   */
  hostKey(): string {
    return hostValuesKey([...this.entries].map(([name, e]) => [name, e.value]));
  }
}

/** Text of a value's host data (typed arrays, Maps and Sets as lists), each tensor as `dtype[shape]`. */
export function hostValuesKey(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof tf.Tensor) return `${v.dtype}[${v.shape.join('x')}]`;
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
    if (v instanceof Map || v instanceof Set) return [...v];
    return v;
  }) ?? '';
}

/** Tensors in a value: itself, or inside arrays and plain objects (two levels deep at most). */
export function collectTensors(v: unknown, out: tf.Tensor[] = [], depth = 0): tf.Tensor[] {
  if (v instanceof tf.Tensor) out.push(v);
  else if (depth < 2 && Array.isArray(v)) for (const x of v) collectTensors(x, out, depth + 1);
  else if (depth < 2 && v != null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collectTensors(x, out, depth + 1);
  }
  return out;
}

/**
 * `ctx.state`: the pass's StateMap (host inputs and encoded media), read-only, plus values derived
 * once per pass (`memo`).
 */
export class ForwardState {
  private memos = new Map<string, unknown>();
  /** Memo tensors kept past the layer scope that computed them (each layer runs in its own tidy). */
  private kept: tf.Tensor[] | null = null;

  constructor(private readonly map: StateMap) {}

  /** @internal The model runs each layer in a tidy: memo tensors are kept until releaseMemos(). */
  keepMemos(): void {
    this.kept ??= [];
  }

  /** @internal Disposes the kept memo tensors (the end of the pass). */
  releaseMemos(): void {
    if (this.kept) tf.dispose(this.kept);
    this.kept = this.kept ? [] : null;
  }

  get<T>(key: StateKey<T>): T | undefined {
    return this.map.has(key) ? this.map.get(key) : (this.memos.get(key.name) as T | undefined);
  }

  has(key: StateKey<unknown>): boolean {
    return this.map.has(key) || this.memos.has(key.name);
  }

  require<T>(key: StateKey<T>, who: string): T {
    if (this.memos.has(key.name)) return this.memos.get(key.name) as T;
    return this.map.require(key, who);
  }

  /** @internal Runs fn with an empty memo table (a checkpointed layer recomputes its memos itself). */
  withFreshMemos<T>(fn: () => T): T {
    const prev = this.memos;
    const kept = this.kept;
    this.memos = new Map();
    this.kept = null; // the checkpointed layer's own scope owns its memos
    try {
      return fn();
    } finally {
      this.memos = prev;
      this.kept = kept;
    }
  }

  /** Computes a value once per pass (the first caller computes, later ones share it). */
  memo<T>(key: StateKey<T>, compute: () => T): T {
    if (this.map.has(key)) fail(`state '${key.name}': written by '${this.map.ownerOf(key)}' before the layers; memo() keys must be new`);
    if (!this.memos.has(key.name)) {
      const v = compute();
      if (this.kept) for (const t of collectTensors(v)) this.kept.push(tf.keep(t));
      this.memos.set(key.name, v);
    }
    return this.memos.get(key.name) as T;
  }

  names(): string[] {
    return [...this.map.names(), ...this.memos.keys()];
  }

  /** The tensors of the pass's state map (memos excluded). */
  tensors(): tf.Tensor[] {
    return this.map.tensors();
  }
}
