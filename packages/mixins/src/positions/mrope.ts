/**
 * Multimodal rotary position embedding (M-RoPE) of Qwen2-VL as a mixin: it serves `positionIds` (host
 * stage: [3, B, T] ids like HF `get_rope_index`, continued from the cache while decoding) and
 * `applyRotary` (the section-merged rotation). The math lives in @vlmix/core (positions/mrope.ts, beside
 * 1-D RoPE) and is re-exported here.
 *
 * Both hooks are plain, so M-RoPE replaces RoPE: remove the model's `rope` mixin first, or pass
 * `override: true` to take `positionIds` and `applyRotary` over from it (the rope mixin then stays but
 * never runs). Adding it next to a rope mixin without `override` is an error naming both.
 */
import * as tf from '@tensorflow/tfjs';
import {
  Mixin,
  MEDIA_IMAGE_GRID_THW,
  MEDIA_VIDEO_GRID_THW,
  fail,
  getRopeIndex,
  mropeChannelAxes,
  mropeCosSin,
  ops,
  rotaryInvFreq,
  shapeStr,
  stateKey,
  type ForwardContext,
  type HookImpls,
  type HookName,
  type HostContext,
  type Model,
  type StateKey,
} from '@vlmix/core';

export {
  MEDIA_IMAGE_GRID_THW, MEDIA_VIDEO_GRID_THW, applyMultimodalRotary, getRopeIndex, mropeAxisCosSin, mropeChannelAxes, mropeCosSin,
  type RopeIndex, type RopeIndexInput,
} from '@vlmix/core';

/** Optional [B, T] 0/1 padding mask for position computation (default: the pass's attentionMask when it spans T). */
export const MEDIA_ATTENTION_MASK = 'attentionMask';
/** KVCache.meta key of the per-row rope deltas (max position + 1 - sequence length), set at prefill. */
export const CACHE_ROPE_DELTAS = 'mrope.ropeDeltas';

export interface MRopeOptions {
  /** Rotary pairs per axis (t, h, w); must sum to headDim / 2. Qwen2-VL 7B: [16, 24, 24]. */
  mropeSection: [number, number, number];
  /** Frequency base (theta). Default 10000 (Qwen2-VL uses 1e6). */
  base?: number;
  /** Vision patches merged per side before the LM (Qwen2-VL: 2). Default 2. */
  spatialMergeSize?: number;
  /** Token id of image placeholders (one per merged patch). */
  imageTokenId?: number;
  /** Token id of video placeholders. */
  videoTokenId?: number;
  /** Take positionIds and applyRotary over from a mixin already serving them (e.g. createLlama's `rope`). Default false. */
  override?: boolean;
}

/** Host rows of a media value (a tensor is read back: the non-device-pure path; pass arrays). */
function toRows(v: unknown, what: string, host: HostContext): number[][] | null {
  if (v == null) return null;
  if (v instanceof tf.Tensor) {
    if (v.rank !== 2) fail(`${what}: expected a 2-D tensor, got ${shapeStr(v.shape)}`);
    const flat = host.readBack(v);
    const w = v.shape[1]!;
    return Array.from({ length: v.shape[0]! }, (_, r) => Array.from(flat.subarray(r * w, (r + 1) * w)));
  }
  if (Array.isArray(v) && v.every((r) => Array.isArray(r) || ArrayBuffer.isView(r))) return (v as ArrayLike<number>[]).map((r) => Array.from(r));
  return fail(`${what}: expected number[][] or a 2-D tensor, got ${typeof v}`);
}

export class MRopeMixin extends Mixin {
  readonly section: [number, number, number];
  readonly base: number;
  readonly spatialMergeSize: number;
  readonly imageTokenId: number | undefined;
  readonly videoTokenId: number | undefined;
  private readonly takeOver: boolean;
  private invFreq: Float32Array = new Float32Array(0);
  private cosSinKey: StateKey<{ cos: tf.Tensor; sin: tf.Tensor }> = stateKey('mrope.cosSin'); // halves [B, T, D/2]

  constructor(opts: MRopeOptions) {
    super();
    this.recordOptions(opts);
    if (!opts || !Array.isArray(opts.mropeSection)) fail(`MRopeMixin: expected options {mropeSection: [t, h, w]}, got ${JSON.stringify(opts)}`);
    this.section = [...opts.mropeSection] as [number, number, number];
    this.base = opts.base ?? 10000;
    if (!(this.base > 0)) fail(`mrope.base: expected > 0, got ${opts.base}`);
    this.spatialMergeSize = opts.spatialMergeSize ?? 2;
    if (!Number.isInteger(this.spatialMergeSize) || this.spatialMergeSize <= 0) fail(`mrope.spatialMergeSize: expected a positive integer, got ${JSON.stringify(opts.spatialMergeSize)}`);
    this.imageTokenId = opts.imageTokenId;
    this.videoTokenId = opts.videoTokenId;
    this.takeOver = !!opts.override;
  }

  override overrides(): HookName[] {
    return this.takeOver ? ['applyRotary', 'positionIds'] : [];
  }

  override attach(model: Model): void {
    const hd = model.config.headDim;
    mropeChannelAxes(this.section, hd);
    this.invFreq = rotaryInvFreq(hd, this.base);
    for (const [k, v] of [['imageTokenId', this.imageTokenId], ['videoTokenId', this.videoTokenId]] as const) {
      if (v != null && (!Number.isInteger(v) || v < 0 || v >= model.config.vocabSize)) fail(`mrope.${k}: expected a token id in [0, ${model.config.vocabSize}), got ${v}`);
    }
    this.cosSinKey = stateKey(`${this.name}.cosSin`);
  }

  /** inv_freq [headDim / 2] (after attach). */
  get inverseFrequencies(): Float32Array {
    return this.invFreq;
  }

  /** Host stage: [3, B, T] position ids (given, computed like get_rope_index, or continued from the cache). */
  positionIds(host: HostContext): tf.Tensor {
    const [B, T] = [host.batch, host.seqLen];
    const meta = host.cacheMeta;
    const given = host.givenPositionIds;
    if (given && given.rank === 3) {
      if (given.shape[0] !== 3 || given.shape[1] !== B || given.shape[2] !== T) fail(`positionIds: expected shape [3, ${B}, ${T}], got ${shapeStr(given.shape)}`);
      if (meta && host.pastLength === 0) {
        // the deltas need the values: positions given as a tensor are read back once (prefill only)
        const p = host.readBack(given);
        const mx = new Array<number>(B).fill(-Infinity);
        for (let a = 0; a < 3; a++) for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) mx[b] = Math.max(mx[b]!, p[(a * B + b) * T + t]!);
        meta.set(CACHE_ROPE_DELTAS, mx.map((m) => m + 1 - T));
      }
      return given;
    }
    if (meta && host.pastLength > 0) {
      const deltas = (meta.get(CACHE_ROPE_DELTAS) as number[] | undefined) ?? new Array(B).fill(0);
      if (deltas.length !== B) fail(`mrope: the cache holds rope deltas for ${deltas.length} rows, this pass has batch ${B}`);
      const data = new Int32Array(3 * B * T);
      for (let a = 0; a < 3; a++) for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) data[(a * B + b) * T + t] = host.pastLength + deltas[b]! + t;
      return tf.tensor3d(data, [3, B, T], 'int32');
    }
    const padding = host.attentionMask;
    const inputIds = Array.from({ length: B }, (_, b) => host.row(b));
    const imageGridThw = toRows(host.media[MEDIA_IMAGE_GRID_THW], MEDIA_IMAGE_GRID_THW, host);
    const videoGridThw = toRows(host.media[MEDIA_VIDEO_GRID_THW], MEDIA_VIDEO_GRID_THW, host);
    // getRopeIndex without grids treats placeholders as text (HF's fallback); in a model with the
    // placeholder ids configured that is almost always a forgotten grid, so it is an error here.
    if (!imageGridThw && !videoGridThw) {
      for (const [id, key] of [[this.imageTokenId, MEDIA_IMAGE_GRID_THW], [this.videoTokenId, MEDIA_VIDEO_GRID_THW]] as const) {
        const b = id == null ? -1 : inputIds.findIndex((r) => Array.prototype.includes.call(r, id));
        if (b >= 0) fail(`media.${key}: row ${b} holds placeholder token ${id} but no grid was given (pass media.${key} [[t, h, w], ...] or explicit [3, B, T] positionIds)`);
      }
    }
    const idx = getRopeIndex({
      inputIds,
      imageGridThw,
      videoGridThw,
      attentionMask: toRows(host.media[MEDIA_ATTENTION_MASK], MEDIA_ATTENTION_MASK, host)
        ?? (padding ? Array.from({ length: B }, (_, b) => padding.subarray(b * T, (b + 1) * T)) : null),
      spatialMergeSize: this.spatialMergeSize,
      imageTokenId: this.imageTokenId,
      videoTokenId: this.videoTokenId,
    });
    if (meta) meta.set(CACHE_ROPE_DELTAS, idx.ropeDeltas);
    return tf.tensor3d(idx.positionIds, idx.shape, 'int32');
  }

  /** This pass's angles (RotaryAnglesProvider: the base rotates q and k in the QKV split's kernel with them). */
  rotaryAngles(ctx: ForwardContext): { cos: tf.Tensor; sin: tf.Tensor; style: 'half' } {
    // cos/sin depend only on the positions: computed once per pass, shared by every layer
    const cs = ctx.state.memo(this.cosSinKey, () => {
      let p = ctx.positionIds;
      if (p.rank === 2) p = tf.tile(tf.expandDims(p, 0), [3, 1, 1]);
      // the section merge gives both halves the same angles: the fused kernel takes one half [B, T, D/2]
      const { cos, sin } = mropeCosSin(p, this.invFreq, this.section);
      const [b, , t, d] = cos.shape as number[];
      const half = (x: tf.Tensor) => tf.reshape(tf.slice(x, [0, 0, 0, 0], [b!, 1, t!, d! / 2]), [b!, t!, d! / 2]);
      return { cos: half(cos), sin: half(sin) };
    });
    return { ...cs, style: 'half' };
  }

  hooks(): HookImpls {
    return {
      applyRotary: (q: tf.Tensor, k: tf.Tensor, ctx: ForwardContext): [tf.Tensor, tf.Tensor] => {
        const { cos, sin } = this.rotaryAngles(ctx);
        return [ops.rotary(q, cos, sin), ops.rotary(k, cos, sin)];
      },
      positionIds: (host) => this.positionIds(host),
    };
  }
}
