/**
 * Chameleon's image tokenizer: the VQGAN of HF transformers `ChameleonVQVAE` (taming-transformers' encoder
 * with GroupNorm + swish ResNet blocks, vanilla attention blocks, stride-2 downsampling after a (0, 1, 0, 1)
 * pad; `quant_conv`, a nearest-code quantizer `quantize.embedding`, `post_quant_conv`) with HF's names.
 * HF ships no decoder (Chameleon's released model does not generate images); for reconstruction training
 * and image generation the decoder is taming's (`decoder.conv_in`, `decoder.mid.*`, `decoder.up.N.*`,
 * `decoder.norm_out`, `decoder.conv_out`), the one the original Chameleon tokenizer checkpoint holds.
 *
 * Layout: pixels are NCHW at the API (as the reference); the module computes in NHWC with PyTorch-layout
 * [out, in, kh, kw] weights. The quantizer's loss is taming's "legacy" weighting, as HF's:
 *   mean((sg(z_q) - z)^2) + beta * mean((z_q - sg(z))^2).
 * `Vqgan` has the same surface as the toy `VqVae` (encode / decode / loss / initCodebookFromData), so type D
 * recipes, `pretrainImageTokenizer` and `Vlm.generateImage` take either.
 */
import * as tf from '@tensorflow/tfjs';
import {
  Mixin, ParamStore, fail, shapeStr, type HookImpls, type Init, type LoadStateDictResult, type Model, type SafetensorsFile,
} from '@vlmix/core';
import { loadMixinPrefixed } from '../connectors/projectors.js';
import { imageCodesHook, nearestResize, quantizeLegacy, VqModule, type VqQuantized } from './vq.js';

export interface VqganConfig {
  /** Default 3. */
  inChannels?: number;
  /** Channels of the first level (HF base_channels; 128 in Chameleon). */
  baseChannels: number;
  /** Per level (HF channel_multiplier; Chameleon [1, 1, 2, 2, 4]): levels - 1 stride-2 downsamplings. */
  channelMultiplier: number[];
  /** ResNet blocks per encoder level (decoder: one more), HF num_res_blocks. */
  numResBlocks: number;
  /** Encoder output channels (HF latent_channels). */
  latentChannels: number;
  /** Code dimension (HF embed_dim). */
  embedDim: number;
  /** Codebook size K (HF num_embeddings; 8192 in Chameleon). */
  numEmbeddings: number;
  /** Input side the attention resolutions refer to (HF resolution). */
  resolution: number;
  /** Sides at which the down/up levels get attention blocks (HF attn_resolutions; default none). */
  attnResolutions?: number[];
  /** GroupNorm groups (32 in the reference; must divide every level's channels). */
  groups?: number;
  /** Codebook loss weight (default 0.25). */
  beta?: number;
  /** Build the taming decoder (default true). */
  decoder?: boolean;
  seed?: number | string;
}

type Resolved = Required<Omit<VqganConfig, 'seed'>> & { seed: number | string };

export function resolveVqganConfig(c: VqganConfig): Resolved {
  if (c == null || typeof c !== 'object') fail(`vqgan config: expected an object, got ${JSON.stringify(c)}`);
  const out: Resolved = { inChannels: 3, attnResolutions: [], groups: 32, beta: 0.25, decoder: true, seed: 0, ...c };
  for (const k of ['inChannels', 'baseChannels', 'numResBlocks', 'latentChannels', 'embedDim', 'numEmbeddings', 'resolution', 'groups'] as const) {
    if (!Number.isInteger(out[k]) || out[k] <= 0) fail(`vqgan.${k}: expected a positive integer, got ${JSON.stringify(out[k])}`);
  }
  if (!Array.isArray(out.channelMultiplier) || out.channelMultiplier.length === 0 || out.channelMultiplier.some((m) => !Number.isInteger(m) || m <= 0)) {
    fail(`vqgan.channelMultiplier: expected positive integers, one per level, got ${JSON.stringify(out.channelMultiplier)}`);
  }
  for (const m of out.channelMultiplier) {
    if ((out.baseChannels * m) % out.groups !== 0) fail(`vqgan.groups: ${out.groups} must divide every level's channels, ${out.baseChannels} x ${m} = ${out.baseChannels * m} is not a multiple`);
  }
  if (out.latentChannels % out.groups !== 0 && out.decoder) fail(`vqgan.groups: ${out.groups} must divide latentChannels ${out.latentChannels}`);
  return out;
}

const kaiming = (fanIn: number): Init => ({ kind: 'kaimingUniform', fanIn });
const ones: Init = { kind: 'constant', value: 1 };
const zeros: Init = { kind: 'constant', value: 0 };

export class Vqgan extends VqModule {
  readonly config: Resolved & { codebookSize: number };
  /** Downsampling factor: pixels per code along each side. */
  readonly factor: number;
  protected readonly codebookSeed = 'vqgan-codebook-init';

  constructor(cfg: VqganConfig, opts: { params?: ParamStore; prefix?: string; component?: string } = {}) {
    const c = resolveVqganConfig(cfg);
    super(c.seed, { params: opts.params, prefix: opts.prefix ?? '', component: opts.component ?? 'vqgan' });
    this.config = { ...c, codebookSize: c.numEmbeddings };
    this.factor = 2 ** (c.channelMultiplier.length - 1);
    const conv = (n: string, out: number, inC: number, k: number) => {
      this.make(`${n}.weight`, [out, inC, k, k], kaiming(inC * k * k));
      this.make(`${n}.bias`, [out], zeros);
    };
    const norm = (n: string, ch: number) => {
      this.make(`${n}.weight`, [ch], ones);
      this.make(`${n}.bias`, [ch], zeros);
    };
    const res = (n: string, inC: number, out: number) => {
      norm(`${n}.norm1`, inC);
      conv(`${n}.conv1`, out, inC, 3);
      norm(`${n}.norm2`, out);
      conv(`${n}.conv2`, out, out, 3);
      if (inC !== out) conv(`${n}.nin_shortcut`, out, inC, 1);
    };
    const attn = (n: string, ch: number) => {
      norm(`${n}.norm`, ch);
      for (const x of ['q', 'k', 'v', 'proj_out']) conv(`${n}.${x}`, ch, ch, 1);
    };
    const { baseChannels: ch, channelMultiplier: mult, numResBlocks: nb } = c;
    const L = mult.length;
    conv('encoder.conv_in', ch, c.inChannels, 3);
    let blockIn = ch;
    let res2 = c.resolution;
    for (let i = 0; i < L; i++) {
      const out = ch * mult[i]!;
      for (let j = 0; j < nb; j++) {
        res(`encoder.down.${i}.block.${j}`, blockIn, out);
        blockIn = out;
        if (c.attnResolutions.includes(res2)) attn(`encoder.down.${i}.attn.${j}`, blockIn);
      }
      if (i !== L - 1) {
        conv(`encoder.down.${i}.downsample.conv`, blockIn, blockIn, 3);
        res2 /= 2;
      }
    }
    res('encoder.mid.block_1', blockIn, blockIn);
    attn('encoder.mid.attn_1', blockIn);
    res('encoder.mid.block_2', blockIn, blockIn);
    norm('encoder.norm_out', blockIn);
    conv('encoder.conv_out', c.latentChannels, blockIn, 3);
    conv('quant_conv', c.embedDim, c.latentChannels, 1);
    this.make('quantize.embedding.weight', [c.numEmbeddings, c.embedDim], { kind: 'uniform', lo: -1 / c.numEmbeddings, hi: 1 / c.numEmbeddings });
    conv('post_quant_conv', c.latentChannels, c.embedDim, 1);
    if (c.decoder) {
      let dIn = ch * mult[L - 1]!;
      let dRes = c.resolution / this.factor;
      conv('decoder.conv_in', dIn, c.latentChannels, 3);
      res('decoder.mid.block_1', dIn, dIn);
      attn('decoder.mid.attn_1', dIn);
      res('decoder.mid.block_2', dIn, dIn);
      for (let i = L - 1; i >= 0; i--) {
        const out = ch * mult[i]!;
        for (let j = 0; j <= nb; j++) {
          res(`decoder.up.${i}.block.${j}`, dIn, out);
          dIn = out;
          if (c.attnResolutions.includes(dRes)) attn(`decoder.up.${i}.attn.${j}`, dIn);
        }
        if (i !== 0) {
          conv(`decoder.up.${i}.upsample.conv`, dIn, dIn, 3);
          dRes *= 2;
        }
      }
      norm('decoder.norm_out', dIn);
      conv('decoder.conv_out', c.inChannels, dIn, 3);
    }
  }






  // ------------------------------------------------------------------ layers (NHWC)
  /** PyTorch Conv2d with symmetric zero padding (or HF's (0, 1, 0, 1) pad for the stride-2 downsampling). */
  private conv(x: tf.Tensor, n: string, stride = 1, pad: number | 'down' = 0): tf.Tensor4D {
    const w = tf.transpose(this.p(`${n}.weight`), [2, 3, 1, 0]) as tf.Tensor4D;
    const pads: [number, number][] = pad === 'down' ? [[0, 1], [0, 1]] : [[pad, pad], [pad, pad]];
    const xp = pad ? tf.pad(x, [[0, 0], ...pads, [0, 0]]) : x;
    return tf.add(tf.conv2d(xp as tf.Tensor4D, w, stride, 'valid'), this.p(`${n}.bias`)) as tf.Tensor4D;
  }

  /** torch.nn.GroupNorm(groups, C, eps = 1e-6) on NHWC. */
  private groupNorm(x: tf.Tensor, n: string): tf.Tensor {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const g = this.config.groups;
    const xg = tf.reshape(x, [b, h, w, g, c / g]);
    const { mean, variance } = tf.moments(xg, [1, 2, 4], true);
    const y = tf.reshape(tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, 1e-6))), [b, h, w, c]);
    return tf.add(tf.mul(y, this.p(`${n}.weight`)), this.p(`${n}.bias`));
  }

  private swish(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, tf.sigmoid(x));
  }

  private resBlock(x: tf.Tensor, n: string): tf.Tensor {
    let h = this.conv(this.swish(this.groupNorm(x, `${n}.norm1`)), `${n}.conv1`, 1, 1);
    h = this.conv(this.swish(this.groupNorm(h, `${n}.norm2`)), `${n}.conv2`, 1, 1);
    return tf.add(this.has(`${n}.nin_shortcut.weight`) ? this.conv(x, `${n}.nin_shortcut`) : x, h);
  }

  /** Single-head attention over the h*w positions, scale 1/sqrt(C). */
  private attnBlock(x: tf.Tensor, n: string): tf.Tensor {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const y = this.groupNorm(x, `${n}.norm`);
    const flat = (t: tf.Tensor) => tf.reshape(t, [b, h * w, c]);
    const q = flat(this.conv(y, `${n}.q`));
    const k = flat(this.conv(y, `${n}.k`));
    const v = flat(this.conv(y, `${n}.v`));
    const a = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(c)));
    return tf.add(x, this.conv(tf.reshape(tf.matMul(a, v), [b, h, w, c]), `${n}.proj_out`));
  }


  /** pixels [B, C, H, W] -> the encoder's output before quant_conv [B, H/f, W/f, latentChannels]. */
  encoderOutput(pixels: tf.Tensor): tf.Tensor4D {
    this.checkPixels(pixels);
    const { channelMultiplier: mult, numResBlocks: nb } = this.config;
    return tf.tidy(() => {
      let x: tf.Tensor = this.conv(tf.transpose(pixels, [0, 2, 3, 1]), 'encoder.conv_in', 1, 1);
      for (let i = 0; i < mult.length; i++) {
        for (let j = 0; j < nb; j++) {
          x = this.resBlock(x, `encoder.down.${i}.block.${j}`);
          if (this.has(`encoder.down.${i}.attn.${j}.q.weight`)) x = this.attnBlock(x, `encoder.down.${i}.attn.${j}`);
        }
        if (i !== mult.length - 1) x = this.conv(x, `encoder.down.${i}.downsample.conv`, 2, 'down');
      }
      x = this.resBlock(this.attnBlock(this.resBlock(x, 'encoder.mid.block_1'), 'encoder.mid.attn_1'), 'encoder.mid.block_2');
      return this.conv(this.swish(this.groupNorm(x, 'encoder.norm_out')), 'encoder.conv_out', 1, 1);
    });
  }

  /** pixels -> continuous latents z [B, h, w, embedDim] (after quant_conv). */
  encodeContinuous(pixels: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => this.conv(this.encoderOutput(pixels), 'quant_conv'));
  }

  /** Nearest code of z [..., D] (squared distance, first index on ties as torch.argmin), straight-through. */
  quantize(z: tf.Tensor): VqQuantized {
    return quantizeLegacy(z, this.p('quantize.embedding.weight'), this.config.beta);
  }


  /** Quantised latents [B, h, w, embedDim] -> pixels [B, C, h*f, w*f] (post_quant_conv, taming decoder). */
  decodeLatent(zq: tf.Tensor): tf.Tensor {
    if (!this.config.decoder) fail('vqgan: built without a decoder (decoder: false); it can encode only');
    if (zq.rank !== 4 || zq.shape[3] !== this.config.embedDim) fail(`zq: expected shape [B, h, w, ${this.config.embedDim}], got ${shapeStr(zq.shape)}`);
    const { channelMultiplier: mult, numResBlocks: nb } = this.config;
    return tf.tidy(() => {
      let x: tf.Tensor = this.conv(this.conv(zq, 'post_quant_conv'), 'decoder.conv_in', 1, 1);
      x = this.resBlock(this.attnBlock(this.resBlock(x, 'decoder.mid.block_1'), 'decoder.mid.attn_1'), 'decoder.mid.block_2');
      for (let i = mult.length - 1; i >= 0; i--) {
        for (let j = 0; j <= nb; j++) {
          x = this.resBlock(x, `decoder.up.${i}.block.${j}`);
          if (this.has(`decoder.up.${i}.attn.${j}.q.weight`)) x = this.attnBlock(x, `decoder.up.${i}.attn.${j}`);
        }
        if (i !== 0) {
          const [, h, w] = x.shape as [number, number, number, number];
          x = this.conv(nearestResize(x, 2 * h, 2 * w), `decoder.up.${i}.upsample.conv`, 1, 1); // F.interpolate nearest 2x
        }
      }
      return tf.transpose(this.conv(this.swish(this.groupNorm(x, 'decoder.norm_out')), 'decoder.conv_out', 1, 1), [0, 3, 1, 2]);
    });
  }

  /** Sets the codebook to K encoder latents of `pixels` (seeded draw, a little noise), as VqVae does. */

}

export interface VqganTokenizerOptions {
  vqgan: VqganConfig;
  /** Key of the pixels in ctx.media (default 'pixels'). */
  mediaKey?: string;
}

/** The VQGAN as a mixin: parameters `<name>.encoder.*`, `<name>.quantize.*`, ...; encodeMedia writes IMAGE_CODES. */
export class VqganTokenizerMixin extends Mixin {
  readonly options: VqganTokenizerOptions;
  private readonly mod = this.submodule('VQGAN', (m) => new Vqgan(this.options.vqgan, { params: m.params, prefix: `${this.name}.`, component: this.name }));

  constructor(opts: VqganTokenizerOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || typeof opts !== 'object' || opts.vqgan == null) fail(`VqganTokenizerMixin: expected options { vqgan: VqganConfig }, got ${JSON.stringify(opts)}`);
    resolveVqganConfig(opts.vqgan);
    this.options = opts;
  }

  /** The module (named `vae` like VqImageTokenizerMixin's, so type D code takes either). */
  get vae(): Vqgan {
    return this.mod.get();
  }

  hooks(): HookImpls {
    return imageCodesHook(this, this.options.mediaKey ?? 'pixels');
  }
}

/**
 * Loads Chameleon's VQGAN (`model.vqmodel.*` in ChameleonForConditionalGeneration, `vqmodel.*`, or the
 * module's own names) into the VqganTokenizerMixin `mixinName`. The encoder, quantizer and both 1x1 convs
 * are required; decoder tensors load when the file has them (HF's checkpoints have none).
 */
export function loadChameleonVqgan(model: Model, mixinName: string, file: SafetensorsFile, opts: { prefix?: string } = {}): LoadStateDictResult {
  if (!(model.getMixin(mixinName) instanceof VqganTokenizerMixin)) fail(`loadChameleonVqgan: mixin '${mixinName}' is not a VqganTokenizerMixin`);
  const prefix = opts.prefix ?? ['model.vqmodel.', 'vqmodel.', ''].find((p) => file.has(`${p}quantize.embedding.weight`));
  if (prefix == null) fail(`loadChameleonVqgan: no quantize.embedding.weight under model.vqmodel., vqmodel. or bare names; pass { prefix }`);
  const res = loadMixinPrefixed(model, mixinName, file, prefix, false);
  const missing = res.missing.filter((n) => !n.startsWith(`${mixinName}.decoder.`));
  if (missing.length) fail(`loadChameleonVqgan: ${missing.length} tensor(s) missing from the file (prefix '${prefix}'): ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`);
  return res;
}
