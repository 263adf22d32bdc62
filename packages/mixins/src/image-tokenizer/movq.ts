/**
 * Emu3's image tokenizer: the MoVQ of HF transformers `Emu3VQVAE`, image path, with its names.
 *   encode: the image repeated over `temporalDownsampleFactor` frames -> 2-D encoder (GroupNorm/swish ResNet
 *           blocks, multi-head attention on chosen levels and in the middle, (0,1,0,1)-padded stride-2
 *           downsampling) -> causal Conv3d temporal downsampling + BatchNorm3d temporal ResNet blocks (frames
 *           4 -> 1) -> quant_conv (Conv3d 3x1x1) -> nearest code
 *   decode: code vectors -> post_quant_conv -> temporal ResNet blocks and nearest temporal upsampling +
 *           causal Conv3d (1 -> 4 frames) -> 2-D decoder whose norms are SpatialNorm (GroupNorm scaled and
 *           shifted by 1x1 convs of the code vectors) -> frame 0
 * BatchNorm3d runs on its running statistics (HF keeps the tokenizer in eval mode); training here does not
 * update them. HF's quantizer returns indices only; the loss for training is taming's legacy VQ loss, as
 * in `Vqgan`. Video input (frames not repeated) is not exposed here.
 */
import * as tf from '@tensorflow/tfjs';
import {
  Mixin, ParamStore, fail, shapeStr, type HookImpls, type Init, type LoadStateDictResult, type Model, type SafetensorsFile,
} from '@vlmix/core';
import { loadMixinPrefixed } from '../connectors/projectors.js';
import { imageCodesHook, nearestResize, quantizeLegacy, VqModule, type VqQuantized } from './vq.js';

export interface MovqConfig {
  inChannels?: number;
  baseChannels: number;
  channelMultiplier: number[];
  numResBlocks: number;
  /** Encoder output / decoder input channels; must equal embedDim (the decoder stacks both along the batch). */
  latentChannels: number;
  embedDim: number;
  codebookSize: number;
  /** Level indices (not sides) with attention blocks, HF attn_resolutions (Emu3: [3]). */
  attnResolutions?: number[];
  /** Attention width (HF hidden_size): the channels at every attention block. */
  hiddenSize: number;
  numAttentionHeads?: number;
  /** Frames an image is repeated to (a power of 2; 4 in Emu3). */
  temporalDownsampleFactor?: number;
  groups?: number;
  beta?: number;
  seed?: number | string;
}

type Resolved = Required<Omit<MovqConfig, 'seed'>> & { seed: number | string };

export function resolveMovqConfig(c: MovqConfig): Resolved {
  if (c == null || typeof c !== 'object') fail(`movq config: expected an object, got ${JSON.stringify(c)}`);
  const out: Resolved = { inChannels: 3, attnResolutions: [], numAttentionHeads: 1, temporalDownsampleFactor: 4, groups: 32, beta: 0.25, seed: 0, ...c };
  for (const k of ['inChannels', 'baseChannels', 'numResBlocks', 'latentChannels', 'embedDim', 'codebookSize', 'hiddenSize', 'numAttentionHeads', 'temporalDownsampleFactor', 'groups'] as const) {
    if (!Number.isInteger(out[k]) || out[k] <= 0) fail(`movq.${k}: expected a positive integer, got ${JSON.stringify(out[k])}`);
  }
  if (!Array.isArray(out.channelMultiplier) || out.channelMultiplier.length === 0) fail(`movq.channelMultiplier: expected one positive integer per level, got ${JSON.stringify(out.channelMultiplier)}`);
  if (out.latentChannels !== out.embedDim) fail(`movq.latentChannels: must equal embedDim ${out.embedDim} (Emu3's decoder stacks latents and codes), got ${out.latentChannels}`);
  const t = Math.log2(out.temporalDownsampleFactor);
  if (!Number.isInteger(t)) fail(`movq.temporalDownsampleFactor: expected a power of 2, got ${out.temporalDownsampleFactor}`);
  const last = out.baseChannels * out.channelMultiplier[out.channelMultiplier.length - 1]!;
  if (last !== out.hiddenSize) fail(`movq.hiddenSize: the middle attention runs on ${last} channels (baseChannels x last multiplier), got hiddenSize ${out.hiddenSize}`);
  for (const l of out.attnResolutions) {
    const ch = out.baseChannels * (out.channelMultiplier[l] ?? NaN);
    if (ch !== out.hiddenSize) fail(`movq.attnResolutions: level ${l} has ${ch} channels, attention needs hiddenSize ${out.hiddenSize}`);
  }
  for (const m of [...out.channelMultiplier, 1]) if ((out.baseChannels * m) % out.groups !== 0) fail(`movq.groups: ${out.groups} must divide every level's channels (${out.baseChannels * m})`);
  return out;
}

const kaiming = (fanIn: number): Init => ({ kind: 'kaimingUniform', fanIn });
const ones: Init = { kind: 'constant', value: 1 };
const zeros: Init = { kind: 'constant', value: 0 };

export class Movq extends VqModule {
  readonly config: Resolved;
  readonly factor: number;
  protected readonly codebookSeed = 'movq-codebook-init';

  constructor(cfg: MovqConfig, opts: { params?: ParamStore; prefix?: string; component?: string } = {}) {
    const c = resolveMovqConfig(cfg);
    super(c.seed, { params: opts.params, prefix: opts.prefix ?? '', component: opts.component ?? 'movq' });
    this.config = c;
    this.factor = 2 ** (c.channelMultiplier.length - 1);
    const conv = (n: string, out: number, inC: number, k: number[]) => {
      const fan = inC * k.reduce((a, b) => a * b, 1);
      this.make(`${n}.weight`, [out, inC, ...k], kaiming(fan));
      this.make(`${n}.bias`, [out], zeros);
    };
    const norm = (n: string, ch: number) => {
      this.make(`${n}.weight`, [ch], ones);
      this.make(`${n}.bias`, [ch], zeros);
    };
    const spatial = (n: string, ch: number) => {
      norm(`${n}.norm_layer`, ch);
      conv(`${n}.conv_y`, ch, c.embedDim, [1, 1]);
      conv(`${n}.conv_b`, ch, c.embedDim, [1, 1]);
    };
    const res = (n: string, inC: number, out: number, cond: boolean) => {
      (cond ? spatial : norm)(`${n}.norm1`, inC);
      conv(`${n}.conv1`, out, inC, [3, 3]);
      (cond ? spatial : norm)(`${n}.norm2`, out);
      conv(`${n}.conv2`, out, out, [3, 3]);
      if (inC !== out) conv(`${n}.nin_shortcut`, out, inC, [1, 1]);
    };
    const attn = (n: string) => {
      for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) {
        this.make(`${n}.${p}.weight`, [c.hiddenSize, c.hiddenSize], kaiming(c.hiddenSize));
        this.make(`${n}.${p}.bias`, [c.hiddenSize], zeros);
      }
    };
    const timeRes = (n: string, ch: number) => {
      for (const b of ['norm1', 'norm2']) {
        norm(`${n}.${b}`, ch);
        this.make(`${n}.${b}.running_mean`, [ch], zeros, false);
        this.make(`${n}.${b}.running_var`, [ch], ones, false);
      }
      conv(`${n}.conv1.conv`, ch, ch, [3, 3, 3]);
      conv(`${n}.conv2.conv`, ch, ch, [3, 3, 3]);
    };
    const { baseChannels: ch, channelMultiplier: mult, numResBlocks: nb, latentChannels: lat } = c;
    const L = mult.length;
    const top = ch * mult[L - 1]!;
    const tBlocks = Math.log2(c.temporalDownsampleFactor);
    // encoder
    conv('encoder.conv_in', ch, c.inChannels, [3, 3]);
    let bin = ch;
    for (let i = 0; i < L; i++) {
      const bout = ch * mult[i]!;
      for (let j = 0; j < nb; j++) {
        res(`encoder.down_block.down.${i}.block.${j}`, bin, bout, false);
        bin = bout;
        if (c.attnResolutions.includes(i)) {
          attn(`encoder.down_block.down.${i}.attn.${j}`);
          norm(`encoder.down_block.down.${i}.attn_norms.${j}`, bin);
        }
      }
      if (i !== L - 1) conv(`encoder.down_block.down.${i}.downsample.conv`, bin, bin, [3, 3]);
    }
    res('encoder.middle_block.block_1', top, top, false);
    attn('encoder.middle_block.attn_1');
    norm('encoder.middle_block.attn_norm', top);
    res('encoder.middle_block.block_2', top, top, false);
    norm('encoder.norm_out', top);
    conv('encoder.conv_out', lat, top, [3, 3]);
    for (let k = 0; k < tBlocks; k++) conv(`encoder.time_conv.${k}.conv.conv`, lat, lat, [4, 3, 3]);
    for (let k = 0; k < nb; k++) timeRes(`encoder.time_res_stack.${k}`, lat);
    // quantizer
    this.make('quantize.embedding.weight', [c.codebookSize, c.embedDim], { kind: 'uniform', lo: -1 / c.codebookSize, hi: 1 / c.codebookSize });
    conv('quant_conv.conv', c.embedDim, lat, [3, 1, 1]);
    conv('post_quant_conv.conv', lat, c.embedDim, [3, 1, 1]);
    // decoder
    for (let k = 0; k < nb; k++) timeRes(`decoder.time_res_stack.${k}`, lat);
    for (let k = 0; k < tBlocks; k++) conv(`decoder.time_conv.${k}.conv.conv`, lat, lat, [3, 3, 3]);
    conv('decoder.conv_in', top, lat, [3, 3]);
    res('decoder.middle_block.block_1', top, top, true);
    attn('decoder.middle_block.attn_1');
    spatial('decoder.middle_block.attn_norm', top);
    res('decoder.middle_block.block_2', top, top, true);
    bin = top;
    for (let i = L - 1; i >= 0; i--) {
      const bout = ch * mult[i]!;
      for (let j = 0; j <= nb; j++) {
        res(`decoder.up_block.up.${i}.block.${j}`, bin, bout, true);
        bin = bout;
        if (c.attnResolutions.includes(i)) {
          attn(`decoder.up_block.up.${i}.attn.${j}`);
          spatial(`decoder.up_block.up.${i}.attn_norms.${j}`, bin);
        }
      }
      if (i !== 0) conv(`decoder.up_block.up.${i}.upsample.conv`, bin, bin, [3, 3]);
    }
    spatial('decoder.norm_out', ch * mult[0]!);
    conv('decoder.conv_out', c.inChannels, ch * mult[0]!, [3, 3]);
  }






  // ------------------------------------------------------------------ layers (NHWC / NDHWC)
  private conv2d(x: tf.Tensor, n: string, stride = 1, pad: number | 'down' = 0): tf.Tensor4D {
    const w = tf.transpose(this.p(`${n}.weight`), [2, 3, 1, 0]) as tf.Tensor4D;
    const pads: [number, number][] = pad === 'down' ? [[0, 1], [0, 1]] : [[pad, pad], [pad, pad]];
    const xp = pad ? tf.pad(x, [[0, 0], ...pads, [0, 0]]) : x;
    return tf.add(tf.conv2d(xp as tf.Tensor4D, w, stride, 'valid'), this.p(`${n}.bias`)) as tf.Tensor4D;
  }

  /** Emu3VQVAEConv3d on NDHWC: spatial padding k - s (the larger half first), two frames of causal padding in front. */
  private conv3d(x: tf.Tensor, n: string, k: [number, number, number], s: [number, number, number]): tf.Tensor5D {
    const half = (p: number): [number, number] => [Math.ceil(p / 2), Math.floor(p / 2)];
    const xp = tf.pad(x, [[0, 0], [2, 0], half(k[1] - s[1]), half(k[2] - s[2]), [0, 0]]) as tf.Tensor5D;
    const w = tf.transpose(this.p(`${n}.weight`), [2, 3, 4, 1, 0]) as tf.Tensor5D;
    return tf.add(tf.conv3d(xp, w, s, 'valid'), this.p(`${n}.bias`)) as tf.Tensor5D;
  }

  private groupNorm(x: tf.Tensor, n: string): tf.Tensor {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const g = this.config.groups;
    const xg = tf.reshape(x, [b, h, w, g, c / g]);
    const { mean, variance } = tf.moments(xg, [1, 2, 4], true);
    const y = tf.reshape(tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, 1e-6))), [b, h, w, c]);
    return tf.add(tf.mul(y, this.p(`${n}.weight`)), this.p(`${n}.bias`));
  }

  /** Emu3VQVAESpatialNorm: GroupNorm(x) * conv_y(q) + conv_b(q), q resized (nearest) to x's side. */
  private spatialNorm(x: tf.Tensor, q: tf.Tensor, n: string): tf.Tensor {
    const [, h, w] = x.shape as [number, number, number, number];
    const qq = q.shape[1] === h && q.shape[2] === w ? q : nearestResize(q, h, w);
    return tf.add(tf.mul(this.groupNorm(x, `${n}.norm_layer`), this.conv2d(qq, `${n}.conv_y`)), this.conv2d(qq, `${n}.conv_b`));
  }

  private norm(x: tf.Tensor, n: string, q: tf.Tensor | null): tf.Tensor {
    return q ? this.spatialNorm(x, q, n) : this.groupNorm(x, n);
  }

  private swish(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.sigmoid(x));
  }

  private resBlock(x: tf.Tensor, n: string, q: tf.Tensor | null): tf.Tensor {
    let h = this.conv2d(this.swish(this.norm(x, `${n}.norm1`, q)), `${n}.conv1`, 1, 1);
    h = this.conv2d(this.swish(this.norm(h, `${n}.norm2`, q)), `${n}.conv2`, 1, 1);
    return tf.add(this.has(`${n}.nin_shortcut.weight`) ? this.conv2d(x, `${n}.nin_shortcut`) : x, h);
  }

  /** Emu3VQVAEAttentionBlock (q/k/v/out Linear over channels, numAttentionHeads heads) after `normName`, plus the residual. */
  private attend(x: tf.Tensor, n: string, normName: string, q: tf.Tensor | null): tf.Tensor {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const H = this.config.numAttentionHeads;
    const y = tf.reshape(this.norm(x, normName, q), [b, h * w, c]);
    // 2-D matmuls: tfjs's gradient of a broadcast [b, n, c] x [c, c] matmul has the wrong shape
    const lin = (p: string, t: tf.Tensor) => tf.reshape(tf.add(tf.matMul(tf.reshape(t, [-1, c]), this.p(`${n}.${p}.weight`), false, true), this.p(`${n}.${p}.bias`)), [b, h * w, c]);
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [b, h * w, H, c / H]), [0, 2, 1, 3]);
    const [qq, kk, vv] = ['q_proj', 'k_proj', 'v_proj'].map((p) => heads(lin(p, y)));
    const a = tf.softmax(tf.mul(tf.matMul(qq!, kk!, false, true), 1 / Math.sqrt(c / H)));
    const o = tf.reshape(tf.transpose(tf.matMul(a, vv!), [0, 2, 1, 3]), [b, h * w, c]);
    return tf.add(x, tf.reshape(lin('out_proj', o), [b, h, w, c]));
  }

  private middle(x: tf.Tensor, n: string, q: tf.Tensor | null): tf.Tensor {
    x = this.resBlock(x, `${n}.block_1`, q);
    x = this.attend(x, `${n}.attn_1`, `${n}.attn_norm`, q);
    return this.resBlock(x, `${n}.block_2`, q);
  }

  private timeRes(x: tf.Tensor, n: string): tf.Tensor {
    const bn = (t: tf.Tensor, b: string) => tf.add(tf.mul(tf.div(tf.sub(t, this.p(`${b}.running_mean`)), tf.sqrt(tf.add(this.p(`${b}.running_var`), 1e-5))), this.p(`${b}.weight`)), this.p(`${b}.bias`));
    let h = this.conv3d(this.swish(bn(x, `${n}.norm1`)), `${n}.conv1.conv`, [3, 3, 3], [1, 1, 1]);
    h = this.conv3d(this.swish(bn(h, `${n}.norm2`)), `${n}.conv2.conv`, [3, 3, 3], [1, 1, 1]);
    return tf.add(x, h);
  }

  /** The 2-D encoder's output for each repeated frame (frame 0 of each image) [B, h, w, latent], for tests. */
  encoderFrames(pixels: tf.Tensor): tf.Tensor5D {
    this.checkPixels(pixels);
    const c = this.config;
    return tf.tidy(() => {
      const b = pixels.shape[0]!;
      const T = c.temporalDownsampleFactor;
      const rep = Int32Array.from({ length: b * T }, (_, i) => Math.floor(i / T));
      let x: tf.Tensor = tf.gather(tf.transpose(pixels, [0, 2, 3, 1]), rep, 0);
      x = this.conv2d(x, 'encoder.conv_in', 1, 1);
      for (let i = 0; i < c.channelMultiplier.length; i++) {
        for (let j = 0; j < c.numResBlocks; j++) {
          x = this.resBlock(x, `encoder.down_block.down.${i}.block.${j}`, null);
          if (this.has(`encoder.down_block.down.${i}.attn.${j}.q_proj.weight`)) x = this.attend(x, `encoder.down_block.down.${i}.attn.${j}`, `encoder.down_block.down.${i}.attn_norms.${j}`, null);
        }
        if (i !== c.channelMultiplier.length - 1) x = this.conv2d(x, `encoder.down_block.down.${i}.downsample.conv`, 2, 'down');
      }
      x = this.middle(x, 'encoder.middle_block', null);
      x = this.conv2d(this.swish(this.groupNorm(x, 'encoder.norm_out')), 'encoder.conv_out', 1, 1);
      const [, h, w, ch] = x.shape as [number, number, number, number];
      return tf.reshape(x, [b, T, h, w, ch]) as tf.Tensor5D;
    });
  }

  /** The encoder (frames -> 1) before quant_conv, NDHWC [B, 1, h, w, latent]. */
  encoderOutput(pixels: tf.Tensor): tf.Tensor5D {
    return tf.tidy(() => {
      let x: tf.Tensor = this.encoderFrames(pixels);
      for (let k = 0; k < Math.log2(this.config.temporalDownsampleFactor); k++) x = this.swish(this.conv3d(x, `encoder.time_conv.${k}.conv.conv`, [4, 3, 3], [2, 1, 1]));
      for (let k = 0; k < this.config.numResBlocks; k++) x = this.timeRes(x, `encoder.time_res_stack.${k}`);
      return x as tf.Tensor5D;
    });
  }

  /** pixels [B, C, H, W] -> latents z [B, H/f, W/f, embedDim]. */
  encodeContinuous(pixels: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => tf.squeeze(this.conv3d(this.encoderOutput(pixels), 'quant_conv.conv', [3, 1, 1], [1, 1, 1]), [1]) as tf.Tensor4D);
  }

  quantize(z: tf.Tensor): VqQuantized {
    return quantizeLegacy(z, this.p('quantize.embedding.weight'), this.config.beta);
  }


  /** Code vectors [B, h, w, embedDim] -> pixels [B, C, h*f, w*f] (frame 0 of the decoded frames). */
  decodeLatent(zq: tf.Tensor): tf.Tensor {
    const c = this.config;
    if (zq.rank !== 4 || zq.shape[3] !== c.embedDim) fail(`zq: expected shape [B, h, w, ${c.embedDim}], got ${shapeStr(zq.shape)}`);
    return tf.tidy(() => {
      const b = zq.shape[0]!;
      const q5 = tf.expandDims(zq, 1);
      let hq: tf.Tensor = tf.concat([this.conv3d(q5, 'post_quant_conv.conv', [3, 1, 1], [1, 1, 1]), q5], 0);
      for (let k = 0; k < c.numResBlocks; k++) hq = this.timeRes(hq, `decoder.time_res_stack.${k}`);
      for (let k = 0; k < Math.log2(c.temporalDownsampleFactor); k++) {
        const t = hq.shape[1]!;
        hq = tf.gather(hq, Int32Array.from({ length: 2 * t }, (_, i) => Math.floor(i / 2)), 1); // nearest 2x in time
        hq = this.swish(this.conv3d(hq, `decoder.time_conv.${k}.conv.conv`, [3, 3, 3], [1, 1, 1]));
      }
      const [, T, h, w, ch] = hq.shape as [number, number, number, number, number];
      const frames = (part: tf.Tensor) => tf.reshape(part, [b * T, h, w, ch]);
      const x0 = frames(tf.slice(hq, [0, 0, 0, 0, 0], [b, -1, -1, -1, -1]));
      const q = frames(tf.slice(hq, [b, 0, 0, 0, 0], [b, -1, -1, -1, -1]));
      let x: tf.Tensor = this.middle(this.conv2d(x0, 'decoder.conv_in', 1, 1), 'decoder.middle_block', q);
      for (let i = c.channelMultiplier.length - 1; i >= 0; i--) {
        for (let j = 0; j <= c.numResBlocks; j++) {
          x = this.resBlock(x, `decoder.up_block.up.${i}.block.${j}`, q);
          if (this.has(`decoder.up_block.up.${i}.attn.${j}.q_proj.weight`)) x = this.attend(x, `decoder.up_block.up.${i}.attn.${j}`, `decoder.up_block.up.${i}.attn_norms.${j}`, q);
        }
        if (i !== 0) {
          const [, hh, ww] = x.shape as [number, number, number, number];
          x = this.conv2d(nearestResize(x, 2 * hh, 2 * ww), `decoder.up_block.up.${i}.upsample.conv`, 1, 1);
        }
      }
      x = this.conv2d(this.swish(this.spatialNorm(x, q, 'decoder.norm_out')), 'decoder.conv_out', 1, 1);
      const first = tf.gather(x, Int32Array.from({ length: b }, (_, i) => i * T), 0); // frame 0 of each image
      return tf.transpose(first, [0, 3, 1, 2]);
    });
  }

}

export interface MovqTokenizerOptions {
  movq: MovqConfig;
  mediaKey?: string;
}

/** Emu3's MoVQ as a mixin: parameters `<name>.encoder.*`, ...; encodeMedia writes IMAGE_CODES. */
export class MovqTokenizerMixin extends Mixin {
  readonly options: MovqTokenizerOptions;
  private readonly mod = this.submodule('MoVQ', (m) => new Movq(this.options.movq, { params: m.params, prefix: `${this.name}.`, component: this.name }));

  constructor(opts: MovqTokenizerOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || typeof opts !== 'object' || opts.movq == null) fail(`MovqTokenizerMixin: expected options { movq: MovqConfig }, got ${JSON.stringify(opts)}`);
    resolveMovqConfig(opts.movq);
    this.options = opts;
  }

  get vae(): Movq {
    return this.mod.get();
  }

  hooks(): HookImpls {
    return imageCodesHook(this, this.options.mediaKey ?? 'pixels');
  }
}

/** Loads Emu3's MoVQ (`model.vqmodel.*` in Emu3ForConditionalGeneration, `vqmodel.*` or bare names); num_batches_tracked is skipped. */
export function loadEmu3Movq(model: Model, mixinName: string, file: SafetensorsFile, opts: { prefix?: string; strict?: boolean } = {}): LoadStateDictResult {
  if (!(model.getMixin(mixinName) instanceof MovqTokenizerMixin)) fail(`loadEmu3Movq: mixin '${mixinName}' is not a MovqTokenizerMixin`);
  const prefix = opts.prefix ?? ['model.vqmodel.', 'vqmodel.', ''].find((p) => file.has(`${p}quantize.embedding.weight`));
  if (prefix == null) fail(`loadEmu3Movq: no quantize.embedding.weight under model.vqmodel., vqmodel. or bare names; pass { prefix }`);
  return loadMixinPrefixed(model, mixinName, file, prefix, opts.strict ?? true, (local) => local.endsWith('num_batches_tracked'));
}
