/**
 * The host stage of a forward pass. Everything that depends on the token values (token types,
 * position ids, placeholder and routing indices, media locations) is computed here, once per batch, on
 * integer arrays in JS memory, and enters the model as tensors (`PreparedInputs`). The forward pass,
 * the loss and the backward pass then never read device data back: on a GPU each read is a pipeline
 * stall. Mixins contribute through the host hooks (`tokenTypes`, `positionIds`, `hostInputs`).
 *
 * `model.prepareInputs(batch)` runs the stage (data loaders call it once per batch, outside the gradient
 * tape); `model.forward` runs it itself when not given `prepared`. Ids given as arrays are never read
 * from a device; a tensor given where the stage needs values is read back once (counted in `reads`).
 */
import * as tf from '@tensorflow/tfjs';
import type { TransformerConfig } from './config.js';
import { fail, shapeStr } from './errors.js';
import type { KVCache } from './kv-cache.js';
import { StateMap } from './state.js';

/** [B][T] integers on the host: number[][] or typed-array rows. */
export type HostRows = ArrayLike<number>[];

/** A batch as the host stage takes it. Arrays keep it device-pure; tensors are read back when needed. */
export interface HostBatch {
  /** [B, T] token ids. */
  inputIds: HostRows | tf.Tensor;
  /** [B, pastLength + T] padding mask, 1 = token, 0 = padding. */
  attentionMask?: HostRows | tf.Tensor | null;
  /** [B, T] token types given by the caller (0 text, 1 vision); mixins may derive them otherwise. */
  tokenTypes?: HostRows | tf.Tensor | null;
  /** Position ids given by the caller ([B, T], or [3, B, T] for M-RoPE): used as they are. */
  positionIds?: tf.Tensor | null;
  /** Media inputs (host values such as image grids are read here; pixels are left to the device). */
  media?: Record<string, unknown>;
  /** The KV cache of an incremental pass: its length is pastLength, its `meta` carries host state between steps. */
  cache?: KVCache | null;
}

/** Flattens [B][T] rows (checking the shape) into one row-major Int32Array. */
export function flattenRows(rows: HostRows, what: string, b?: number, t?: number): Int32Array {
  if (!Array.isArray(rows)) fail(`${what}: expected [batch][seq] rows of integers, got ${typeof rows}`);
  const B = b ?? rows.length;
  const T = t ?? (rows[0]?.length ?? 0);
  if (rows.length !== B || rows.some((r) => r == null || r.length !== T)) {
    fail(`${what}: expected shape [${B}, ${T}], got ${rows.length} rows of lengths ${[...new Set(rows.map((r) => r?.length))].join('/')}`);
  }
  const out = new Int32Array(B * T);
  rows.forEach((r, i) => out.set(r as ArrayLike<number>, i * T));
  return out;
}

/** Checks host token ids against the vocabulary (the device path never reads ids back to check them). */
export function checkTokenIds(ids: ArrayLike<number>, vocabSize: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  let ok = true;
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (!(Number.isInteger(v) && v >= 0 && v < vocabSize)) ok = false;
  }
  if (!ok) fail(`inputIds: token ids must be in [0, ${vocabSize}), got values in [${lo}, ${hi}]`);
}

/** What the host hooks see: the batch's integer arrays, the config, and the cache's host state. */
export class HostContext {
  readonly batch: number;
  readonly seqLen: number;
  readonly pastLength: number;
  readonly media: Readonly<Record<string, unknown>>;
  /** Host state carried between decoding steps (the KV cache's `meta`); null without a cache. */
  readonly cacheMeta: Map<string, unknown> | null;
  /** Position ids the caller gave (then the positionIds hooks should return them). */
  readonly givenPositionIds: tf.Tensor | null;
  /** Device tensors this stage had to read back (0 when the batch came as arrays). */
  reads = 0;
  private ids: Int32Array | null = null;
  private mask: Int32Array | null | undefined = undefined;
  private givenTypes: Int32Array | null | undefined = undefined;
  private resolvedTypes: Int32Array | null | undefined = undefined;
  private resolving = false;

  constructor(
    readonly config: TransformerConfig,
    private readonly input: HostBatch,
    private readonly resolveTokenTypes: (host: HostContext) => Int32Array | null,
  ) {
    const ids = input.inputIds;
    if (ids instanceof tf.Tensor) {
      if (ids.rank !== 2) fail(`inputIds: expected shape [batch, seq], got ${shapeStr(ids.shape)}`);
      [this.batch, this.seqLen] = ids.shape as [number, number];
    } else {
      if (!Array.isArray(ids) || ids.length === 0) fail(`inputIds: expected [batch][seq] rows (at least one row), got ${Array.isArray(ids) ? '0 rows' : typeof ids}`);
      this.batch = ids.length;
      this.seqLen = ids[0]!.length;
    }
    this.pastLength = input.cache ? input.cache.length : 0;
    this.media = Object.freeze({ ...(input.media ?? {}) });
    this.cacheMeta = input.cache ? input.cache.meta : null;
    this.givenPositionIds = input.positionIds ?? null;
  }

  /** Reads a tensor the caller gave where host values are needed (the legacy, non-device-pure path). */
  readBack(t: tf.Tensor): Int32Array {
    this.reads++;
    return Int32Array.from(t.dataSync() as ArrayLike<number>);
  }

  /** Host rows or a tensor -> row-major Int32Array of shape [rows, cols]. */
  private toHost(v: HostRows | tf.Tensor, what: string, rows: number, cols: number): Int32Array {
    if (v instanceof tf.Tensor) {
      if (v.rank !== 2 || v.shape[0] !== rows || v.shape[1] !== cols) fail(`${what}: expected shape [${rows}, ${cols}], got ${shapeStr(v.shape)}`);
      return this.readBack(v);
    }
    return flattenRows(v, what, rows, cols);
  }

  /** Token ids [B * T], row-major. */
  get inputIds(): Int32Array {
    if (!this.ids) {
      this.ids = this.toHost(this.input.inputIds, 'inputIds', this.batch, this.seqLen);
      checkTokenIds(this.ids, this.config.vocabSize);
    }
    return this.ids;
  }

  /** Row b of the token ids. */
  row(b: number): Int32Array {
    return this.inputIds.subarray(b * this.seqLen, (b + 1) * this.seqLen);
  }

  /** Padding mask [B * (pastLength + T)] (1 = token), or null. */
  get attentionMask(): Int32Array | null {
    if (this.mask === undefined) {
      const m = this.input.attentionMask;
      this.mask = m == null ? null : this.toHost(m, 'attentionMask', this.batch, this.pastLength + this.seqLen);
    }
    return this.mask;
  }

  /** Token types the caller gave [B * T], or null. */
  get givenTokenTypes(): Int32Array | null {
    if (this.givenTypes === undefined) {
      const t = this.input.tokenTypes;
      this.givenTypes = t == null ? null : this.toHost(t, 'tokenTypes', this.batch, this.seqLen);
    }
    return this.givenTypes;
  }

  /** Whether the caller gave token types as a tensor (then it is used on the device as it is). */
  get givenTokenTypesTensor(): tf.Tensor | null {
    return this.input.tokenTypes instanceof tf.Tensor ? this.input.tokenTypes : null;
  }

  /** Token types [B * T] after the `tokenTypes` hooks (0 text, 1 vision), or null when no one sets them. */
  get tokenTypes(): Int32Array | null {
    if (this.resolvedTypes === undefined) {
      if (this.resolving) fail(`tokenTypes: a tokenTypes hook read host.tokenTypes (its own result); use next(host) instead`);
      this.resolving = true;
      try {
        const tt = this.resolveTokenTypes(this);
        if (tt != null && tt.length !== this.batch * this.seqLen) {
          fail(`tokenTypes: the tokenTypes hooks returned ${tt.length} values, expected batch * seq = ${this.batch * this.seqLen}`);
        }
        this.resolvedTypes = tt;
      } finally {
        this.resolving = false;
      }
    }
    return this.resolvedTypes;
  }

  /** Whether the tokenTypes hooks have run. */
  get tokenTypesResolved(): boolean {
    return this.resolvedTypes !== undefined;
  }
}

/** Sequential positions pastLength .. pastLength + T - 1 for every row, [B, T] int32. */
export function sequentialPositions(batch: number, seqLen: number, past: number): tf.Tensor2D {
  const data = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seqLen; t++) data[b * seqLen + t] = past + t;
  return tf.tensor2d(data, [batch, seqLen], 'int32');
}

/**
 * The host stage's output: what a forward pass needs besides the ids and media, as tensors. Pass it as
 * `ForwardInputs.prepared` (with the same ids) to run a device-pure pass. Dispose it when done, unless a
 * tf.tidy owns it.
 */
export class PreparedInputs {
  constructor(
    readonly batch: number,
    readonly seqLen: number,
    /** Cached positions when it was prepared (a forward pass with a cache must match). */
    readonly pastLength: number,
    /** [B, T] (or [3, B, T]) int32. */
    readonly positionIds: tf.Tensor,
    /** [B, T] int32 (0 text, 1 vision), or null. */
    readonly tokenTypes: tf.Tensor | null,
    /** Host-derived tensors and values of the mixins (`hostInputs` hooks), by typed key. */
    readonly state: StateMap,
    /** Device tensors read back to prepare it (0 when the batch came as arrays). */
    readonly reads: number,
    private readonly owned: tf.Tensor[],
  ) {}

  /** Tensors created by the host stage (the caller's to dispose, or to keep out of a tf.tidy). */
  tensors(): tf.Tensor[] {
    return [...this.owned];
  }

  dispose(): void {
    tf.dispose(this.owned);
  }
}
