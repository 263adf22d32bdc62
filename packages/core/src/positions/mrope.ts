/**
 * Multimodal rotary position embedding (M-RoPE) of Qwen2-VL: the math, after HF transformers
 * `Qwen2VLModel.get_rope_index`, `Qwen2VLRotaryEmbedding` and `apply_multimodal_rotary_pos_emb`. The
 * mixin that serves it is `MRopeMixin` in @vlmix/mixins; the math lives here, beside 1-D RoPE, so both
 * position encodings read side by side (core cannot import the mixins package).
 *
 * Position ids are [3, B, T] (temporal, height, width). The rotary channels (rotate-half layout, D per head)
 * are split into chunks `mropeSection * 2` (e.g. [2, 3, 3, 2, 3, 3] for D = 16); chunk i takes its angles
 * from axis i % 3. Text tokens carry the same id on all three axes, so on text-only input M-RoPE equals
 * 1-D RoPE exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, shapeStr } from '../errors.js';

/** ctx.media keys of the image / video patch grids (t, h, w) that getRopeIndex reads. */
export const MEDIA_IMAGE_GRID_THW = 'imageGridThw';
export const MEDIA_VIDEO_GRID_THW = 'videoGridThw';

export interface RopeIndexInput {
  /** [B, T] token ids. */
  inputIds: ArrayLike<number>[];
  /** [nImages, 3] (t, h, w) patch grids, in order of appearance over the batch. */
  imageGridThw?: ArrayLike<number>[] | null;
  videoGridThw?: ArrayLike<number>[] | null;
  /** [B, T] 1 = token, 0 = padding. Padding gets position 1 (as HF). */
  attentionMask?: ArrayLike<number>[] | null;
  spatialMergeSize?: number;
  imageTokenId?: number;
  videoTokenId?: number;
}

export interface RopeIndex {
  /** [3, B, T] row-major int32. */
  positionIds: Int32Array;
  shape: [3, number, number];
  /** Per row: max position + 1 - T (T counts padding), used for decoding with a cache. */
  ropeDeltas: number[];
}

/**
 * Qwen2-VL `get_rope_index`: text continues from the previous max + 1 on all axes; an image/video of grid
 * (t, h, w) occupies t * (h / m) * (w / m) placeholder tokens (m = spatialMergeSize) with indices
 * (frame, row, col) offset by the position where it starts. Placeholder runs are found in token order
 * (images and videos interleaved) and take the next grid of their kind. The temporal index is the frame
 * number (Qwen2-VL); Qwen2.5-VL's `second_per_grid_ts` scaling is not applied.
 */
export function getRopeIndex(inp: RopeIndexInput): RopeIndex {
  const ids = inp.inputIds;
  const B = ids.length;
  const T = B ? ids[0]!.length : 0;
  ids.forEach((r, b) => {
    if (r.length !== T) fail(`inputIds: every row must have length ${T}, row ${b} has ${r.length}`);
  });
  const merge = inp.spatialMergeSize ?? 2;
  if (!Number.isInteger(merge) || merge <= 0) fail(`spatialMergeSize: expected a positive integer, got ${JSON.stringify(merge)}`);
  const mask = inp.attentionMask ?? null;
  if (mask) {
    if (mask.length !== B || mask.some((r) => r.length !== T)) fail(`attentionMask: expected shape [${B}, ${T}], got [${mask.length}, ${mask[0]?.length ?? 0}]`);
  }
  if (inp.imageGridThw == null && inp.videoGridThw == null) return textRopeIndex(B, T, mask);
  const grids = { image: inp.imageGridThw ?? [], video: inp.videoGridThw ?? [] };
  const tokenOf = { image: inp.imageTokenId, video: inp.videoTokenId };
  const next = { image: 0, video: 0 };
  const pos = new Int32Array(3 * B * T).fill(1);
  const deltas: number[] = [];
  for (let b = 0; b < B; b++) {
    const keep: number[] = [];
    for (let s = 0; s < T; s++) if (!mask || mask[b]![s] === 1) keep.push(s);
    const toks = keep.map((s) => ids[b]![s]!);
    const out: [number, number, number][] = [];
    let nextText = 0; // previous max + 1
    for (let i = 0; i < toks.length;) {
      const tok = toks[i]!;
      const kind = tok === tokenOf.image && tokenOf.image != null ? 'image' : tok === tokenOf.video && tokenOf.video != null ? 'video' : null;
      if (!kind) {
        out.push([nextText, nextText, nextText]);
        nextText++;
        i++;
        continue;
      }
      const g = grids[kind][next[kind]];
      const mediaKey = kind === 'image' ? MEDIA_IMAGE_GRID_THW : MEDIA_VIDEO_GRID_THW;
      if (!g) fail(`${mediaKey}: row ${b} has a ${kind} placeholder at position ${keep[i]} but only ${grids[kind].length} ${kind} grid(s) were given`);
      const [gt, gh, gw] = [Number(g[0]), Number(g[1]), Number(g[2])];
      if (g.length !== 3 || ![gt, gh, gw].every((x) => Number.isInteger(x) && x > 0) || gh % merge !== 0 || gw % merge !== 0) {
        fail(`${mediaKey}[${next[kind]}]: expected positive integers (t, h, w) with h and w divisible by spatialMergeSize ${merge}, got [${Array.from(g)}]`);
      }
      next[kind]++;
      const [lt, lh, lw] = [gt, gh / merge, gw / merge];
      const n = lt * lh * lw;
      let run = 0;
      while (i + run < toks.length && toks[i + run] === tok) run++;
      if (run < n) {
        fail(`inputIds: row ${b}: the ${kind} at position ${keep[i]} (grid [${gt}, ${gh}, ${gw}], merge ${merge}) needs ${n} placeholder tokens, found ${run}`);
      }
      const st = nextText;
      let mx = st;
      for (let f = 0; f < lt; f++) for (let y = 0; y < lh; y++) for (let x = 0; x < lw; x++) {
        out.push([st + f, st + y, st + x]);
        mx = Math.max(mx, st + f, st + y, st + x);
      }
      nextText = mx + 1;
      i += n;
    }
    let max = -Infinity;
    out.forEach((p, j) => {
      const s = keep[j]!;
      for (let a = 0; a < 3; a++) {
        pos[(a * B + b) * T + s] = p[a]!;
        max = Math.max(max, p[a]!);
      }
    });
    if (out.length === 0) max = -1; // an empty or all-padding row
    deltas.push(max + 1 - T);
  }
  for (const kind of ['image', 'video'] as const) {
    if (next[kind] !== grids[kind].length) {
      fail(`${kind === 'image' ? MEDIA_IMAGE_GRID_THW : MEDIA_VIDEO_GRID_THW}: ${grids[kind].length} grid(s) given but ${next[kind]} ${kind}(s) found in inputIds`);
    }
  }
  return { positionIds: pos, shape: [3, B, T], ropeDeltas: deltas };
}

/**
 * get_rope_index's branch for calls without any grid (neither image nor video grids given, not even
 * empty): placeholders are treated as text. Without a mask positions are arange(T) on all axes and the
 * deltas 0; with one, cumsum(mask) - 1 with padding at 1, and delta = max over the row (padding
 * included, as HF takes it) + 1 - T.
 */
function textRopeIndex(B: number, T: number, mask: ArrayLike<number>[] | null): RopeIndex {
  const pos = new Int32Array(3 * B * T);
  const deltas: number[] = [];
  for (let b = 0; b < B; b++) {
    let seen = 0;
    let max = -Infinity;
    for (let s = 0; s < T; s++) {
      const on = !mask || mask[b]![s] === 1;
      const p = on ? seen++ : 1;
      max = Math.max(max, p);
      for (let a = 0; a < 3; a++) pos[(a * B + b) * T + s] = p;
    }
    deltas.push(mask && T > 0 ? max + 1 - T : 0);
  }
  return { positionIds: pos, shape: [3, B, T], ropeDeltas: deltas };
}

/** For each of the D rotary channels, the axis (0 = t, 1 = h, 2 = w) its angle comes from. */
export function mropeChannelAxes(section: readonly number[], headDim: number): Int32Array {
  if (section.length !== 3 || section.some((s) => !Number.isInteger(s) || s < 0)) {
    fail(`mrope.mropeSection: expected three non-negative integers (t, h, w), got ${JSON.stringify(section)}`);
  }
  const sum = section[0]! + section[1]! + section[2]!;
  if (sum * 2 !== headDim) fail(`mrope.mropeSection: must sum to headDim / 2 = ${headDim / 2}, got ${JSON.stringify(section)} (sum ${sum})`);
  const axes = new Int32Array(headDim);
  let c = 0;
  for (let i = 0; i < 6; i++) for (let j = 0; j < section[i % 3]!; j++) axes[c++] = i % 3;
  return axes;
}

/**
 * cos/sin [B, 1, T, D] after the section merge (what `apply_multimodal_rotary_pos_emb` multiplies by) from
 * position ids [3, B, T] and inv_freq [D/2]. angle[b, t, c] = pos[axis(c), b, t] * invFreq[c mod D/2] (float32).
 */
export function mropeCosSin(positionIds: tf.Tensor, invFreq: Float32Array, section: readonly number[]): { cos: tf.Tensor; sin: tf.Tensor } {
  if (positionIds.rank !== 3 || positionIds.shape[0] !== 3) fail(`positionIds: expected shape [3, B, T], got ${shapeStr(positionIds.shape)}`);
  const d = invFreq.length * 2;
  const axes = mropeChannelAxes(section, d);
  return tf.tidy(() => {
    const p = tf.transpose(tf.cast(positionIds, 'float32'), [1, 2, 0]); // [B, T, 3]
    const sel = tf.gather(p, tf.tensor1d(axes, 'int32'), 2); // [B, T, D]
    const full = new Float32Array(d);
    full.set(invFreq, 0);
    full.set(invFreq, d / 2);
    const ang = tf.expandDims(tf.mul(sel, tf.tensor1d(full)), 1); // [B, 1, T, D]
    return { cos: tf.cos(ang), sin: tf.sin(ang) };
  });
}

/**
 * Per-axis cos/sin [3, B, T, D] before the section merge: what HF's `Qwen2VLRotaryEmbedding.forward`
 * returns (angles pos[a, b, t] * invFreq, repeated over both halves). invFreq is plain RoPE's
 * 1 / theta^(2i / D) over the head dim D (`rotaryInvFreq(headDim, rope_theta)`; Qwen2-VL's config has
 * rope_theta 1e6). `mropeCosSin` is this followed by the section merge.
 */
export function mropeAxisCosSin(positionIds: tf.Tensor, invFreq: Float32Array): { cos: tf.Tensor; sin: tf.Tensor } {
  if (positionIds.rank !== 3 || positionIds.shape[0] !== 3) fail(`positionIds: expected shape [3, B, T], got ${shapeStr(positionIds.shape)}`);
  return tf.tidy(() => {
    const half = tf.mul(tf.expandDims(tf.cast(positionIds, 'float32'), 3), tf.tensor1d(invFreq)); // [3, B, T, D/2]
    const ang = tf.concat([half, half], 3);
    return { cos: tf.cos(ang), sin: tf.sin(ang) };
  });
}

/** q*cos + rotate_half(q)*sin (and k), cos/sin [B, 1, T, D] broadcasting over heads. */
export function applyMultimodalRotary(q: tf.Tensor, k: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const rot = (x: tf.Tensor) => tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    const [x1, x2] = tf.split(x, 2, -1);
    if (cos.shape[cos.rank - 1] !== d) fail(`mrope: cos has ${cos.shape[cos.rank - 1]} channels, q/k have head dim ${d}`);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), sin));
  });
  return [rot(q), rot(k)];
}
