/**
 * ViT image encoder (HF `CLIPVisionModel` math and parameter names; HF `ViTModel`-style options) and
 * `VisionEncoderMixin`, which encodes `ctx.media.pixels` in the `encodeMedia` hook and writes
 * VISION_FEATURES ('vision.features', [B, N, Cv]) for a connector (projector, Q-Former, ...).
 *
 * Parameter names (under the owner's prefix) are HF CLIP's `vision_model.*` names verbatim, so a CLIP
 * vision state dict loads by prefix replacement only (see `loadClipVision`).
 */
import * as tf from '@tensorflow/tfjs';
import {
  checkPositiveInt,
  consume,
  fail,
  heldAcrossSteps,
  Mixin,
  normal,
  ones,
  ops,
  ParamScope,
  shapeStr,
  zeros,
  type HookImpls,
  type Init,
  type LoadStateDictResult,
  type Model,
  type ParamOverrides,
  type ParamStore,
  type SafetensorsFile,
  stateKey,
} from '@vlmix/core';
import { MEDIA_PIXELS, VISION_FEATURES } from '../common.js';
import { loadMixinMapped } from '../weights.js';

// ------------------------------------------------------------------------------------------ config

export type VitActivation = 'quick_gelu' | 'gelu' | 'gelu_tanh';
/**
 * What `output()` pools: 'cls' = post_layernorm(class token) (CLIP's pooler_output); 'map' = SigLIP's
 * multihead-attention pooling head (`head.*`: a learned probe attends over post_layernorm(tokens), then
 * LayerNorm + MLP residual); 'none' = no pooled output.
 */
export type VitPooling = 'cls' | 'map' | 'none';
export type PositionInterpolation = 'bicubic' | 'bilinear';

export interface VitConfig {
  /** Training resolution (square): the position table has (imageSize / patchSize)^2 (+1) rows. */
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** Input channels (default 3). */
  numChannels?: number;
  /** LayerNorm eps (default 1e-5 as CLIP; HF ViT uses 1e-12). */
  layerNormEps?: number;
  /** MLP activation (default 'quick_gelu' as CLIP; HF ViT / EVA use 'gelu'). */
  activation?: VitActivation;
  /** Prepend a learned class token `embeddings.class_embedding` (default true). */
  classToken?: boolean;
  /** Bias on the patch embedding (default false as CLIP; HF ViT has one). */
  patchBias?: boolean;
  /** CLIP's `pre_layrnorm` after the embeddings (default true; HF ViT has none). */
  preLayerNorm?: boolean;
  /** Create `post_layernorm` (default true). CLIP applies it to the pooled CLS token only. */
  postLayerNorm?: boolean;
  /** How the position table is resized to another patch grid (default 'bicubic', as HF). */
  interpolation?: PositionInterpolation;
  /** Accept images whose patch grid differs from the training grid by resizing positions (default false). */
  interpolatePositions?: boolean;
  /**
   * Pooling (default 'cls' with a class token and post_layernorm, else 'none'). 'map' creates the
   * `head.*` parameters and, as SigLIP does, applies post_layernorm to every token of last_hidden_state.
   */
  pooling?: VitPooling;
  /** Initial position embedding: 'normal' (CLIP/HF, std initStd) or 'sincos2d' (MAE: fixed 2-D sin-cos
   *  values, still trainable; the class token's row is zero). Default 'normal'. */
  positionInit?: 'normal' | 'sincos2d';
}

export type ResolvedVitConfig = Required<VitConfig>;

/**
 * MAE's fixed 2-D sin-cos table for a grid x grid patch layout: the first half of the channels encode the
 * row, the second half the column, each as [sin(p * w_i), cos(p * w_i)] with w_i = 1 / 10000^(i / (C/4)).
 * Row 0 is the class token's (zeros) when there is one.
 */
export function sincos2d(grid: number, channels: number, classToken: boolean): Float32Array {
  const q = channels / 4;
  const off = classToken ? 1 : 0;
  const out = new Float32Array((grid * grid + off) * channels);
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      const row = (off + y * grid + x) * channels;
      for (let i = 0; i < q; i++) {
        const w = 1 / Math.pow(10000, i / q);
        out[row + i] = Math.sin(y * w);
        out[row + q + i] = Math.cos(y * w);
        out[row + 2 * q + i] = Math.sin(x * w);
        out[row + 3 * q + i] = Math.cos(x * w);
      }
    }
  }
  return out;
}

export function resolveVitConfig(c: VitConfig): ResolvedVitConfig {
  if (c == null || typeof c !== 'object') fail(`vit config: expected an object, got ${JSON.stringify(c)}`);
  const out: ResolvedVitConfig = {
    numChannels: 3,
    layerNormEps: 1e-5,
    activation: 'quick_gelu',
    classToken: true,
    patchBias: false,
    preLayerNorm: true,
    postLayerNorm: true,
    interpolation: 'bicubic',
    interpolatePositions: false,
    positionInit: 'normal',
    ...c,
    pooling: c.pooling ?? ((c.classToken ?? true) && (c.postLayerNorm ?? true) ? 'cls' : 'none'),
  };
  for (const k of ['imageSize', 'patchSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'numChannels'] as const) {
    checkPositiveInt(`vit.${k}`, out[k]);
  }
  if (out.imageSize % out.patchSize !== 0) fail(`vit.imageSize: expected a multiple of patchSize ${out.patchSize}, got ${out.imageSize}`);
  if (out.hiddenSize % out.numHeads !== 0) fail(`vit.hiddenSize: expected a multiple of numHeads ${out.numHeads}, got ${out.hiddenSize}`);
  if (!['quick_gelu', 'gelu', 'gelu_tanh'].includes(out.activation)) {
    fail(`vit.activation: expected 'quick_gelu', 'gelu' or 'gelu_tanh', got ${JSON.stringify(out.activation)}`);
  }
  if (!['bicubic', 'bilinear'].includes(out.interpolation)) {
    fail(`vit.interpolation: expected 'bicubic' or 'bilinear', got ${JSON.stringify(out.interpolation)}`);
  }
  if (!['cls', 'map', 'none'].includes(out.pooling)) fail(`vit.pooling: expected 'cls', 'map' or 'none', got ${JSON.stringify(out.pooling)}`);
  if (out.pooling === 'cls' && !(out.classToken && out.postLayerNorm)) fail(`vit.pooling: 'cls' needs classToken and postLayerNorm`);
  if (out.pooling === 'map' && !out.postLayerNorm) fail(`vit.pooling: 'map' needs postLayerNorm (SigLIP normalises the tokens before its head)`);
  if (!(out.layerNormEps > 0)) fail(`vit.layerNormEps: expected > 0, got ${out.layerNormEps}`);
  if (out.positionInit !== 'normal' && out.positionInit !== 'sincos2d') fail(`vit.positionInit: expected 'normal' or 'sincos2d', got ${JSON.stringify(out.positionInit)}`);
  if (out.positionInit === 'sincos2d' && out.hiddenSize % 4 !== 0) fail(`vit.positionInit: 'sincos2d' needs hiddenSize divisible by 4, got ${out.hiddenSize}`);
  return out;
}

// ------------------------------------------------------------------------------------------ helpers

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** The activations ops.linear fuses with the projection before them (quick_gelu is not one). */
const VIT_FUSED_ACTIVATION: Partial<Record<VitActivation, ops.kernels.FusedActivation>> = { gelu: 'gelu', gelu_tanh: 'gelu_tanh' };

export function applyVitActivation(x: tf.Tensor, kind: VitActivation): tf.Tensor {
  if (kind === 'quick_gelu') return quickGelu(x);
  return ops.gelu(x, kind === 'gelu' ? 'none' : 'tanh');
}

/** [B, T, H*D] -> [B, H, T, D] */
function heads(x: tf.Tensor, h: number): tf.Tensor {
  return ops.splitHeads(x, [h], x.shape[2]! / h)[0]!;
}

/**
 * Multi-head attention with separate q/k/v/out projections named `<base>.{q,k,v,out}_proj.{weight,bias}`
 * (non-causal, no mask, scale 1/sqrt(D)).
 */
function selfAttention(p: (n: string) => tf.Tensor, base: string, x: tf.Tensor, numHeads: number): tf.Tensor {
  const lin = (n: string, y: tf.Tensor) => ops.linear(y, p(`${base}.${n}.weight`), p(`${base}.${n}.bias`));
  // each intermediate is freed once read (consume): the peak is a few [B, N, C] tensors, as in PyTorch
  const proj = (n: string) => consume(lin(n, x), (y) => heads(y, numHeads));
  const [q, k, v] = [proj('q_proj'), proj('k_proj'), proj('v_proj')];
  const o = ops.attention(q, k, v, { bias: null, causal: false });
  tf.dispose([q, k, v]);
  return consume(o, ops.mergeHeads, (m) => lin('out_proj', m));
}

const A_CUBIC = -0.75;
const cc1 = (x: number) => ((A_CUBIC + 2) * x - (A_CUBIC + 3)) * x * x + 1;
const cc2 = (x: number) => ((A_CUBIC * x - 5 * A_CUBIC) * x + 8 * A_CUBIC) * x - 4 * A_CUBIC;

/**
 * The [out, in] matrix of a 1-D resize with PyTorch `F.interpolate(mode, align_corners=False)` semantics
 * (size given, so scale = in / out): bicubic uses the cubic convolution kernel with A = -0.75 and
 * border-clamped taps; bilinear clamps the source coordinate at 0. Resizing to the same size is the identity.
 */
export function resizeMatrix(inSize: number, outSize: number, mode: PositionInterpolation): Float32Array {
  checkPositiveInt('inSize', inSize);
  checkPositiveInt('outSize', outSize);
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  const clamp = (i: number) => Math.min(Math.max(i, 0), inSize - 1);
  for (let o = 0; o < outSize; o++) {
    const row = o * inSize;
    if (mode === 'bilinear') {
      const src = Math.max(scale * (o + 0.5) - 0.5, 0);
      const i0 = Math.min(Math.floor(src), inSize - 1);
      const i1 = Math.min(i0 + 1, inSize - 1);
      const l1 = src - i0;
      m[row + i0] += 1 - l1;
      m[row + i1] += l1;
    } else {
      const src = scale * (o + 0.5) - 0.5;
      const i0 = Math.floor(src);
      const t = src - i0;
      const w = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
      for (let k = 0; k < 4; k++) m[row + clamp(i0 - 1 + k)] += w[k]!;
    }
  }
  return m;
}

/** Resizes a grid of vectors [h*w, C] (row-major) to [h2*w2, C]; differentiable in `grid`. */
export function resizePositionGrid(grid: tf.Tensor, h: number, w: number, h2: number, w2: number, mode: PositionInterpolation): tf.Tensor {
  if (grid.rank !== 2 || grid.shape[0] !== h * w) fail(`grid: expected shape [${h * w}, C], got ${shapeStr(grid.shape)}`);
  if (h === h2 && w === w2) return tf.clone(grid);
  const c = grid.shape[1]!;
  return tf.tidy(() => {
    const mh = tf.tensor2d(resizeMatrix(h, h2, mode), [h2, h]);
    const mw = tf.tensor2d(resizeMatrix(w, w2, mode), [w2, w]);
    let x = tf.matMul(mh, tf.reshape(grid, [h, w * c])); // [h2, w*c]
    x = tf.transpose(tf.reshape(x, [h2, w, c]), [1, 0, 2]); // [w, h2, c]
    x = tf.matMul(mw, tf.reshape(x, [w, h2 * c])); // [w2, h2*c]
    return tf.reshape(tf.transpose(tf.reshape(x, [w2, h2, c]), [1, 0, 2]), [h2 * w2, c]);
  });
}

// ------------------------------------------------------------------------------------------ encoder

export interface VitForwardOptions {
  /** Keep every hidden state: hidden_states[0] = embeddings (after pre-LN), [i] = after layer i. */
  outputHiddenStates?: boolean;
  /** Run only the first `numLayers` layers (default all). */
  numLayers?: number;
  /** Per-call parameter overrides by local name. */
  params?: ParamOverrides;
}

export interface VitForwardOutput {
  /** Output of the last layer run [B, (1+)N, C] (no post_layernorm, as HF CLIP's last_hidden_state). */
  lastHiddenState: tf.Tensor;
  hiddenStates?: tf.Tensor[];
}

export interface VitFeatureOptions {
  /** Index into hidden_states (0 = embeddings; negative counts from the end, -1 = last layer). Default -2 (LLaVA). */
  selectLayer?: number;
  /** 'patch' drops the class token (LLaVA default); 'cls_patch' keeps it. */
  selectFeature?: 'patch' | 'cls_patch';
  /** Apply post_layernorm to the selected features (HF ViT / BLIP-2 style). Default false (LLaVA). */
  postNorm?: boolean;
}

/** A ViT image encoder whose parameters live in a ParamStore under `prefix`. */
export class VitEncoder {
  readonly config: ResolvedVitConfig;
  readonly scope: ParamScope;
  /** Patches per side at the training resolution. */
  readonly grid: number;

  constructor(params: ParamStore, prefix: string, config: VitConfig, opts: { component?: string; initStd?: number } = {}) {
    this.config = resolveVitConfig(config);
    this.scope = new ParamScope(params, prefix, opts.component ?? prefix.replace(/\.$/, ''));
    this.grid = this.config.imageSize / this.config.patchSize;
    const c = this.config;
    const C = c.hiddenSize;
    const std = opts.initStd ?? 0.02;
    const s = this.scope;
    const mk = (n: string, shape: number[], init: Init) => {
      s.create(n, shape, init);
    };
    const ln = (n: string) => {
      mk(`${n}.weight`, [C], ones);
      mk(`${n}.bias`, [C], zeros);
    };
    const lin = (n: string, out: number, inF: number) => {
      mk(`${n}.weight`, [out, inF], normal(std));
      mk(`${n}.bias`, [out], zeros);
    };
    if (c.classToken) mk('embeddings.class_embedding', [C], normal(std));
    mk('embeddings.patch_embedding.weight', [C, c.numChannels, c.patchSize, c.patchSize], normal(std));
    if (c.patchBias) mk('embeddings.patch_embedding.bias', [C], zeros);
    const posRows = this.grid * this.grid + (c.classToken ? 1 : 0);
    mk('embeddings.position_embedding.weight', [posRows, C],
      c.positionInit === 'sincos2d' ? { kind: 'values', values: sincos2d(this.grid, C, c.classToken) } : normal(std));
    if (c.preLayerNorm) ln('pre_layrnorm');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `encoder.layers.${l}.`;
      for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) lin(`${p}self_attn.${n}`, C, C);
      ln(`${p}layer_norm1`);
      lin(`${p}mlp.fc1`, c.intermediateSize, C);
      lin(`${p}mlp.fc2`, C, c.intermediateSize);
      ln(`${p}layer_norm2`);
    }
    if (c.postLayerNorm) ln('post_layernorm');
    if (c.pooling === 'map') {
      // SigLIP's SiglipMultiheadAttentionPoolingHead (torch nn.MultiheadAttention names)
      mk('head.probe', [1, 1, C], normal(std));
      mk('head.attention.in_proj_weight', [3 * C, C], normal(std));
      mk('head.attention.in_proj_bias', [3 * C], zeros);
      lin('head.attention.out_proj', C, C);
      ln('head.layernorm');
      lin('head.mlp.fc1', c.intermediateSize, C);
      lin('head.mlp.fc2', C, c.intermediateSize);
    }
  }

  /** Checks pixels [B, Cin, H, W] and returns the patch grid [gh, gw]. */
  gridOf(pixels: tf.Tensor, arg = 'pixels'): [number, number] {
    const c = this.config;
    if (pixels.rank !== 4 || pixels.shape[1] !== c.numChannels) {
      fail(`${arg}: expected shape [B, ${c.numChannels}, H, W], got ${shapeStr(pixels.shape)}`);
    }
    if (pixels.dtype !== 'float32') fail(`${arg}: expected dtype float32, got ${pixels.dtype}`);
    const [, , h, w] = pixels.shape as number[];
    if (h! % c.patchSize !== 0 || w! % c.patchSize !== 0) {
      fail(`${arg}: height and width must be multiples of patchSize ${c.patchSize}, got ${h}x${w}`);
    }
    const gh = h! / c.patchSize;
    const gw = w! / c.patchSize;
    if ((gh !== this.grid || gw !== this.grid) && !c.interpolatePositions) {
      fail(`${arg}: expected ${c.imageSize}x${c.imageSize} images (patch grid ${this.grid}x${this.grid}), got ${h}x${w}; ` +
        `set interpolatePositions: true to resize the position embedding`);
    }
    return [gh, gw];
  }

  /** Position table for a gh x gw grid [(1+)gh*gw, C]: the stored table, or its resized patch part. */
  positionEmbedding(gh: number, gw: number, params?: ParamOverrides): tf.Tensor {
    const p = this.scope.getter(params);
    const table = p('embeddings.position_embedding.weight');
    if (gh === this.grid && gw === this.grid) return tf.clone(table);
    return tf.tidy(() => {
      const cls = this.config.classToken ? 1 : 0;
      const n = this.grid * this.grid;
      const patch = tf.slice(table, [cls, 0], [n, -1]);
      const resized = resizePositionGrid(patch, this.grid, this.grid, gh, gw, this.config.interpolation);
      return cls ? tf.concat([tf.slice(table, [0, 0], [1, -1]), resized], 0) : resized;
    });
  }

  /** Embeddings (patches, class token, positions, pre-LN): hidden_states[0], [B, (1+)N, C]. */
  embed(pixels: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    const [gh, gw] = this.gridOf(pixels);
    const c = this.config;
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      const b = pixels.shape[0]!;
      const ps = c.patchSize;
      const C = c.hiddenSize;
      // Conv with kernel = stride = p is a matmul over flattened (channel, row, col) patches.
      const patches = tf.reshape(
        tf.transpose(tf.reshape(pixels, [b, c.numChannels, gh, ps, gw, ps]), [0, 2, 4, 1, 3, 5]),
        [b, gh * gw, c.numChannels * ps * ps],
      );
      const w = tf.reshape(p('embeddings.patch_embedding.weight'), [C, c.numChannels * ps * ps]);
      let x = ops.linear(patches, w, c.patchBias ? p('embeddings.patch_embedding.bias') : null);
      if (c.classToken) {
        const cls = tf.tile(tf.reshape(p('embeddings.class_embedding'), [1, 1, C]), [b, 1, 1]);
        x = tf.concat([cls, x], 1);
      }
      x = tf.add(x, this.positionEmbedding(gh, gw, params));
      if (c.preLayerNorm) x = ops.layerNorm(x, p('pre_layrnorm.weight'), p('pre_layrnorm.bias'), c.layerNormEps);
      return x;
    });
  }

  /** One pre-LN encoder layer. */
  layer(l: number, x: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    const c = this.config;
    const p = this.scope.getter(params);
    const pre = `encoder.layers.${l}.`;
    const ln = (n: string, y: tf.Tensor) => ops.layerNorm(y, p(`${pre}${n}.weight`), p(`${pre}${n}.bias`), c.layerNormEps);
    const fc = (n: string, y: tf.Tensor, act?: ops.kernels.FusedActivation) => ops.linear(y, p(`${pre}mlp.${n}.weight`), p(`${pre}mlp.${n}.bias`), act);
    return tf.tidy(() => {
      // intermediates are freed once read (consume), so the layer's peak is its MLP's, not all its transients
      const attended = consume(ln('layer_norm1', x), (n) => selfAttention(p, `${pre}self_attn`, n, c.numHeads));
      // the residual add and layer_norm2 in one kernel; fc1 and its activation in one where it is GELU
      const [h, normed] = ops.addLayerNorm(x, attended, p(`${pre}layer_norm2.weight`), p(`${pre}layer_norm2.bias`), c.layerNormEps);
      attended.dispose();
      const fused = VIT_FUSED_ACTIVATION[c.activation];
      const up = fused ? (n: tf.Tensor) => fc('fc1', n, fused) : (n: tf.Tensor) => applyVitActivation(fc('fc1', n), c.activation);
      return consume(normed, up, (g) => fc('fc2', g), (d) => tf.add(h, d));
    });
  }

  forward(pixels: tf.Tensor, opts: VitForwardOptions = {}): VitForwardOutput {
    const n = opts.numLayers ?? this.config.numLayers;
    if (!Number.isInteger(n) || n < 0 || n > this.config.numLayers) {
      fail(`numLayers: expected an integer in [0, ${this.config.numLayers}], got ${JSON.stringify(opts.numLayers)}`);
    }
    return tf.tidy(() => {
      let x = this.embed(pixels, opts.params);
      const hs: tf.Tensor[] = [x];
      for (let l = 0; l < n; l++) {
        const next = this.layer(l, x, opts.params);
        if (!opts.outputHiddenStates) x.dispose(); // an earlier layer's output is not kept past its reader
        x = next;
        if (opts.outputHiddenStates) hs.push(x);
      }
      const out: VitForwardOutput = { lastHiddenState: x };
      if (opts.outputHiddenStates) out.hiddenStates = hs;
      return out as unknown as tf.TensorContainer;
    }) as unknown as VitForwardOutput;
  }

  /**
   * HF's vision-model outputs: CLIP (pooling 'cls'): last_hidden_state = the last layer's output,
   * pooler_output = post_layernorm(last_hidden_state[:, 0]); SigLIP (pooling 'map'): last_hidden_state =
   * post_layernorm(last layer's output), pooler_output = head(last_hidden_state); 'none': no pooler_output.
   * hidden_states (embeddings, then every layer; before post_layernorm) when asked.
   */
  output(pixels: tf.Tensor, opts: { outputHiddenStates?: boolean; params?: ParamOverrides } = {}): VitForwardOutput & { poolerOutput: tf.Tensor | null } {
    const c = this.config;
    const p = this.scope.getter(opts.params);
    return tf.tidy(() => {
      const f = this.forward(pixels, { outputHiddenStates: opts.outputHiddenStates, params: opts.params });
      const norm = (x: tf.Tensor) => ops.layerNorm(x, p('post_layernorm.weight'), p('post_layernorm.bias'), c.layerNormEps);
      let last = f.lastHiddenState;
      let pooled: tf.Tensor | null = null;
      if (c.pooling === 'cls') pooled = norm(tf.squeeze(tf.slice(last, [0, 0, 0], [-1, 1, -1]), [1]));
      if (c.pooling === 'map') {
        last = norm(last);
        pooled = this.mapHead(last, p);
      }
      return { ...f, lastHiddenState: last, poolerOutput: pooled } as unknown as tf.TensorContainer;
    }) as unknown as VitForwardOutput & { poolerOutput: tf.Tensor | null };
  }

  /** SigLIP's attention-pooling head on tokens x [B, N, C] -> [B, C]. */
  private mapHead(x: tf.Tensor, p: (n: string) => tf.Tensor): tf.Tensor {
    const c = this.config;
    const C = c.hiddenSize;
    const b = x.shape[0]!;
    const [wq, wk, wv] = tf.split(p('head.attention.in_proj_weight'), 3, 0);
    const [bq, bk, bv] = tf.split(p('head.attention.in_proj_bias'), 3, 0);
    const probe = tf.tile(p('head.probe'), [b, 1, 1]);
    const q = heads(ops.linear(probe, wq!, bq!), c.numHeads);
    const k = heads(ops.linear(x, wk!, bk!), c.numHeads);
    const v = heads(ops.linear(x, wv!, bv!), c.numHeads);
    let h = ops.linear(ops.mergeHeads(ops.attention(q, k, v, { bias: null, causal: false })), p('head.attention.out_proj.weight'), p('head.attention.out_proj.bias'));
    const m = ops.layerNorm(h, p('head.layernorm.weight'), p('head.layernorm.bias'), c.layerNormEps);
    const up = applyVitActivation(ops.linear(m, p('head.mlp.fc1.weight'), p('head.mlp.fc1.bias')), c.activation);
    h = tf.add(h, ops.linear(up, p('head.mlp.fc2.weight'), p('head.mlp.fc2.bias')));
    return tf.reshape(h, [b, C]);
  }

  /** The pooled output [B, C] (CLIP's pooler_output for pooling 'cls', SigLIP's head for 'map'). */
  pooled(pixels: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    if (this.config.pooling === 'none') fail(`pooled: the vit config has pooling 'none'`);
    return tf.tidy(() => this.output(pixels, { params }).poolerOutput!);
  }

  /** Resolves a hidden-state index (negative from the end) into [0, numLayers]. */
  resolveLayer(selectLayer: number): number {
    const L = this.config.numLayers;
    const i = selectLayer < 0 ? L + 1 + selectLayer : selectLayer;
    if (!Number.isInteger(selectLayer) || i < 0 || i > L) {
      fail(`selectLayer: expected an integer in [${-(L + 1)}, ${L}] (hidden_states has ${L + 1} entries), got ${JSON.stringify(selectLayer)}`);
    }
    return i;
  }

  /** Selected features [B, N(+1), C]: hidden_states[selectLayer], class token dropped for 'patch'. */
  features(pixels: tf.Tensor, opts: VitFeatureOptions = {}, params?: ParamOverrides): tf.Tensor {
    const c = this.config;
    const layer = this.resolveLayer(opts.selectLayer ?? -2);
    const sel = opts.selectFeature ?? 'patch';
    if (sel !== 'patch' && sel !== 'cls_patch') fail(`selectFeature: expected 'patch' or 'cls_patch', got ${JSON.stringify(sel)}`);
    if (opts.postNorm && !c.postLayerNorm) fail(`postNorm: the vit config has postLayerNorm: false`);
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      let x = this.forward(pixels, { numLayers: layer, params }).lastHiddenState;
      if (sel === 'patch' && c.classToken) x = tf.slice(x, [0, 1, 0], [-1, -1, -1]);
      if (opts.postNorm) x = ops.layerNorm(x, p('post_layernorm.weight'), p('post_layernorm.bias'), c.layerNormEps);
      return x;
    });
  }
}

// ------------------------------------------------------------------------------------------ mixin

export interface VisionEncoderOptions extends VitFeatureOptions {
  vit: VitConfig;
  /** Key of the pixels in ctx.media (default 'pixels'). */
  mediaKey?: string;
  /** State key the features go to (default 'vision.features'): a second tower (e.g. CogAgent's high-res one) writes its own. */
  featuresKey?: string;
  /** Init std of the encoder's weights (default 0.02). */
  initStd?: number;
  /**
   * The pixels are any number N of images [N, 3, H, W] in the batch's order, not one per row (InternVL's tiles:
   * pixel_values of all images' tiles); the connector packs their tokens into the placeholders in order.
   */
  packed?: boolean;
}

/**
 * Encodes `ctx.media.pixels` ([B, 3, H, W], or [B, M, 3, H, W] for M images per row whose features are
 * concatenated) in the `encodeMedia` hook and writes VISION_FEATURES [B, (M*)N, Cv].
 * Parameters: `<name>.<CLIP vision name>` (e.g. `vision.encoder.layers.0.self_attn.q_proj.weight`).
 */
export class VisionEncoderMixin extends Mixin {
  readonly options: VisionEncoderOptions;
  private readonly enc = this.submodule('ViT encoder', (m) =>
    new VitEncoder(m.params, `${this.name}.`, this.options.vit, { component: this.name, initStd: this.options.initStd }));

  constructor(opts: VisionEncoderOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || typeof opts !== 'object' || opts.vit == null) fail(`VisionEncoderMixin: expected options { vit: VitConfig, ... }, got ${JSON.stringify(opts)}`);
    this.options = { ...opts, vit: resolveVitConfig(opts.vit) };
    const sel = opts.selectFeature ?? 'patch';
    if (sel !== 'patch' && sel !== 'cls_patch') fail(`selectFeature: expected 'patch' or 'cls_patch', got ${JSON.stringify(sel)}`);
    const L = this.options.vit.numLayers;
    const sl = opts.selectLayer ?? -2;
    if (!Number.isInteger(sl) || sl < -(L + 1) || sl > L) fail(`selectLayer: expected an integer in [${-(L + 1)}, ${L}], got ${JSON.stringify(sl)}`);
  }

  get encoder(): VitEncoder {
    return this.enc.get();
  }

  hooks(): HookImpls {
    return {
      encodeMedia: (features, ctx, next) => {
        const out = next(features, ctx);
        const key = this.options.mediaKey ?? MEDIA_PIXELS;
        const px = ctx.media[key];
        if (px == null) return out; // text-only pass (e.g. a decode step)
        if (!(px instanceof tf.Tensor)) fail(`media.${key}: expected a float32 tf.Tensor [B, 3, H, W], got ${typeof px}`);
        if (!this.options.packed && px.shape[0] !== ctx.batch) fail(`media.${key}: expected batch ${ctx.batch} (inputIds rows), got ${shapeStr(px.shape)}`);
        const to = this.options.featuresKey ? stateKey<tf.Tensor3D>(this.options.featuresKey) : VISION_FEATURES;
        // decoding with a cache: the prompt's features are held by the cache, not recomputed every step
        return out.with(to, heldAcrossSteps(ctx, `${this.name}.features`, () => this.encode(px) as tf.Tensor3D), this.name);
      },
    };
  }

  /** Features [B, (M*)N, Cv] for pixels [B, 3, H, W] or [B, M, 3, H, W]. */
  encode(pixels: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    const enc = this.encoder;
    const o = this.options;
    if (pixels.rank === 5) {
      const [b, m, ch, h, w] = pixels.shape as number[];
      return tf.tidy(() => {
        const f = enc.features(tf.reshape(pixels, [b! * m!, ch!, h!, w!]), o, params);
        return tf.reshape(f, [b!, m! * f.shape[1]!, f.shape[2]!]);
      });
    }
    if (pixels.rank !== 4) fail(`pixels: expected shape [B, ${enc.config.numChannels}, H, W] or [B, M, ${enc.config.numChannels}, H, W], got ${shapeStr(pixels.shape)}`);
    return enc.features(pixels, o, params);
  }
}

// ------------------------------------------------------------------------------------------ loading

export interface LoadClipVisionOptions {
  /** Prefix of the vision tower in the file (default 'vision_model.'). */
  prefix?: string;
  /** Every mixin parameter must be present (default true). */
  strict?: boolean;
}

/**
 * Loads an HF CLIP vision state dict (`vision_model.*`, as in CLIPVisionModel / CLIPModel / LLaVA's
 * vision tower) into the VisionEncoderMixin `mixinName`. Tensors outside the prefix and the
 * `embeddings.position_ids` buffer are skipped.
 */
export function loadClipVision(model: Model, mixinName: string, file: SafetensorsFile, opts: LoadClipVisionOptions = {}): LoadStateDictResult {
  return loadMixinMapped(model, mixinName, file, opts.prefix ?? 'vision_model.', opts.strict ?? true, (local) => (local === 'embeddings.position_ids' ? null : local));
}
