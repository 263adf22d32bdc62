/**
 * VQ image tokenizer (fusion type D: images as discrete tokens in the LM vocabulary), after VQ-VAE
 * (van den Oord et al. 2017) and the VQGAN tokenizers of Chameleon / Unified-IO, at toy scale:
 *   pixels [B, C, H, W] -> strided 4x4 convs (+ReLU) -> quant_conv 1x1 -> z [B, h, w, D]
 *   -> nearest code of the codebook [K, D] (straight-through estimator) -> post_quant_conv 1x1
 *   -> (nearest 2x upsample -> 3x3 conv -> ReLU) per stage -> conv_out 3x3 -> pixels
 * Loss = MSE(recon, x) + ||sg(z) - z_q||^2 (codebook) + beta ||z - sg(z_q)||^2 (commitment), each a mean.
 *
 * Convolution weights are stored PyTorch-style [out, in, kh, kw] (and transposed for tf.conv2d), so the
 * state dict maps 1:1 onto a PyTorch module with the same layout (see docs/mixins/vq.md).
 *
 * Mixins: `VqImageTokenizerMixin` owns a VqVae in the model and serves `encodeMedia` (pixels -> codes);
 * `VqTokenMixin` constrains generation to well-formed <boi> codes <eoi> spans (finalForward).
 */
import * as tf from '@tensorflow/tfjs';
import {
  consume,
  Mixin,
  ParamStore,
  Rng,
  fail,
  shapeStr,
  stateKey,
  type ForwardContext,
  type HookFn,
  type HookImpls,
  type HostContext,
  type Init,
  type StateKey,
} from '@vlmix/core';

// ---------------------------------------------------------------- gradient helpers
/** Identity forward, zero gradient (torch `.detach()`); tfjs has no stop_gradient op. */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor) => tf.Tensor;

/**
 * Nearest-neighbour resize of NHWC x to [h, w] (torch F.interpolate mode 'nearest': source index
 * floor(i * in / out)) as two row gathers. tf.image.resizeNearestNeighbor's gradient on stock tfjs 'cpu'
 * disagrees with finite differences (found by the VQGAN / MoVQ gradient tests); a gather's is exact.
 */
export function nearestResize(x: tf.Tensor, h: number, w: number): tf.Tensor4D {
  const [, ih, iw] = x.shape as [number, number, number, number];
  const idx = (n: number, src: number) => Int32Array.from({ length: n }, (_, i) => Math.min(src - 1, Math.floor((i * src) / n)));
  return tf.tidy(() => tf.gather(tf.gather(x, idx(h, ih), 1), idx(w, iw), 2) as tf.Tensor4D);
}

/** Straight-through estimator: value z_q, gradient passed to z unchanged: z + sg(z_q - z). */
export function straightThrough(z: tf.Tensor, zq: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(z, stopGradient(tf.sub(zq, z))));
}

// ---------------------------------------------------------------- module
export interface VqVaeConfig {
  /** Image channels (default 3). */
  inChannels?: number;
  /** Channels of each stride-2 encoder stage (and, reversed, of the decoder's upsampling stages). */
  hidden: number[];
  /** K: number of codes. */
  codebookSize: number;
  /** D: code dimension. */
  codeDim: number;
  /** Commitment weight beta (default 0.25). */
  beta?: number;
  seed?: number | string;
}

export interface VqQuantized {
  /** Straight-through quantised latents [B, h, w, D] (value z_q, gradient to z). */
  zq: tf.Tensor;
  /** [B, h, w] int32. */
  codes: tf.Tensor;
  /** mean((sg(z) - z_q)^2): trains the codebook. */
  codebookLoss: tf.Scalar;
  /** beta * mean((z - sg(z_q))^2): keeps the encoder near its codes. */
  commitmentLoss: tf.Scalar;
}

export interface VqLoss extends VqQuantized {
  /** reconLoss + codebookLoss + commitmentLoss. */
  loss: tf.Scalar;
  /** mean((recon - x)^2). */
  reconLoss: tf.Scalar;
  /** [B, C, H, W]. */
  recon: tf.Tensor;
}

const kaiming = (fanIn: number): Init => ({ kind: 'kaimingUniform', fanIn });

/** What type D needs of an image tokenizer (VqVae here, Vqgan for Chameleon): codes both ways and its own loss. */
export interface ImageVqModule {
  /** Pixels per code along each side. */
  readonly factor: number;
  readonly config: { readonly inChannels: number; readonly codebookSize: number };
  /** pixels [B, C, H, W] -> codes [B, H/f, W/f] int32. */
  encode(pixels: tf.Tensor): tf.Tensor3D;
  /** codes [B, h, w] int32 -> pixels [B, C, h*f, w*f]. */
  decode(codes: tf.Tensor): tf.Tensor;
  loss(pixels: tf.Tensor): VqLoss;
  initCodebookFromData(pixels: tf.Tensor, seed?: number | string): void;
  variables(): tf.Variable[];
  dispose(): void;
}

/** The parts an image tokenizer's shared steps below need. */
interface VqParts {
  encodeContinuous(pixels: tf.Tensor): tf.Tensor;
  quantize(z: tf.Tensor): VqQuantized;
  decodeLatent(zq: tf.Tensor): tf.Tensor;
}

/** Full pass and losses (recon MSE + the quantizer's two terms). Every returned tensor is the caller's. */
export function vqLoss(m: VqParts, pixels: tf.Tensor): VqLoss {
  return tf.tidy(() => {
    const q = m.quantize(m.encodeContinuous(pixels));
    const recon = m.decodeLatent(q.zq);
    const reconLoss = tf.mean(tf.square(tf.sub(recon, pixels))) as tf.Scalar;
    const loss = tf.addN([reconLoss, q.codebookLoss, q.commitmentLoss]) as tf.Scalar;
    return { ...q, loss, reconLoss, recon } as unknown as tf.TensorContainer;
  }) as unknown as VqLoss;
}

/** Checks codes [B, h, w] are int32 in [0, K) (reads two scalars back: decoding is a host-facing call). */
export function checkCodes(codes: tf.Tensor, K: number): void {
  if (codes.rank !== 3) fail(`codes: expected shape [B, h, w], got ${shapeStr(codes.shape)}`);
  if (codes.dtype !== 'int32') fail(`codes: expected dtype int32, got ${codes.dtype}`);
  if (codes.size > 0) {
    const [lo, hi] = tf.tidy(() => [tf.min(codes).dataSync()[0]!, tf.max(codes).dataSync()[0]!]);
    if (lo! < 0 || hi! >= K) fail(`codes: expected values in [0, ${K}), got values in [${lo}, ${hi}]`);
  }
}

/**
 * Data-dependent codebook initialisation (as k-means-style VQ trainers do): K of the n latent vectors zs
 * [n, D] drawn with a seeded shuffle (with replacement when n < K), plus a little noise so duplicates
 * separate. Avoids dead codes at the start of training.
 */
export function codebookFromLatents(zs: Float32Array, n: number, K: number, D: number, seed: string): Float32Array {
  const r = new Rng(seed);
  const order = r.shuffle(Array.from({ length: n }, (_, i) => i));
  const out = new Float32Array(K * D);
  let scale = 0;
  for (let i = 0; i < zs.length; i++) scale += zs[i]! * zs[i]!;
  scale = Math.sqrt(scale / Math.max(1, zs.length));
  for (let k = 0; k < K; k++) {
    const src = k < n ? order[k]! : r.int(n);
    for (let d = 0; d < D; d++) out[k * D + d] = zs[src * D + d]! + 0.01 * scale * r.normal();
  }
  return out;
}

/**
 * Nearest code of z [..., D] in codebook e [K, D] as taming / HF Chameleon and Emu3 compute it
 * (|z|^2 + |e|^2 - 2 z.e, first index on ties), straight-through, with taming's "legacy" loss weighting:
 * mean((sg(z_q) - z)^2) + beta * mean((z_q - sg(z))^2).
 */
export function quantizeLegacy(z: tf.Tensor, e: tf.Tensor, beta: number): VqQuantized {
  const D = e.shape[1]!;
  if (z.shape[z.rank - 1] !== D) fail(`z: expected last dimension ${D} (the code dimension), got ${shapeStr(z.shape)}`);
  return tf.tidy(() => {
    const flat = tf.reshape(z, [-1, D]);
    const dist = tf.sub(tf.add(tf.sum(tf.square(flat), 1, true), tf.expandDims(tf.sum(tf.square(e), 1), 0)), tf.mul(2, tf.matMul(flat, e, false, true)));
    const codesFlat = tf.tensor1d(tf.argMin(dist, 1).dataSync() as Int32Array, 'int32'); // off the tape
    const zqRaw = tf.reshape(tf.gather(e, codesFlat), z.shape);
    return {
      zq: straightThrough(z, zqRaw),
      codes: tf.reshape(codesFlat, z.shape.slice(0, -1)),
      codebookLoss: tf.mul(beta, tf.mean(tf.square(tf.sub(zqRaw, stopGradient(z))))) as tf.Scalar,
      commitmentLoss: tf.mean(tf.square(tf.sub(stopGradient(zqRaw), z))) as tf.Scalar,
    };
  });
}

/**
 * The encodeMedia of an image tokenizer mixin: `ctx.media[mediaKey]` pixels [B, C, H, W] -> IMAGE_CODES.
 * Shared by VqImageTokenizerMixin, VqganTokenizerMixin and MovqTokenizerMixin.
 */
export function imageCodesHook(owner: Mixin & { readonly vae: ImageVqModule }, mediaKey: string): HookImpls {
  return {
    encodeMedia: (state, ctx, next) => {
      const out = next(state, ctx);
      const px = ctx.media[mediaKey];
      if (px == null) return out;
      if (!(px instanceof tf.Tensor)) fail(`media.${mediaKey}: expected a float32 tf.Tensor [B, ${owner.vae.config.inChannels}, H, W], got ${typeof px}`);
      return out.with(IMAGE_CODES, owner.vae.encode(px), owner.name);
    },
  };
}

/**
 * Parameter bookkeeping and the steps every image tokenizer shares (VqVae, Vqgan, Movq): a subclass creates
 * its parameters with make() and implements encodeContinuous / quantize / decodeLatent.
 */
export abstract class VqModule implements ImageVqModule {
  readonly params: ParamStore;
  abstract readonly factor: number;
  abstract readonly config: { readonly inChannels: number; readonly codebookSize: number };
  /** Tag of the codebook initialisation's random stream (after the seed). */
  protected abstract readonly codebookSeed: string;
  protected readonly prefix: string;
  protected readonly component: string;
  private readonly ownsParams: boolean;
  private readonly names: string[] = [];
  private readonly trainableNames: string[] = [];
  private overrides: Map<string, tf.Tensor> | null = null;

  /** Parameters go to `opts.params` (e.g. a model's store) under `prefix`, or to a private store. */
  protected constructor(seed: number | string, opts: { params?: ParamStore; prefix: string; component: string }) {
    this.ownsParams = !opts.params;
    this.params = opts.params ?? new ParamStore(seed);
    this.prefix = opts.prefix;
    this.component = opts.component;
  }

  protected make(local: string, shape: number[], init: Init, trainable = true): void {
    const name = `${this.prefix}${local}`;
    this.params.create(name, shape, init, { component: this.component, trainable });
    this.names.push(name);
    if (trainable) this.trainableNames.push(name);
  }

  protected p(local: string): tf.Tensor {
    const full = `${this.prefix}${local}`;
    return this.overrides?.get(full) ?? this.params.get(full);
  }

  protected has(local: string): boolean {
    return this.params.has(`${this.prefix}${local}`);
  }

  /** Runs fn with some parameters replaced by tensors (by full name): for gradient checks w.r.t. weights. */
  withParams<T>(values: Record<string, tf.Tensor>, fn: () => T): T {
    const prev = this.overrides;
    this.overrides = new Map([...(prev ?? []), ...Object.entries(values)]);
    for (const n of Object.keys(values)) if (!this.params.has(n)) fail(`vq.withParams: unknown parameter '${n}'`);
    try {
      return fn();
    } finally {
      this.overrides = prev;
    }
  }

  /** Full names of the module's parameters, in creation order. */
  paramNames(): string[] {
    return [...this.names];
  }

  /** The module's trainable variables (for an optimizer; running statistics excluded). */
  variables(): tf.Variable[] {
    return this.trainableNames.map((n) => this.params.get(n));
  }

  /** pixels must be float32 [B, C, H, W] with sides multiples of the downsampling factor. */
  protected checkPixels(pixels: tf.Tensor): void {
    const c = this.config.inChannels;
    if (pixels.rank !== 4 || pixels.shape[1] !== c) fail(`pixels: expected shape [B, ${c}, H, W] (NCHW), got ${shapeStr(pixels.shape)}`);
    if (pixels.dtype !== 'float32') fail(`pixels: expected dtype float32, got ${pixels.dtype}`);
    const [, , h, w] = pixels.shape as number[];
    if (h! % this.factor !== 0 || w! % this.factor !== 0 || h === 0 || w === 0) {
      fail(`pixels: height and width must be positive multiples of ${this.factor} (the tokenizer's downsampling factor), got ${h}x${w}`);
    }
  }

  /** pixels [B, C, H, W] -> continuous latents z [B, H/f, W/f, D]. */
  abstract encodeContinuous(pixels: tf.Tensor): tf.Tensor4D;
  abstract quantize(z: tf.Tensor): VqQuantized;
  /** Quantised latents [B, h, w, D] -> pixels [B, C, h*f, w*f]. */
  abstract decodeLatent(zq: tf.Tensor): tf.Tensor;

  /**
   * Data-dependent codebook initialisation (as k-means-style VQ trainers do): K latent vectors of `pixels`
   * (codebookFromLatents). Avoids dead codes at the start of training.
   */
  initCodebookFromData(pixels: tf.Tensor, seed: number | string = 0): void {
    const e = this.params.get(`${this.prefix}quantize.embedding.weight`);
    const [K, D] = e.shape as [number, number];
    const z = tf.tidy(() => tf.reshape(this.encodeContinuous(pixels), [-1, D]));
    const zs = z.dataSync() as Float32Array;
    const n = z.shape[0]!;
    z.dispose();
    const out = codebookFromLatents(zs, n, K, D, `${seed}/${this.codebookSeed}`);
    tf.tidy(() => e.assign(tf.tensor2d(out, [K, D])));
  }

  /** Full pass and losses. Every returned tensor is the caller's to dispose. */
  loss(pixels: tf.Tensor): VqLoss {
    return vqLoss(this, pixels);
  }

  /** pixels [B, C, H, W] -> codes [B, H/f, W/f] int32. */
  encode(pixels: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => this.quantize(this.encodeContinuous(pixels)).codes) as tf.Tensor3D;
  }

  /** codes [B, h, w] int32 -> pixels [B, C, h*f, w*f]. */
  decode(codes: tf.Tensor): tf.Tensor {
    checkCodes(codes, this.config.codebookSize);
    return tf.tidy(() => this.decodeLatent(tf.gather(this.p('quantize.embedding.weight'), codes)));
  }

  dispose(): void {
    if (this.ownsParams) this.params.dispose();
    else this.params.removeComponent(this.component);
  }
}

export class VqVae extends VqModule {
  readonly config: Required<Omit<VqVaeConfig, 'seed'>> & { seed: number | string };
  /** Spatial reduction factor (2^stages). */
  readonly factor: number;
  protected readonly codebookSeed = 'vq-codebook-init';

  /** Creates the parameters in `opts.params` (e.g. a model's store, under `opts.prefix`) or a private store. */
  constructor(cfg: VqVaeConfig, opts: { params?: ParamStore; prefix?: string; component?: string } = {}) {
    const c = { inChannels: 3, beta: 0.25, seed: 0, ...cfg };
    super(c.seed, { params: opts.params, prefix: opts.prefix ? `${opts.prefix}.` : '', component: opts.component ?? (opts.prefix || 'vq') });
    const posInt = (k: string, v: unknown) => {
      if (!Number.isInteger(v) || (v as number) <= 0) fail(`vq.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
    };
    posInt('inChannels', c.inChannels);
    posInt('codebookSize', c.codebookSize);
    posInt('codeDim', c.codeDim);
    if (!Array.isArray(c.hidden) || c.hidden.length === 0) fail(`vq.hidden: expected a non-empty array of channel counts, got ${JSON.stringify(c.hidden)}`);
    c.hidden.forEach((h, i) => posInt(`hidden[${i}]`, h));
    if (!(c.beta >= 0)) fail(`vq.beta: expected a number >= 0, got ${JSON.stringify(c.beta)}`);
    this.config = c;
    this.factor = 2 ** c.hidden.length;
    const create = (name: string, shape: number[], init: Init) => this.make(name, shape, init);
    const conv = (name: string, out: number, inC: number, k: number) => {
      const fan = inC * k * k;
      create(`${name}.weight`, [out, inC, k, k], kaiming(fan));
      create(`${name}.bias`, [out], kaiming(fan));
    };
    let ch = c.inChannels;
    c.hidden.forEach((h, i) => {
      conv(`encoder.down.${i}.conv`, h, ch, 4);
      ch = h;
    });
    conv('quant_conv', c.codeDim, ch, 1);
    const K = c.codebookSize;
    create('quantize.embedding.weight', [K, c.codeDim], { kind: 'uniform', lo: -1 / K, hi: 1 / K });
    conv('post_quant_conv', ch, c.codeDim, 1);
    const rev = [...c.hidden].reverse();
    rev.forEach((h, j) => {
      const out = rev[j + 1] ?? rev[rev.length - 1]!;
      conv(`decoder.up.${j}.conv`, out, h, 3);
    });
    conv('decoder.conv_out', c.inChannels, rev[rev.length - 1]!, 3);
  }

  /** NHWC conv with a PyTorch [out, in, kh, kw] weight and symmetric zero padding. */
  private conv(x: tf.Tensor4D, name: string, stride: number, pad: number): tf.Tensor4D {
    return tf.tidy(() => {
      const w = tf.transpose(this.p(`${name}.weight`), [2, 3, 1, 0]) as tf.Tensor4D;
      const xp = pad ? tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) : x;
      return tf.add(tf.conv2d(xp, w, stride, 'valid'), this.p(`${name}.bias`)) as tf.Tensor4D;
    });
  }


  /** pixels [B, C, H, W] -> continuous latents z [B, H/f, W/f, D]. */
  encodeContinuous(pixels: tf.Tensor): tf.Tensor4D {
    this.checkPixels(pixels);
    return tf.tidy(() => {
      let x = tf.transpose(pixels, [0, 2, 3, 1]) as tf.Tensor4D;
      this.config.hidden.forEach((_, i) => {
        x = tf.relu(this.conv(x, `encoder.down.${i}.conv`, 2, 1));
      });
      return this.conv(x, 'quant_conv', 1, 0);
    });
  }

  /** Nearest-code quantisation of z [..., D] with the straight-through estimator and the two VQ losses. */
  quantize(z: tf.Tensor): VqQuantized {
    const D = this.config.codeDim;
    if (z.shape[z.rank - 1] !== D) fail(`z: expected last dimension ${D} (codeDim), got ${shapeStr(z.shape)}`);
    return tf.tidy(() => {
      const e = this.p('quantize.embedding.weight');
      const flat = tf.reshape(z, [-1, D]);
      const dist = tf.add(tf.sub(tf.sum(tf.square(flat), 1, true), tf.mul(2, tf.matMul(flat, e, false, true))), tf.expandDims(tf.sum(tf.square(e), 1), 0));
      // Re-materialised from its values so the int indices are off the gradient tape (tfjs would otherwise
      // ask GatherV2 for a gradient w.r.t. them and reject the int32 dtype).
      const codesFlat = tf.tensor1d(tf.argMin(dist, 1).dataSync() as Int32Array, 'int32');
      const zqRaw = tf.reshape(tf.gather(e, codesFlat), z.shape);
      const codebookLoss = tf.mean(tf.square(tf.sub(stopGradient(z), zqRaw))) as tf.Scalar;
      const commitmentLoss = tf.mul(this.config.beta, tf.mean(tf.square(tf.sub(z, stopGradient(zqRaw))))) as tf.Scalar;
      return {
        zq: straightThrough(z, zqRaw),
        codes: tf.reshape(codesFlat, z.shape.slice(0, -1)),
        codebookLoss,
        commitmentLoss,
      };
    });
  }

  /** Quantised latents [B, h, w, D] -> pixels [B, C, h*f, w*f]. */
  decodeLatent(zq: tf.Tensor): tf.Tensor {
    if (zq.rank !== 4 || zq.shape[3] !== this.config.codeDim) fail(`zq: expected shape [B, h, w, ${this.config.codeDim}], got ${shapeStr(zq.shape)}`);
    return tf.tidy(() => {
      let x = this.conv(zq as tf.Tensor4D, 'post_quant_conv', 1, 0);
      for (let j = 0; j < this.config.hidden.length; j++) {
        const [, h, w] = x.shape;
        x = tf.image.resizeNearestNeighbor(x, [h * 2, w * 2]);
        x = tf.relu(this.conv(x, `decoder.up.${j}.conv`, 1, 1));
      }
      return tf.transpose(this.conv(x, 'decoder.conv_out', 1, 1), [0, 3, 1, 2]);
    });
  }
}

// ---------------------------------------------------------------- the image tokenizer as a mixin
/** Image codes [B, h, w] int32 written by an image tokenizer's encodeMedia. */
export const IMAGE_CODES = stateKey<tf.Tensor3D>('image.codes');

export interface VqImageTokenizerOptions {
  vq: VqVaeConfig;
  /** Parameter prefix passed to VqVae (which appends '.'); default the mixin's name. */
  prefix?: string;
  /** Key of the pixels in ctx.media (default 'pixels'). */
  mediaKey?: string;
}

/**
 * The VQ-VAE as a mixin: its parameters live in the model's store (component = the mixin's name) and it
 * serves `encodeMedia`: given `ctx.media.pixels`, it writes IMAGE_CODES [B, h, w]. Type D encodes each
 * batch with `model.encodeMedia({pixels}, B)` on the host and puts the codes into the token ids, so the
 * LM never back-propagates into the tokenizer (it trains on its own objective, see vqTrainStep).
 */
export class VqImageTokenizerMixin extends Mixin {
  readonly options: VqImageTokenizerOptions;
  private readonly mod = this.submodule('VQ-VAE', (m) =>
    new VqVae(this.options.vq, { params: m.params, prefix: this.options.prefix ?? this.name, component: this.name }));

  constructor(opts: VqImageTokenizerOptions) {
    super();
    this.recordOptions(opts);
    if (opts == null || typeof opts !== 'object' || opts.vq == null) fail(`VqImageTokenizerMixin: expected options { vq: VqVaeConfig }, got ${JSON.stringify(opts)}`);
    this.options = opts;
  }

  get vae(): VqVae {
    return this.mod.get();
  }

  hooks(): HookImpls {
    return imageCodesHook(this, this.options.mediaKey ?? 'pixels');
  }
}

/** Minimal optimizer surface (tf.train optimizers fit). */
export interface OptimizerLike {
  minimize(f: () => tf.Scalar, returnCost?: boolean, varList?: tf.Variable[]): tf.Scalar | null;
}

/** One training step on `pixels`; returns the losses as numbers. Leaves no tensors behind. */
export function vqTrainStep(vq: ImageVqModule, optimizer: OptimizerLike, pixels: tf.Tensor): { loss: number; reconLoss: number; codebookLoss: number; commitmentLoss: number } {
  let parts: number[] = [];
  const cost = optimizer.minimize(() => {
    const l = vq.loss(pixels);
    parts = [l.reconLoss, l.codebookLoss, l.commitmentLoss].map((t) => t.dataSync()[0]!);
    return l.loss;
  }, true, vq.variables().filter((v) => v.trainable));
  const loss = cost ? cost.dataSync()[0]! : NaN;
  cost?.dispose();
  return { loss, reconLoss: parts[0]!, codebookLoss: parts[1]!, commitmentLoss: parts[2]! };
}

// ---------------------------------------------------------------- vocabulary mapping
/**
 * Where image codes live in the LM vocabulary: token = codeOffset + code, spans wrapped in <boi> ... <eoi>.
 * With `eolId` every row of codes ends with that token (Emu3's end-of-line `<|extra_200|>`, HF
 * Emu3ImageVocabularyMapping: a span holds h * (w + 1) tokens).
 */
export interface VqVocab {
  codeOffset: number;
  codebookSize: number;
  boiId: number;
  eoiId: number;
  eolId?: number;
}

/** Checks the ranges do not overlap (and fit an LM vocabulary of `lmVocabSize`, when given). */
export function checkVqVocab(v: VqVocab, lmVocabSize?: number): void {
  for (const k of ['codeOffset', 'codebookSize', 'boiId', 'eoiId'] as const) {
    if (!Number.isInteger(v[k]) || v[k] < 0) fail(`vqVocab.${k}: expected a non-negative integer, got ${JSON.stringify(v[k])}`);
  }
  if (v.codebookSize === 0) fail(`vqVocab.codebookSize: expected a positive integer, got 0`);
  const end = v.codeOffset + v.codebookSize;
  if (v.eolId != null && (!Number.isInteger(v.eolId) || v.eolId < 0)) fail(`vqVocab.eolId: expected a non-negative integer, got ${JSON.stringify(v.eolId)}`);
  const marks = (['boiId', 'eoiId', 'eolId'] as const).filter((k) => v[k] != null);
  for (const k of marks) {
    if (v[k]! >= v.codeOffset && v[k]! < end) fail(`vqVocab.${k}: ${v[k]} lies inside the code range [${v.codeOffset}, ${end})`);
  }
  if (v.boiId === v.eoiId) fail(`vqVocab: boiId and eoiId must differ, both are ${v.boiId}`);
  if (v.eolId != null && (v.eolId === v.boiId || v.eolId === v.eoiId)) fail(`vqVocab: eolId ${v.eolId} must differ from boiId ${v.boiId} and eoiId ${v.eoiId}`);
  const top = Math.max(end, ...marks.map((k) => v[k]! + 1));
  if (lmVocabSize != null && top > lmVocabSize) {
    fail(`vqVocab: ids up to ${top - 1} do not fit the LM vocabulary of ${lmVocabSize}`);
  }
}

/**
 * One image's codes (row-major h*w) -> [<boi>, codeOffset + c..., <eoi>]; with vocab.eolId, <eol> after each
 * row of `rowLength` codes (needed then).
 */
export function imageTokens(codes: ArrayLike<number>, vocab: VqVocab, rowLength?: number): number[] {
  const eol = vocab.eolId;
  if (eol != null && (!Number.isInteger(rowLength) || rowLength! < 1 || codes.length % rowLength! !== 0)) {
    fail(`imageTokens: with vocab.eolId the row length must be a positive divisor of the ${codes.length} codes, got ${rowLength}`);
  }
  const out = [vocab.boiId];
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= vocab.codebookSize) fail(`codes[${i}]: expected an integer code in [0, ${vocab.codebookSize}), got ${c}`);
    out.push(vocab.codeOffset + c);
    if (eol != null && (i + 1) % rowLength! === 0) out.push(eol);
  }
  out.push(vocab.eoiId);
  return out;
}

/** codes [B, h, w] -> one token span per image. */
export function codesToTokens(codes: tf.Tensor, vocab: VqVocab): number[][] {
  if (codes.rank !== 3) fail(`codes: expected shape [B, h, w], got ${shapeStr(codes.shape)}`);
  const [b, h, w] = codes.shape as number[];
  const data = codes.dataSync();
  return Array.from({ length: b! }, (_, i) => imageTokens(data.subarray(i * h! * w!, (i + 1) * h! * w!), vocab, w));
}

export interface ParsedImages {
  /** Codes of each <boi> ... <eoi> span, in order. */
  codes: number[][];
  /** Token index of each span's <boi> and <eoi>. */
  spans: { start: number; end: number }[];
}

/**
 * Finds the image spans in a token sequence (text outside spans is ignored) and returns their codes.
 * Throws, naming the position and value, on a non-code token inside a span, a nested <boi>, an <eoi>
 * outside a span, an unterminated span, or (with tokensPerImage) a span of the wrong length.
 */
export function parseImageTokens(tokens: ArrayLike<number>, vocab: VqVocab, opts: { tokensPerImage?: number; rowLength?: number } = {}): ParsedImages {
  const out: ParsedImages = { codes: [], spans: [] };
  let open = -1;
  let cur: number[] = [];
  let row = 0; // codes since the last <eol>
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (vocab.eolId != null && t === vocab.eolId && open >= 0) {
      if (opts.rowLength != null && row !== opts.rowLength) fail(`image tokens: position ${i}: <eol> after ${row} codes in the row, expected ${opts.rowLength}`);
      row = 0;
    } else if (t === vocab.boiId) {
      if (open >= 0) fail(`image tokens: position ${i}: <boi> (${t}) inside the image span opened at position ${open}`);
      open = i;
      cur = [];
      row = 0;
    } else if (t === vocab.eoiId) {
      if (open < 0) fail(`image tokens: position ${i}: <eoi> (${t}) without an open image span`);
      if (opts.tokensPerImage != null && cur.length !== opts.tokensPerImage) {
        fail(`image tokens: the span at positions ${open}..${i} has ${cur.length} codes, expected ${opts.tokensPerImage}`);
      }
      out.codes.push(cur);
      out.spans.push({ start: open, end: i });
      open = -1;
    } else if (open >= 0) {
      const c = t - vocab.codeOffset;
      if (!Number.isInteger(t) || c < 0 || c >= vocab.codebookSize) {
        fail(`image tokens: position ${i}: token ${t} is not an image code (expected [${vocab.codeOffset}, ${vocab.codeOffset + vocab.codebookSize}) or <eoi> ${vocab.eoiId})`);
      }
      if (vocab.eolId != null && opts.rowLength != null && row === opts.rowLength) fail(`image tokens: position ${i}: a row of ${opts.rowLength} codes must end with <eol> (${vocab.eolId})`);
      cur.push(c);
      row++;
    }
  }
  if (open >= 0) fail(`image tokens: the image span opened at position ${open} is not closed by <eoi> (${vocab.eoiId}); ${cur.length} codes so far`);
  return out;
}

/** Parses the image spans of `tokens` and decodes them with `vq` to pixels [n, C, h*f, w*f]. */
export function tokensToImages(vq: ImageVqModule, tokens: ArrayLike<number>, vocab: VqVocab, grid: [number, number]): tf.Tensor {
  const [h, w] = grid;
  const { codes } = parseImageTokens(tokens, vocab, { tokensPerImage: h * w, rowLength: w });
  if (codes.length === 0) fail(`image tokens: no <boi> ... <eoi> span found`);
  return tf.tidy(() => vq.decode(tf.tensor3d(codes.flat(), [codes.length, h, w], 'int32')));
}

// ---------------------------------------------------------------- constrained generation
export interface VqTokenOptions {
  vocab: VqVocab;
  /** Codes per image (h * w of the latent grid). */
  tokensPerImage: number;
  /** Codes per row (w); needed when vocab.eolId is set: after each row only <eol> may follow. */
  rowLength?: number;
  /** Also forbid code tokens and <eoi> outside image spans (default true). */
  maskOutside?: boolean;
  /** Apply the mask in training passes too (default false: only inference / generation). */
  applyInTraining?: boolean;
}

/** KVCache.meta key of the per-row span state [{open, count}] carried between decoding steps. */
export const CACHE_VQ_STATE = 'vq.spanState';

interface SpanState {
  open: boolean;
  /** Codes in the span so far. */
  count: number;
  /** Codes since the last <eol> (with vocab.eolId). */
  row?: number;
}

/**
 * Serves `finalForward` (chain): masks logits so that inside an image span only code tokens can follow
 * until tokensPerImage codes are out, then only <eoi> (with vocab.eolId: only <eol> after each row of
 * rowLength codes, the last row included, as Emu3); outside spans, codes and <eoi> are forbidden
 * (maskOutside). With a KV cache the span state of each row is kept in cache.meta between steps (greedy
 * and sampled decoding; beam search reorders rows, so run it with useCache: false).
 */
export class VqTokenMixin extends Mixin {
  readonly vocab: VqVocab;
  readonly tokensPerImage: number;
  readonly rowLength: number | undefined;
  readonly maskOutside: boolean;
  readonly applyInTraining: boolean;

  constructor(opts: VqTokenOptions) {
    super();
    this.recordOptions(opts);
    checkVqVocab(opts.vocab);
    if (!Number.isInteger(opts.tokensPerImage) || opts.tokensPerImage <= 0) fail(`vqToken.tokensPerImage: expected a positive integer, got ${JSON.stringify(opts.tokensPerImage)}`);
    this.vocab = { ...opts.vocab };
    this.tokensPerImage = opts.tokensPerImage;
    if (opts.vocab.eolId != null && (!Number.isInteger(opts.rowLength) || opts.rowLength! < 1 || opts.tokensPerImage % opts.rowLength! !== 0)) {
      fail(`vqToken.rowLength: with vocab.eolId expected a positive divisor of tokensPerImage ${opts.tokensPerImage}, got ${JSON.stringify(opts.rowLength)}`);
    }
    this.rowLength = opts.vocab.eolId != null ? opts.rowLength : undefined;
    this.maskOutside = opts.maskOutside ?? true;
    this.applyInTraining = opts.applyInTraining ?? false;
  }

  override attach(model: { config: { vocabSize: number } }): void {
    checkVqVocab(this.vocab, model.config.vocabSize);
  }

  /** Per position: 0 = outside a span, 1 = codes only, 2 = <eoi> only, 3 = <eol> only (for the token after it). */
  classify(rows: number[][], start?: SpanState[]): { cls: Int32Array; end: SpanState[] } {
    const T = rows[0]?.length ?? 0;
    const cls = new Int32Array(rows.length * T);
    const end: SpanState[] = [];
    rows.forEach((row, b) => {
      const s: SpanState = { ...(start?.[b] ?? { open: false, count: 0 }) };
      row.forEach((t, i) => {
        const eol = this.rowLength != null;
        if (t === this.vocab.boiId) {
          s.open = true;
          s.count = 0;
          s.row = 0;
        } else if (t === this.vocab.eoiId) {
          s.open = false;
        } else if (eol && t === this.vocab.eolId) {
          s.row = 0;
        } else if (s.open) {
          s.count++;
          s.row = (s.row ?? 0) + 1;
        }
        cls[b * T + i] = !s.open ? 0 : eol && s.row === this.rowLength ? 3 : s.count < this.tokensPerImage ? 1 : 2;
      });
      end.push(s);
    });
    return { cls, end };
  }

  /** State key of the per-position span classes of a pass (host stage). */
  get classesKey(): StateKey<{ cls: Int32Array; batch: number; seqLen: number }> {
    return stateKey(`${this.name}.spanClasses`);
  }

  hooks(): HookImpls {
    return {
      // host stage: classify every position from the integer ids (and carry the span state between decoding steps)
      hostInputs: (inputs, host: HostContext, next) => {
        const rows = Array.from({ length: host.batch }, (_, b) => Array.from(host.row(b)));
        const meta = host.cacheMeta;
        const start = meta && host.pastLength > 0 ? (meta.get(CACHE_VQ_STATE) as SpanState[] | undefined) : undefined;
        const { cls, end } = this.classify(rows, start);
        if (meta) meta.set(CACHE_VQ_STATE, end);
        return next(inputs, host).with(this.classesKey, { cls, batch: host.batch, seqLen: host.seqLen }, this.name);
      },
      finalForward: (h: tf.Tensor, ctx: ForwardContext, next: HookFn<'finalForward'>): tf.Tensor => {
        const logits = next(h, ctx);
        if (ctx.training && !this.applyInTraining) return logits;
        const { cls, batch, seqLen } = ctx.state.require(this.classesKey, this.name);
        const V = logits.shape[2]!;
        const from = seqLen - logits.shape[1]!; // logits of the last positions only (logitsToKeep)
        const { codeOffset, codebookSize, eoiId, eolId } = this.vocab;
        const NEG = -1e9;
        const table = new Float32Array(4 * V);
        for (let v = 0; v < V; v++) {
          const isCode = v >= codeOffset && v < codeOffset + codebookSize;
          table[v] = this.maskOutside && (isCode || v === eoiId || (eolId != null && v === eolId)) ? NEG : 0;
          table[V + v] = isCode ? 0 : NEG;
          table[2 * V + v] = v === eoiId ? 0 : NEG;
          table[3 * V + v] = v === eolId ? 0 : NEG;
        }
        const rows = tf.tensor2d(table, [4, V]);
        const t = seqLen - from;
        const masked = (x: tf.Tensor, r: number) => consume(tf.gather(rows, tf.tensor2d(cls.subarray(r * seqLen + from, (r + 1) * seqLen), [1, t], 'int32')), (bias) => tf.add(x, bias));
        if (batch === 1) return consume(logits, (x) => masked(x, 0));
        // a batch row at a time, each part freed once read: a whole [B, T, V] bias beside the logits and the sum
        // would make this the pass's peak (3x the logits; here at most 2x)
        const parts = tf.split(logits, batch, 0);
        logits.dispose();
        const maskedParts = parts.map((x, r) => consume(x, (y) => masked(y, r)));
        const out = tf.concat(maskedParts, 0);
        tf.dispose(maskedParts);
        return out;
      },
    };
  }
}
