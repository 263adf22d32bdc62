/**
 * Perceiver resampler (Flamingo; open_flamingo `PerceiverResampler`, helpers.py): a fixed set of learned
 * latents cross-attends to the (many) visual features of each media item and returns `numLatents`
 * tokens per media item.
 *
 *   x [b, T, F, v, D] (+ frame_embs[f], + media_time_embs[t]) -> x [b, T, F*v, D]
 *   latents = repeat(latents) [b, T, n, D]
 *   per layer:  latents = attn(x, latents) + latents;  latents = ff(latents) + latents
 *     attn: q = to_q(norm_latents(latents)) * dim_head^-0.5,
 *           k, v = to_kv(cat(norm_media(x), norm_latents(latents))).chunk(2)   heads split "(h d)"
 *     ff:   LayerNorm -> Linear(no bias) -> GELU(erf) -> Linear(no bias)
 *   out = norm(latents)  [b, T, n, D]
 *
 * Parameter names are the reference's own, under the mixin's prefix (default `<mixin name>.`), so an
 * open_flamingo checkpoint's `perceiver.*` tensors load unchanged into a mixin named `perceiver`.
 */
import * as tf from '@tensorflow/tfjs';
import { checkPositiveInt, checkRank, consume, fail, heldAcrossSteps, Mixin, ops, shapeStr, type HookImpls, type Init, type Model } from '@vlmix/core';
import { MEDIA_LATENTS, VISION_FEATURES } from '../common.js';

/** ctx.media key for raw visual features when no vision mixin writes VISION_FEATURES. */
export const PERCEIVER_MEDIA_KEY = 'visionFeatures';

export interface PerceiverResamplerOptions {
  /** Feature width D (input and output). */
  dim: number;
  /** Number of (attention, feed-forward) layers. Default 6. */
  depth?: number;
  /** Per-head width. Default 64. */
  dimHead?: number;
  /** Default 8. */
  heads?: number;
  /** Output tokens per media item. Default 64. */
  numLatents?: number;
  /** Adds `media_time_embs` [maxNumMedia, 1, D] when set. */
  maxNumMedia?: number | null;
  /** Adds `frame_embs` [maxNumFrames, D] when set. */
  maxNumFrames?: number | null;
  /** Feed-forward expansion. Default 4. */
  ffMult?: number;
  /** LayerNorm eps. Default 1e-5 (torch default). */
  eps?: number;
  /** Parameter-name prefix; default `<mixin name>.`. */
  prefix?: string;
}

export type ResolvedPerceiverOptions = Required<Omit<PerceiverResamplerOptions, 'prefix' | 'maxNumMedia' | 'maxNumFrames'>> & {
  maxNumMedia: number | null;
  maxNumFrames: number | null;
};

export function resolvePerceiverOptions(o: PerceiverResamplerOptions): ResolvedPerceiverOptions {
  const r: ResolvedPerceiverOptions = {
    dim: o.dim,
    depth: o.depth ?? 6,
    dimHead: o.dimHead ?? 64,
    heads: o.heads ?? 8,
    numLatents: o.numLatents ?? 64,
    maxNumMedia: o.maxNumMedia ?? null,
    maxNumFrames: o.maxNumFrames ?? null,
    ffMult: o.ffMult ?? 4,
    eps: o.eps ?? 1e-5,
  };
  for (const k of ['dim', 'depth', 'dimHead', 'heads', 'numLatents'] as const) checkPositiveInt(`perceiver.${k}`, r[k]);
  if (r.maxNumMedia != null) checkPositiveInt('perceiver.maxNumMedia', r.maxNumMedia);
  if (r.maxNumFrames != null) checkPositiveInt('perceiver.maxNumFrames', r.maxNumFrames);
  if (!(r.ffMult > 0) || !Number.isInteger(r.dim * r.ffMult)) fail(`perceiver.ffMult: expected > 0 with dim * ffMult an integer, got ${r.ffMult}`);
  if (!(r.eps > 0)) fail(`perceiver.eps: expected > 0, got ${r.eps}`);
  return r;
}

/** Parameter shapes and initialisers by local name (without prefix), in the reference's order. */
export function perceiverParamSpecs(o: ResolvedPerceiverOptions): { name: string; shape: number[]; init: Init }[] {
  const D = o.dim;
  const inner = o.dimHead * o.heads;
  const ffInner = D * o.ffMult;
  const ku = (fanIn: number): Init => ({ kind: 'kaimingUniform', fanIn });
  const ones: Init = { kind: 'constant', value: 1 };
  const zeros: Init = { kind: 'constant', value: 0 };
  const randn: Init = { kind: 'normal', std: 1 };
  const out: { name: string; shape: number[]; init: Init }[] = [{ name: 'latents', shape: [o.numLatents, D], init: randn }];
  if (o.maxNumFrames != null) out.push({ name: 'frame_embs', shape: [o.maxNumFrames, D], init: randn });
  if (o.maxNumMedia != null) out.push({ name: 'media_time_embs', shape: [o.maxNumMedia, 1, D], init: randn });
  for (let i = 0; i < o.depth; i++) {
    const a = `layers.${i}.0.`;
    const f = `layers.${i}.1.`;
    out.push(
      { name: `${a}norm_media.weight`, shape: [D], init: ones },
      { name: `${a}norm_media.bias`, shape: [D], init: zeros },
      { name: `${a}norm_latents.weight`, shape: [D], init: ones },
      { name: `${a}norm_latents.bias`, shape: [D], init: zeros },
      { name: `${a}to_q.weight`, shape: [inner, D], init: ku(D) },
      { name: `${a}to_kv.weight`, shape: [2 * inner, D], init: ku(D) },
      { name: `${a}to_out.weight`, shape: [D, inner], init: ku(inner) },
      { name: `${f}0.weight`, shape: [D], init: ones },
      { name: `${f}0.bias`, shape: [D], init: zeros },
      { name: `${f}1.weight`, shape: [ffInner, D], init: ku(D) },
      { name: `${f}3.weight`, shape: [D, ffInner], init: ku(ffInner) },
    );
  }
  out.push({ name: 'norm.weight', shape: [D], init: ones }, { name: 'norm.bias', shape: [D], init: zeros });
  return out;
}

/** [.., N, h*d] -> [.., h, N, d] for a rank-3 input [B', N, h*d]. */
function heads3(x: tf.Tensor, h: number, d: number): tf.Tensor {
  return ops.splitHeads(x, [h], d)[0]!;
}

/**
 * The resampler's forward pass. `p(localName)` returns a parameter (e.g. `layers.0.0.to_q.weight`).
 * x: [b, T, F, v, D] -> [b, T, numLatents, D].
 */
export function perceiverResample(x: tf.Tensor, p: (name: string) => tf.Tensor, o: ResolvedPerceiverOptions): tf.Tensor {
  checkRank('x', x, 5);
  const [b, T, F, v, D] = x.shape as number[];
  if (D !== o.dim) fail(`x: expected feature width (last dim) ${o.dim}, got shape ${shapeStr(x.shape)}`);
  if (o.maxNumFrames != null && F! > o.maxNumFrames) fail(`x: ${F} frames exceed perceiver.maxNumFrames ${o.maxNumFrames} (shape ${shapeStr(x.shape)})`);
  if (o.maxNumMedia != null && T! > o.maxNumMedia) fail(`x: ${T} media exceed perceiver.maxNumMedia ${o.maxNumMedia} (shape ${shapeStr(x.shape)})`);
  return tf.tidy(() => {
    const n = o.numLatents;
    const h = o.heads;
    const dh = o.dimHead;
    let xs = x;
    if (o.maxNumFrames != null) {
      xs = tf.add(xs, tf.reshape(tf.slice(p('frame_embs'), [0, 0], [F!, D!]), [1, 1, F!, 1, D!]));
    }
    // b T F v D -> (b T) (F v) D ; media time embeddings broadcast over tokens
    let media = tf.reshape(xs, [b!, T!, F! * v!, D!]);
    if (o.maxNumMedia != null) media = tf.add(media, tf.reshape(tf.slice(p('media_time_embs'), [0, 0, 0], [T!, 1, D!]), [1, T!, 1, D!]));
    const BT = b! * T!;
    const M = F! * v!;
    media = tf.reshape(media, [BT, M, D!]);
    let lat: tf.Tensor = tf.tile(tf.reshape(p('latents'), [1, n, D!]), [BT, 1, 1]);
    for (let i = 0; i < o.depth; i++) {
      const a = (s: string) => p(`layers.${i}.0.${s}`);
      const f = (s: string) => p(`layers.${i}.1.${s}`);
      const prev = lat;
      // one tidy per layer, intermediates freed once read (consume): the peak is one layer's, not the stack's
      lat = tf.tidy(() => {
        // attention
        const ln = ops.layerNorm(prev, a('norm_latents.weight'), a('norm_latents.bias'), o.eps);
        const q = consume(ops.linear(ln, a('to_q.weight')), (y) => heads3(y, h, dh));
        const xm = ops.layerNorm(media, a('norm_media.weight'), a('norm_media.bias'), o.eps);
        const kv = consume(tf.concat([xm, ln], 1), (y) => ops.linear(y, a('to_kv.weight')));
        tf.dispose([xm, ln]);
        const [k, vv] = ops.splitHeads(kv, [h, h], dh);
        kv.dispose();
        const ctx = ops.attention(q, k!, vv!, { scale: dh ** -0.5 });
        tf.dispose([q, k!, vv!]);
        const attended = consume(ctx, ops.mergeHeads, (m) => ops.linear(m, a('to_out.weight')), (y) => tf.add(y, prev));
        // feed-forward
        const ff = consume(ops.layerNorm(attended, f('0.weight'), f('0.bias'), o.eps),
          (y) => ops.linear(y, f('1.weight'), null, 'gelu'), (g) => ops.linear(g, f('3.weight')));
        return consume(ff, (y) => tf.add(y, attended));
      });
      prev.dispose(); // the tiled latents, then each layer's output: all made here
    }
    const out = ops.layerNorm(lat, p('norm.weight'), p('norm.bias'), o.eps);
    return tf.reshape(out, [b!, T!, n, D!]);
  });
}

/** Brings visual features to [b, T, F, v, D]: [b, v, D] (T = F = 1), [b, T, v, D] (F = 1) or rank 5. */
export function perceiverMediaFrames(x: tf.Tensor, arg = 'visual features'): tf.Tensor {
  checkRank(arg, x, [3, 4, 5]);
  const s = x.shape as number[];
  if (x.rank === 3) return tf.reshape(x, [s[0]!, 1, 1, s[1]!, s[2]!]);
  if (x.rank === 4) return tf.reshape(x, [s[0]!, s[1]!, 1, s[2]!, s[3]!]);
  return x;
}

/**
 * Mixin: resamples visual features into MEDIA_LATENTS ('media.latents', [B, T, numLatents, D]) in the
 * encodeMedia hook. Input: VISION_FEATURES (written by a vision mixin added before this one; [B, N, D] is
 * one media item with one frame) or else `ctx.media['visionFeatures']` ([B, N, D], [B, T, N, D] or
 * [B, T, F, N, D]). With neither present it does nothing (text-only pass).
 */
export class PerceiverResamplerMixin extends Mixin {
  readonly opts: ResolvedPerceiverOptions;
  private readonly prefixOpt: string | undefined;

  constructor(opts: PerceiverResamplerOptions) {
    super();
    this.recordOptions(opts);
    this.opts = resolvePerceiverOptions(opts);
    this.prefixOpt = opts.prefix;
  }

  /** Parameter-name prefix (e.g. `perceiver.`). */
  get prefix(): string {
    return this.prefixOpt ?? `${this.name}.`;
  }

  override attach(model: Model): void {
    for (const s of perceiverParamSpecs(this.opts)) model.params.create(this.prefix + s.name, s.shape, s.init, { component: this.name });
  }

  /** Full parameter names, in the reference's order. */
  paramNames(): string[] {
    return perceiverParamSpecs(this.opts).map((s) => this.prefix + s.name);
  }

  /** x [b, T, F, v, D] (or rank 3/4, see perceiverMediaFrames) -> [b, T, numLatents, D] with this mixin's parameters. */
  resample(x: tf.Tensor): tf.Tensor {
    const m = this.model;
    return tf.tidy(() => perceiverResample(perceiverMediaFrames(x, 'x'), (n) => m.param(this.prefix + n), this.opts));
  }

  hooks(): HookImpls {
    return {
      encodeMedia: (features, ctx, next) => {
        const out = next(features, ctx);
        const fromState = out.get(VISION_FEATURES);
        const feats = fromState ?? (ctx.media[PERCEIVER_MEDIA_KEY] as tf.Tensor | undefined);
        if (feats == null) return out;
        const where = fromState ? `state '${VISION_FEATURES.name}'` : `ctx.media['${PERCEIVER_MEDIA_KEY}']`;
        if (!(feats instanceof tf.Tensor)) fail(`${where}: expected a tf.Tensor, got ${typeof feats}`);
        if (feats.shape[0] !== ctx.batch) fail(`${where}: expected batch ${ctx.batch} (as inputIds), got shape ${shapeStr(feats.shape)}`);
        // decoding with a cache: the prompt's latents are held by the cache, not resampled every step
        const latents = heldAcrossSteps(ctx, `${this.name}.latents`, () =>
          perceiverResample(perceiverMediaFrames(feats, where), (n) => ctx.param(this.prefix + n), this.opts) as tf.Tensor4D);
        return out.with(MEDIA_LATENTS, latents, this.name);
      },
    };
  }
}
