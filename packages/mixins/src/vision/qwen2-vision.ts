/**
 * Qwen2-VL's vision tower (naive dynamic resolution), after HF transformers `Qwen2VisionTransformerPretrainedModel`
 * and `Qwen2VLImageProcessor`, with its parameter names (`patch_embed.proj`, `blocks.N.{norm1,norm2,attn.qkv,
 * attn.proj,mlp.fc1,mlp.fc2}`, `merger.{ln_q,mlp.0,mlp.2}`):
 *
 *   host: image -> smart_resize (sides multiples of patch * merge) -> normalise -> two identical frames
 *         (video: frames pairwise) -> flattened patches [N, C * tp * p * p] in merge-window order + grid (t, h, w)
 *   patch_embed   Conv3d(kernel = stride = (tp, p, p), no bias) = one matmul on the flattened patches
 *   blocks        pre-LN ViT blocks (LayerNorm eps 1e-6, fused qkv, quick-GELU MLP) with 2-D RoPE on q/k
 *                 (row and column of each patch; no absolute position embedding) and block-diagonal
 *                 attention: every frame group (t) of every image attends only to itself (cu_seqlens)
 *   merger        LayerNorm, then each 2x2 window of patches concatenated -> Linear, GELU, Linear -> LM width
 *
 * Images of any size are packed into one sequence. `Qwen2VisionMixin` runs it in encodeMedia and writes the
 * merged tokens at the <image> / <video> placeholders in order across the batch (HF masked_scatter).
 */
import * as tf from '@tensorflow/tfjs';
import {
  Mixin, fail, normal, ones, ops, ParamScope, rotaryInvFreq, shapeStr, stateKey, zeros,
  type HookImpls, type HostContext, type LoadStateDictResult, type Model, type ParamOverrides, type ParamStore, type SafetensorsFile, type StateKey,
} from '@vlmix/core';
import { loadMixinPrefixed } from '../connectors/projectors.js';
import { quickGelu } from './vit.js';

export interface Qwen2VisionConfig {
  depth: number;
  /** ViT width (HF embed_dim). */
  embedDim: number;
  numHeads: number;
  /** MLP width = mlpRatio * embedDim (default 4). */
  mlpRatio?: number;
  /** Default 14. */
  patchSize?: number;
  /** Frames per patch (default 2: an image is two identical frames). */
  temporalPatchSize?: number;
  /** Patches merged per side by the PatchMerger (default 2). */
  spatialMergeSize?: number;
  /** Default 3. */
  inChannels?: number;
  /** Merger output width (HF hidden_size; default: the LM's hiddenSize). */
  hiddenSize?: number;
  /** Default 1e-6. */
  layerNormEps?: number;
  /** Vision RoPE theta (default 10000). */
  ropeTheta?: number;
  initStd?: number;
}

export type ResolvedQwen2VisionConfig = Required<Qwen2VisionConfig>;

export function resolveQwen2VisionConfig(c: Qwen2VisionConfig, lmHidden: number): ResolvedQwen2VisionConfig {
  if (c == null || typeof c !== 'object') fail(`qwen2 vision config: expected an object, got ${JSON.stringify(c)}`);
  const out: ResolvedQwen2VisionConfig = {
    mlpRatio: 4, patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2, inChannels: 3, hiddenSize: lmHidden,
    layerNormEps: 1e-6, ropeTheta: 10000, initStd: 0.02, ...c,
  };
  for (const k of ['depth', 'embedDim', 'numHeads', 'mlpRatio', 'patchSize', 'temporalPatchSize', 'spatialMergeSize', 'inChannels', 'hiddenSize'] as const) {
    if (!Number.isInteger(out[k]) || out[k] <= 0) fail(`qwen2Vision.${k}: expected a positive integer, got ${JSON.stringify(out[k])}`);
  }
  const hd = out.embedDim / out.numHeads;
  if (!Number.isInteger(hd) || hd % 4 !== 0) fail(`qwen2Vision.embedDim: embedDim / numHeads must be a multiple of 4 (2-D RoPE halves it twice), got ${out.embedDim} / ${out.numHeads}`);
  return out;
}

// ------------------------------------------------------------------------------------------ host side

/**
 * Qwen2-VL's smart_resize: both sides rounded to multiples of `factor` (patch * merge, 28 in Qwen2-VL),
 * then scaled so that h * w lies in [minPixels, maxPixels], keeping the aspect ratio as closely as the
 * rounding allows. Errors as HF: a side below `factor`, or an aspect ratio above 200.
 */
export function qwen2SmartResize(height: number, width: number, opts: { factor?: number; minPixels?: number; maxPixels?: number } = {}): [number, number] {
  const factor = opts.factor ?? 28;
  const minPixels = opts.minPixels ?? 56 * 56;
  const maxPixels = opts.maxPixels ?? 14 * 14 * 4 * 1280;
  if (height < factor || width < factor) fail(`qwen2SmartResize: height ${height} and width ${width} must both be >= factor ${factor}`);
  if (Math.max(height, width) / Math.min(height, width) > 200) fail(`qwen2SmartResize: absolute aspect ratio must be <= 200, got ${Math.max(height, width) / Math.min(height, width)}`);
  // Python's round() rounds half to even
  const round = (x: number) => {
    const f = Math.floor(x);
    const d = x - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  let h = round(height / factor) * factor;
  let w = round(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}

export interface Qwen2Patches {
  /** [N, C * tp * p * p] row-major, N = t * h * w, patches of each merge window consecutive. */
  patches: Float32Array;
  /** (t, h, w) in patches. */
  grid: [number, number, number];
}

/**
 * Frames [F] of C x H x W normalised floats (CHW) -> flattened patches as Qwen2VLImageProcessor lays them out:
 * (grid_t, tp, C, gh/m, m, p, gw/m, m, p) transposed to (grid_t, gh/m, gw/m, m, m, C, tp, p, p). One frame
 * (an image) is repeated tp times; a frame count not divisible by tp repeats the last frame.
 */
export function qwen2Patchify(frames: Float32Array[], channels: number, height: number, width: number, opts: { patchSize?: number; temporalPatchSize?: number; mergeSize?: number } = {}): Qwen2Patches {
  const p = opts.patchSize ?? 14;
  const tp = opts.temporalPatchSize ?? 2;
  const m = opts.mergeSize ?? 2;
  if (frames.length === 0) fail('qwen2Patchify: frames: expected at least one frame');
  if (height % (p * m) !== 0 || width % (p * m) !== 0) {
    fail(`qwen2Patchify: height ${height} and width ${width} must be multiples of patchSize * mergeSize = ${p * m} (resize with qwen2SmartResize first)`);
  }
  frames.forEach((f, i) => {
    if (f.length !== channels * height * width) fail(`qwen2Patchify: frames[${i}]: expected ${channels}x${height}x${width} = ${channels * height * width} values, got ${f.length}`);
  });
  const all = frames.slice();
  while (all.length % tp !== 0) all.push(all[all.length - 1]!);
  const [gt, gh, gw] = [all.length / tp, height / p, width / p];
  const d = channels * tp * p * p;
  const out = new Float32Array(gt * gh * gw * d);
  let row = 0;
  for (let t = 0; t < gt; t++) {
    for (let hb = 0; hb < gh / m; hb++) for (let wb = 0; wb < gw / m; wb++) for (let hm = 0; hm < m; hm++) for (let wm = 0; wm < m; wm++) {
      const y0 = (hb * m + hm) * p;
      const x0 = (wb * m + wm) * p;
      let o = row * d;
      for (let c = 0; c < channels; c++) for (let f = 0; f < tp; f++) {
        const src = all[t * tp + f]!;
        for (let y = 0; y < p; y++) {
          const base = (c * height + y0 + y) * width + x0;
          for (let x = 0; x < p; x++) out[o++] = src[base + x]!;
        }
      }
      row++;
    }
  }
  return { patches: out, grid: [gt, gh, gw] };
}

/** Per patch (in qwen2Patchify's order) its (row, col) on the patch grid: what rot_pos_emb indexes. */
export function qwen2PatchPositions(grids: readonly (readonly number[])[], mergeSize: number): Int32Array {
  const n = grids.reduce((a, g) => a + g[0]! * g[1]! * g[2]!, 0);
  const out = new Int32Array(2 * n);
  let i = 0;
  for (const [t, h, w] of grids as [number, number, number][]) {
    for (let f = 0; f < t; f++) {
      for (let hb = 0; hb < h / mergeSize; hb++) for (let wb = 0; wb < w / mergeSize; wb++) for (let hm = 0; hm < mergeSize; hm++) for (let wm = 0; wm < mergeSize; wm++) {
        out[2 * i] = hb * mergeSize + hm;
        out[2 * i + 1] = wb * mergeSize + wm;
        i++;
      }
    }
  }
  return out;
}

function checkGrids(grids: readonly (readonly number[])[], merge: number, what: string): void {
  grids.forEach((g, i) => {
    if (g.length !== 3 || !g.every((x) => Number.isInteger(x) && x > 0) || g[1]! % merge !== 0 || g[2]! % merge !== 0) {
      fail(`${what}[${i}]: expected positive integers (t, h, w) with h and w divisible by spatialMergeSize ${merge}, got [${Array.from(g)}]`);
    }
  });
}

// ------------------------------------------------------------------------------------------ the tower

export class Qwen2VisionTower {
  readonly config: ResolvedQwen2VisionConfig;
  readonly scope: ParamScope;

  constructor(params: ParamStore, prefix: string, config: Qwen2VisionConfig, lmHidden: number, opts: { component?: string } = {}) {
    const c = (this.config = resolveQwen2VisionConfig(config, lmHidden));
    const s = (this.scope = new ParamScope(params, prefix, opts.component ?? prefix.replace(/\.$/, '')));
    const E = c.embedDim;
    const lin = (n: string, out: number, inF: number) => {
      s.create(`${n}.weight`, [out, inF], normal(c.initStd));
      s.create(`${n}.bias`, [out], zeros);
    };
    const ln = (n: string, w: number) => {
      s.create(`${n}.weight`, [w], ones);
      s.create(`${n}.bias`, [w], zeros);
    };
    s.create('patch_embed.proj.weight', [E, c.inChannels, c.temporalPatchSize, c.patchSize, c.patchSize], normal(c.initStd));
    for (let l = 0; l < c.depth; l++) {
      const b = `blocks.${l}.`;
      ln(`${b}norm1`, E);
      ln(`${b}norm2`, E);
      lin(`${b}attn.qkv`, 3 * E, E);
      lin(`${b}attn.proj`, E, E);
      lin(`${b}mlp.fc1`, c.mlpRatio * E, E);
      lin(`${b}mlp.fc2`, E, c.mlpRatio * E);
    }
    const merged = E * c.spatialMergeSize ** 2;
    ln('merger.ln_q', E);
    lin('merger.mlp.0', merged, merged);
    lin('merger.mlp.2', c.hiddenSize, merged);
  }

  /** Values per flattened patch: C * tp * p * p. */
  get patchDim(): number {
    const c = this.config;
    return c.inChannels * c.temporalPatchSize * c.patchSize * c.patchSize;
  }

  /**
   * patches [N, C * tp * p * p] (qwen2Patchify's layout, images / videos packed) and their grids -> merged
   * tokens [N / merge^2, hiddenSize]. `outputHiddenStates` also returns the blocks' outputs [N, E].
   */
  forward(patches: tf.Tensor, grids: readonly (readonly number[])[], params?: ParamOverrides, opts: { outputHiddenStates?: boolean } = {}): { tokens: tf.Tensor2D; hiddenStates?: tf.Tensor[] } {
    const c = this.config;
    const m = c.spatialMergeSize;
    checkGrids(grids, m, 'gridThw');
    const n = grids.reduce((a, g) => a + g[0]! * g[1]! * g[2]!, 0);
    if (patches.rank !== 2 || patches.shape[0] !== n || patches.shape[1] !== this.patchDim) {
      fail(`pixel values: expected shape [${n}, ${this.patchDim}] (sum of t*h*w over the grids, C*tp*p*p), got ${shapeStr(patches.shape)}`);
    }
    const E = c.embedDim;
    const H = c.numHeads;
    const hd = E / H;
    // 2-D RoPE: channels [0, hd/4) rotate by the row, [hd/4, hd/2) by the column; halves repeated (rotate-half)
    const inv = rotaryInvFreq(hd / 2, c.ropeTheta);
    const pos = qwen2PatchPositions(grids, m);
    const ang = new Float32Array(n * hd);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < hd / 4; j++) {
        const a = Math.fround(pos[2 * i]! * inv[j]!);
        const b = Math.fround(pos[2 * i + 1]! * inv[j]!);
        for (const off of [0, hd / 2]) {
          ang[i * hd + off + j] = a;
          ang[i * hd + off + hd / 4 + j] = b;
        }
      }
    }
    // block-diagonal attention: each frame group of each image is its own sequence (HF cu_seqlens)
    const seg = new Int32Array(n);
    let start = 0;
    let id = 0;
    for (const [t, h, w] of grids as [number, number, number][]) for (let f = 0; f < t; f++, id++) seg.fill(id, start, (start += h * w));
    const maskVals = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (seg[i] !== seg[j]) maskVals[i * n + j] = -1e9;
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      const angles = tf.tensor3d(ang, [n, 1, hd]);
      const cos = tf.cos(angles);
      const sin = tf.sin(angles);
      const bias = tf.tensor4d(maskVals, [1, 1, n, n]);
      const rope = (x: tf.Tensor) => {
        const [x1, x2] = tf.split(x, 2, -1);
        return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), sin));
      };
      const lin = (name: string, y: tf.Tensor) => ops.linear(y, p(`${name}.weight`), p(`${name}.bias`));
      const ln = (name: string, y: tf.Tensor) => ops.layerNorm(y, p(`${name}.weight`), p(`${name}.bias`), c.layerNormEps);
      let x: tf.Tensor = tf.matMul(patches, tf.reshape(p('patch_embed.proj.weight'), [E, this.patchDim]), false, true);
      const hidden: tf.Tensor[] = [];
      for (let l = 0; l < c.depth; l++) {
        const b = `blocks.${l}.`;
        const input = x;
        // one tidy per block: its transients go when it ends, as the ViT's and the transformer's layers
        x = tf.tidy(() => {
          const qkv = tf.reshape(lin(`${b}attn.qkv`, ln(`${b}norm1`, input)), [n, 3, H, hd]);
          const [q, k, v] = tf.unstack(qkv, 1).map((t, i) => (i < 2 ? rope(t) : t)).map((t) => tf.expandDims(tf.transpose(t, [1, 0, 2]), 0));
          const a = ops.attention(q!, k!, v!, { bias }); // [1, H, N, hd]
          const attended = lin(`${b}attn.proj`, tf.reshape(tf.transpose(tf.squeeze(a, [0]), [1, 0, 2]), [n, E]));
          const [h, normed] = ops.addLayerNorm(input, attended, p(`${b}norm2.weight`), p(`${b}norm2.bias`), c.layerNormEps);
          return tf.add(h, lin(`${b}mlp.fc2`, quickGelu(lin(`${b}mlp.fc1`, normed))));
        });
        // a block's input (made here) goes once the block has read it, unless the hidden states are asked for
        if (opts.outputHiddenStates) hidden.push(x);
        else input.dispose();
      }
      const merged = tf.reshape(ln('merger.ln_q', x), [n / (m * m), E * m * m]);
      const tokens = lin('merger.mlp.2', ops.gelu(lin('merger.mlp.0', merged), 'none')) as tf.Tensor2D;
      return { tokens, ...(opts.outputHiddenStates ? { hiddenStates: hidden } : {}) } as unknown as tf.TensorContainer;
    }) as unknown as { tokens: tf.Tensor2D; hiddenStates?: tf.Tensor[] };
  }
}

// ------------------------------------------------------------------------------------------ the mixin

/** Media keys (HF names): packed patches and their grids, for images and for videos. */
export const QWEN2_PIXEL_VALUES = 'pixel_values';
export const QWEN2_PIXEL_VALUES_VIDEOS = 'pixel_values_videos';

export interface Qwen2VisionOptions {
  vision: Qwen2VisionConfig;
  imageTokenId: number;
  videoTokenId?: number;
}

interface PackedPlan {
  /** Placeholders of each kind, in order across the batch. */
  images: number;
  videos: number;
  imageGrids: number[][];
  videoGrids: number[][];
  gather: ops.RowGather | null;
}

function gridRows(v: unknown, what: string, host: HostContext): number[][] {
  if (v == null) return [];
  if (v instanceof tf.Tensor) {
    if (v.rank !== 2 || v.shape[1] !== 3) fail(`media.${what}: expected [n, 3] (t, h, w), got ${shapeStr(v.shape)}`);
    const flat = host.readBack(v);
    return Array.from({ length: v.shape[0]! }, (_, r) => Array.from(flat.subarray(3 * r, 3 * r + 3)));
  }
  if (Array.isArray(v) && v.every((r) => Array.isArray(r) || ArrayBuffer.isView(r))) return (v as ArrayLike<number>[]).map((r) => Array.from(r));
  return fail(`media.${what}: expected number[][] (t, h, w) per image, got ${typeof v}`);
}

/**
 * The Qwen2-VL vision tower as a mixin ('visual' in the recipes, HF's names under it): the host stage
 * reads the grids (`media.imageGridThw` / `videoGridThw`, which M-RoPE reads too) and plans where the
 * merged tokens go; encodeMedia runs the tower on `media.pixel_values` / `pixel_values_videos`;
 * wordEmbedding writes the tokens at the <image> / <video> placeholders in order across the batch.
 */
export class Qwen2VisionMixin extends Mixin {
  readonly options: Qwen2VisionOptions;
  private readonly mod = this.submodule('vision tower', (m) => new Qwen2VisionTower(m.params, `${this.name}.`, this.options.vision, m.config.hiddenSize, { component: this.name }));
  private planKey: StateKey<PackedPlan> = stateKey('qwen2vision.plan');
  private tokensKey: StateKey<tf.Tensor2D> = stateKey('qwen2vision.tokens');

  constructor(opts: Qwen2VisionOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || opts.vision == null) fail(`Qwen2VisionMixin: expected options { vision, imageTokenId }, got ${JSON.stringify(opts)}`);
    if (!Number.isInteger(opts.imageTokenId) || opts.imageTokenId < 0) fail(`imageTokenId: expected a non-negative integer, got ${JSON.stringify(opts.imageTokenId)}`);
    resolveQwen2VisionConfig(opts.vision, opts.vision.hiddenSize ?? 1);
    this.options = opts;
  }

  get tower(): Qwen2VisionTower {
    return this.mod.get();
  }

  override attach(model: Model): void {
    for (const [k, v] of [['imageTokenId', this.options.imageTokenId], ['videoTokenId', this.options.videoTokenId]] as const) {
      if (v != null && v >= model.config.vocabSize) fail(`${this.name}.${k}: expected an id < vocabSize ${model.config.vocabSize}, got ${v}`);
    }
    if (this.tower.config.hiddenSize !== model.config.hiddenSize) fail(`${this.name}.vision.hiddenSize: expected the LM's hiddenSize ${model.config.hiddenSize}, got ${this.tower.config.hiddenSize}`);
    this.planKey = stateKey(`${this.name}.plan`);
    this.tokensKey = stateKey(`${this.name}.tokens`);
  }

  private plan(host: HostContext): PackedPlan {
    const { imageTokenId: img, videoTokenId: vid } = this.options;
    const ids = host.inputIds;
    const [b, t] = [host.batch, host.seqLen];
    let images = 0;
    let videos = 0;
    for (const id of ids) {
      if (id === img) images++;
      else if (vid != null && id === vid) videos++;
    }
    const m2 = this.tower.config.spatialMergeSize ** 2;
    const imageGrids = gridRows(host.media.imageGridThw, 'imageGridThw', host);
    const videoGrids = gridRows(host.media.videoGridThw, 'videoGridThw', host);
    const want = (g: number[][]) => g.reduce((a, x) => a + (x[0]! * x[1]! * x[2]!) / m2, 0);
    if (images + videos === 0) return { images, videos, imageGrids, videoGrids, gather: null };
    for (const [kind, count, grids] of [['image', images, imageGrids], ['video', videos, videoGrids]] as const) {
      checkGrids(grids, this.tower.config.spatialMergeSize, `media.${kind}GridThw`);
      if (count !== want(grids)) {
        fail(`${this.name}: inputIds hold ${count} ${kind} placeholder(s) but media.${kind}GridThw [${grids.map((g) => `[${g}]`).join(', ')}] gives ${want(grids)} ` +
          `merged tokens (t * h * w / ${m2} each)`);
      }
    }
    const src = new Int32Array(b * t);
    let ki = 0;
    let kv = 0;
    for (let i = 0; i < b * t; i++) src[i] = ids[i] === img ? b * t + ki++ : vid != null && ids[i] === vid ? b * t + images + kv++ : i;
    return { images, videos, imageGrids, videoGrids, gather: ops.rowGather(src, b * t + images + videos) };
  }

  hooks(): HookImpls {
    return {
      hostInputs: (inputs, host, next) => next(inputs, host).with(this.planKey, this.plan(host), this.name),
      encodeMedia: (state, ctx, next) => {
        const out = next(state, ctx);
        const plan = out.require(this.planKey, this.name);
        if (!plan.gather) return out;
        const parts: tf.Tensor[] = [];
        for (const [key, grids, count] of [[QWEN2_PIXEL_VALUES, plan.imageGrids, plan.images], [QWEN2_PIXEL_VALUES_VIDEOS, plan.videoGrids, plan.videos]] as const) {
          if (count === 0) continue;
          const px = ctx.media[key];
          if (!(px instanceof tf.Tensor)) fail(`${this.name}: inputIds hold ${count} placeholder(s) for media.${key} but it is not a tensor (got ${typeof px})`);
          parts.push(this.tower.forward(px, grids).tokens);
        }
        return out.with(this.tokensKey, (parts.length === 1 ? parts[0]! : tf.concat(parts, 0)) as tf.Tensor2D, this.name);
      },
      wordEmbedding: (ids, ctx, next) => {
        const emb = next(ids, ctx);
        const plan = ctx.state.require(this.planKey, this.name);
        if (!plan.gather) return emb;
        const tokens = ctx.state.require(this.tokensKey, this.name);
        const [b, t, c] = emb.shape as [number, number, number];
        return tf.reshape(ops.gatherRows(tf.concat([tf.reshape(emb, [b * t, c]), tokens], 0), plan.gather), [b, t, c]);
      },
    };
  }
}

/**
 * Loads a Qwen2-VL checkpoint's vision tower into the Qwen2VisionMixin `mixinName`. The prefix defaults to
 * the one the file uses: `visual.` (transformers < 4.52), `model.visual.` (>= 4.52), or none (the module's
 * own state_dict). Everything else in the file (the language model) is skipped.
 */
export function loadQwen2Vision(model: Model, mixinName: string, file: SafetensorsFile, opts: { prefix?: string; strict?: boolean } = {}): LoadStateDictResult {
  if (!(model.getMixin(mixinName) instanceof Qwen2VisionMixin)) fail(`loadQwen2Vision: mixin '${mixinName}' is not a Qwen2VisionMixin`);
  const prefix = opts.prefix ?? ['visual.', 'model.visual.', ''].find((p) => file.has(`${p}patch_embed.proj.weight`));
  if (prefix == null) fail(`loadQwen2Vision: no patch_embed.proj.weight under visual., model.visual. or bare names; pass { prefix }`);
  return loadMixinPrefixed(model, mixinName, file, prefix, opts.strict ?? true);
}
