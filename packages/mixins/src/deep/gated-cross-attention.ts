/**
 * Gated cross-attention dense blocks (Flamingo; open_flamingo `GatedCrossAttentionBlock` and
 * `MaskedCrossAttention`, helpers.py), inserted at the start of every N-th layer through the core
 * `crossAttentionForward` hook:
 *
 *   x = tanh(attn_gate) * attn(x, media, text_time) + x
 *   x = tanh(ff_gate)   * ff(x) + x                       ff = LayerNorm -> Linear -> GELU -> Linear
 *   attn: q = to_q(norm(x)) * dim_head^-0.5; k, v = to_kv(media flattened over (T_img, n)).chunk(2)
 *         text_time = cumsum(media_locations); media item j (1-based) is visible to a text token when
 *         text_time == j (onlyAttendImmediateMedia) or text_time >= j (otherwise).
 *
 * Both gates start at 0 (Flamingo), so a freshly added mixin leaves the model's outputs unchanged;
 * `gateInit` starts them elsewhere, for a language model trained from scratch together with the blocks.
 *
 * A text token that sees no media (text before the first media token; with onlyAttendImmediateMedia a
 * media index past the last media item too): `noMediaAttention: 'reference'` (default) does what
 * open_flamingo does — every score of the row is filled with -finfo.max, so the softmax is uniform and
 * the token gets the plain average of all media values, except that with only_attend_immediate_media
 * rows with text_time == 0 are zeroed afterwards; `'zero'` gives every such token a zero attention
 * output in both modes (vlmix's earlier behaviour, kept by the type-A recipe).
 *
 * open_flamingo checkpoints load with `loadGatedCrossAttention` (names in its comment).
 */
import * as tf from '@tensorflow/tfjs';
import {
  checkPositiveInt, checkRank, fail, Mixin, ops, shapeStr, splitHeads, mergeHeads, stateKey,
  type ForwardContext, type HookImpls, type HookName, type HostContext, type Init, type Model, type StateKey,
} from '@vlmix/core';
import { MEDIA_LATENTS } from '../common.js';

/** ctx.media key: boolean/0-1 media locations [B, T] (or [B, pastLength + T], the full sequence). */
export const GATED_XATTN_LOCATIONS_KEY = 'mediaLocations';
/** ctx.media key: media latents [B, T_img, n, Dv] given directly (used when MEDIA_LATENTS is absent). */
export const GATED_XATTN_LATENTS_KEY = 'mediaLatents';

export interface GatedCrossAttentionOptions {
  /** Width of the media latents (open_flamingo dim_visual). Default: the model's hidden size. */
  dimVisual?: number;
  /** Default 64. */
  dimHead?: number;
  /** Default 8. */
  heads?: number;
  /** Feed-forward expansion. Default 4. */
  ffMult?: number;
  /** Text attends only to the latest media (true, default) or to all media before it. */
  onlyAttendImmediateMedia?: boolean;
  /**
   * Text that sees no media: 'reference' (default) as open_flamingo (uniform average over all media,
   * except text_time == 0 zeroed when onlyAttendImmediateMedia), or 'zero' (attention output 0).
   */
  noMediaAttention?: NoMediaAttention;
  /** open_flamingo cross_attn_every_n_layers: a block before layer l when (l + 1) % everyN == 0. Default 1. */
  everyN?: number;
  /** Token id of `<image>`: media locations are `inputIds == mediaTokenId` unless ctx.media['mediaLocations'] is given. */
  mediaTokenId?: number;
  /** LayerNorm eps. Default 1e-5. */
  eps?: number;
  /**
   * Initial value of attn_gate and ff_gate (the blocks scale by tanh(gate)). Default 0, as Flamingo: the
   * pretrained LM is untouched at the start, but the block weights get no gradient until the gates move.
   * A nonzero value suits an LM trained from scratch with the blocks (the typeA-tiny preset uses 0.5).
   */
  gateInit?: number;
  /** Parameter-name prefix; default `<mixin name>.` (use 'lang_encoder.' for open_flamingo checkpoint names). */
  prefix?: string;
}

export type NoMediaAttention = 'reference' | 'zero';

export interface ResolvedGatedCrossAttentionOptions {
  dim: number;
  dimVisual: number;
  dimHead: number;
  heads: number;
  ffMult: number;
  onlyAttendImmediateMedia: boolean;
  /** Default 'reference'. */
  noMediaAttention?: NoMediaAttention;
  eps: number;
  /** Default 0. */
  gateInit?: number;
}

/** Local parameter names of one block (open_flamingo's GatedCrossAttentionBlock state_dict). */
export function gatedBlockParamSpecs(o: ResolvedGatedCrossAttentionOptions): { name: string; shape: number[]; init: Init }[] {
  const C = o.dim;
  const inner = o.heads * o.dimHead;
  const ff = C * o.ffMult;
  const ku = (fanIn: number): Init => ({ kind: 'kaimingUniform', fanIn });
  const ones: Init = { kind: 'constant', value: 1 };
  const zeros: Init = { kind: 'constant', value: 0 };
  const gate: Init = { kind: 'constant', value: o.gateInit ?? 0 };
  return [
    { name: 'attn_gate', shape: [1], init: gate },
    { name: 'ff_gate', shape: [1], init: gate },
    { name: 'attn.norm.weight', shape: [C], init: ones },
    { name: 'attn.norm.bias', shape: [C], init: zeros },
    { name: 'attn.to_q.weight', shape: [inner, C], init: ku(C) },
    { name: 'attn.to_kv.weight', shape: [2 * inner, o.dimVisual], init: ku(o.dimVisual) },
    { name: 'attn.to_out.weight', shape: [C, inner], init: ku(inner) },
    { name: 'ff.0.weight', shape: [C], init: ones },
    { name: 'ff.0.bias', shape: [C], init: zeros },
    { name: 'ff.1.weight', shape: [ff, C], init: ku(C) },
    { name: 'ff.3.weight', shape: [C, ff], init: ku(ff) },
  ];
}

/**
 * The masks of MaskedCrossAttention, which depend only on textTime [B, T] and the media layout (T_img items of
 * n tokens): the additive bias [B, 1, T, T_img * n], `keep` [B, 1, T, 1] (rows that see some media) and, for
 * noMediaAttention 'reference', `uniform` (rows that see none; their output is the mean of the values).
 * The mixin computes them once per pass for all its layers.
 */
export interface CrossAttentionMasks { bias: tf.Tensor; keep: tf.Tensor; uniform: tf.Tensor | null }

export function crossAttentionMasks(textTime: tf.Tensor, tImg: number, n: number, o: ResolvedGatedCrossAttentionOptions): CrossAttentionMasks {
  checkRank('textTime', textTime, 2);
  const [b, t] = textTime.shape as number[];
  const r = tf.tidy(() => {
    const M = tImg * n;
    const mediaTime = tf.reshape(tf.add(tf.floorDiv(tf.range(0, M, 1, 'int32'), tf.scalar(n, 'int32')), tf.scalar(1, 'int32')), [1, 1, 1, M]);
    const tt = tf.reshape(tf.cast(textTime, 'int32'), [b!, 1, t!, 1]);
    const allowed = o.onlyAttendImmediateMedia ? tf.equal(tt, mediaTime) : tf.greaterEqual(tt, mediaTime);
    const bias = tf.where(allowed, tf.zeros([b!, 1, t!, M]), tf.fill([b!, 1, t!, M], -1e9));
    const sees = tf.any(allowed, -1, true); // [B, 1, T, 1]: rows that see some media
    const keep = tf.cast(sees, 'float32');
    let uniform: tf.Tensor | null = null;
    if ((o.noMediaAttention ?? 'reference') === 'reference') {
      // all scores masked -> uniform softmax -> the mean of the values (zeroed at text_time == 0 in immediate mode)
      let blind = tf.logicalNot(sees);
      if (o.onlyAttendImmediateMedia) blind = tf.logicalAnd(blind, tf.notEqual(tt, tf.scalar(0, 'int32')));
      uniform = tf.cast(blind, 'float32');
    }
    return { bias, keep, uniform: uniform ?? undefined };
  });
  return { bias: r.bias, keep: r.keep, uniform: r.uniform ?? null };
}

/**
 * open_flamingo MaskedCrossAttention (before any gate): x [B, T, C], media [B, T_img, n, Dv],
 * textTime [B, T] int32 (cumsum of media locations) or null for "attend to all media, unmasked".
 * `masks`: crossAttentionMasks(textTime, ...) computed beforehand (e.g. once for all layers).
 */
export function maskedCrossAttention(
  x: tf.Tensor, media: tf.Tensor, textTime: tf.Tensor | null, p: (name: string) => tf.Tensor, o: ResolvedGatedCrossAttentionOptions,
  masks?: CrossAttentionMasks,
): tf.Tensor {
  checkRank('x', x, 3);
  checkRank('media', media, 4);
  const [b, t, c] = x.shape as number[];
  const [mb, tImg, n, dv] = media.shape as number[];
  if (c !== o.dim) fail(`x: expected hidden size ${o.dim} (last dim), got shape ${shapeStr(x.shape)}`);
  if (mb !== b || dv !== o.dimVisual) fail(`media: expected shape [${b}, T_img, n, ${o.dimVisual}], got ${shapeStr(media.shape)}`);
  if (textTime && (textTime.rank !== 2 || textTime.shape[0] !== b || textTime.shape[1] !== t)) {
    fail(`textTime: expected shape [${b}, ${t}], got ${shapeStr(textTime.shape)}`);
  }
  if (masks && masks.bias.shape[3] !== tImg! * n!) fail(`masks: built for ${masks.bias.shape[3]} media tokens, media has ${tImg! * n!}`);
  return tf.tidy(() => {
    const M = tImg! * n!;
    const xn = ops.layerNorm(x, p('attn.norm.weight'), p('attn.norm.bias'), o.eps);
    const q = splitHeads(ops.linear(xn, p('attn.to_q.weight')), o.heads, o.dimHead);
    const kv = ops.linear(tf.reshape(media, [b!, M, dv!]), p('attn.to_kv.weight'));
    const [kh, vh] = ops.splitHeads(kv, [o.heads, o.heads], o.dimHead);
    const m = textTime ? masks ?? crossAttentionMasks(textTime, tImg!, n!, o) : null;
    let ctx = ops.attention(q, kh!, vh!, { bias: m?.bias ?? null, scale: o.dimHead ** -0.5 });
    if (m) ctx = tf.mul(ctx, m.keep);
    if (m?.uniform) ctx = tf.add(ctx, tf.mul(tf.mean(vh!, 2, true), m.uniform));
    return ops.linear(mergeHeads(ctx), p('attn.to_out.weight'));
  });
}

/**
 * One open_flamingo GatedCrossAttentionBlock. media null = no media at all (the attention branch is 0,
 * the gated feed-forward still applies, as for text before any media in the reference).
 */
export function gatedCrossAttentionBlock(
  x: tf.Tensor, media: tf.Tensor | null, textTime: tf.Tensor | null, p: (name: string) => tf.Tensor, o: ResolvedGatedCrossAttentionOptions,
  masks?: CrossAttentionMasks,
): tf.Tensor {
  checkRank('x', x, 3);
  return tf.tidy(() => {
    let h = x;
    // each tanh-gated residual in one kernel (ops.gatedResidual: the bits of h + y * tanh(gate))
    if (media) h = ops.gatedResidual(h, maskedCrossAttention(h, media, textTime, p, o, masks), p('attn_gate'));
    const f = ops.layerNorm(h, p('ff.0.weight'), p('ff.0.bias'), o.eps);
    const ff = ops.linear(ops.linear(f, p('ff.1.weight'), null, 'gelu'), p('ff.3.weight'));
    return ops.gatedResidual(h, ff, p('ff_gate'));
  });
}

/** Reads [B, W] media locations (nested array of booleans / 0-1, or a tensor, read back) into per-row flags. */
function readLocations(v: unknown, b: number, host: HostContext): { width: number; data: Uint8Array } {
  const where = `ctx.media['${GATED_XATTN_LOCATIONS_KEY}']`;
  if (v instanceof tf.Tensor) {
    if (v.rank !== 2 || v.shape[0] !== b) fail(`${where}: expected shape [${b}, seq], got ${shapeStr(v.shape)}`);
    const d = host.readBack(v);
    return { width: v.shape[1]!, data: Uint8Array.from(d, (x) => (x ? 1 : 0)) };
  }
  if (Array.isArray(v) && v.length === b && v.every((r) => Array.isArray(r) && r.length === (v[0] as unknown[]).length)) {
    const w = (v[0] as unknown[]).length;
    return { width: w, data: Uint8Array.from((v as unknown[][]).flat(), (x) => (x ? 1 : 0)) };
  }
  fail(`${where}: expected a [${b}, seq] tensor or nested array of booleans, got ${Array.isArray(v) ? `an array of ${v.length} rows (or ragged rows)` : typeof v}`);
}

/**
 * Mixin: a gated cross-attention block before every `everyN`-th layer (crossAttentionForward). Media
 * latents come from MEDIA_LATENTS (e.g. a PerceiverResamplerMixin added before it) or
 * ctx.media['mediaLatents']; media locations from ctx.media['mediaLocations'] or `inputIds == mediaTokenId`.
 * text_time is computed in the host stage (hostInputs) from the integer ids. With a KV cache, the running
 * media count of each row is kept in `cache.meta` so decode steps attend to the right media.
 */
export class GatedCrossAttentionMixin extends Mixin {
  readonly everyN: number;
  readonly mediaTokenId: number | null;
  private readonly o: Omit<ResolvedGatedCrossAttentionOptions, 'dim' | 'dimVisual'> & { dimVisual: number | null };
  private readonly prefixOpt: string | undefined;
  /** Checked against the host model and resolved on attach. */
  private readonly resolved = this.submodule('block options', (model) => {
    const C = model.config.hiddenSize;
    if (this.everyN > model.config.numLayers) fail(`gatedCrossAttention.everyN: ${this.everyN} exceeds the model's ${model.config.numLayers} layers (no layer would get a block)`);
    if (this.mediaTokenId != null && this.mediaTokenId >= model.config.vocabSize) {
      fail(`gatedCrossAttention.mediaTokenId: expected < vocabSize ${model.config.vocabSize}, got ${this.mediaTokenId}`);
    }
    const r: ResolvedGatedCrossAttentionOptions = { ...this.o, dim: C, dimVisual: this.o.dimVisual ?? C };
    if (!Number.isInteger(C * r.ffMult)) fail(`gatedCrossAttention.ffMult: hiddenSize * ffMult must be an integer, got ${C} * ${r.ffMult}`);
    return r;
  });

  constructor(opts: GatedCrossAttentionOptions = {}) {
    super();
    this.recordOptions(opts);
    this.everyN = opts.everyN ?? 1;
    checkPositiveInt('gatedCrossAttention.everyN', this.everyN);
    this.mediaTokenId = opts.mediaTokenId ?? null;
    if (this.mediaTokenId != null && (!Number.isInteger(this.mediaTokenId) || this.mediaTokenId < 0)) {
      fail(`gatedCrossAttention.mediaTokenId: expected an integer >= 0, got ${JSON.stringify(opts.mediaTokenId)}`);
    }
    this.o = {
      dimVisual: opts.dimVisual ?? null,
      dimHead: opts.dimHead ?? 64,
      heads: opts.heads ?? 8,
      ffMult: opts.ffMult ?? 4,
      onlyAttendImmediateMedia: opts.onlyAttendImmediateMedia ?? true,
      noMediaAttention: opts.noMediaAttention ?? 'reference',
      eps: opts.eps ?? 1e-5,
      gateInit: opts.gateInit ?? 0,
    };
    if (this.o.noMediaAttention !== 'reference' && this.o.noMediaAttention !== 'zero') {
      fail(`gatedCrossAttention.noMediaAttention: expected 'reference' or 'zero', got ${JSON.stringify(opts.noMediaAttention)}`);
    }
    if (this.o.dimVisual != null) checkPositiveInt('gatedCrossAttention.dimVisual', this.o.dimVisual);
    checkPositiveInt('gatedCrossAttention.dimHead', this.o.dimHead);
    checkPositiveInt('gatedCrossAttention.heads', this.o.heads);
    if (!(this.o.ffMult > 0)) fail(`gatedCrossAttention.ffMult: expected > 0, got ${this.o.ffMult}`);
    if (!Number.isFinite(this.o.gateInit)) fail(`gatedCrossAttention.gateInit: expected a finite number, got ${String(opts.gateInit)}`);
    this.prefixOpt = opts.prefix;
  }

  get prefix(): string {
    return this.prefixOpt ?? `${this.name}.`;
  }

  /** Resolved block options (after attach). */
  get options(): ResolvedGatedCrossAttentionOptions {
    return this.resolved.get();
  }

  /** Layers that get a block (after attach). */
  layers(): number[] {
    return Array.from({ length: this.model.config.numLayers }, (_, l) => l).filter((l) => (l + 1) % this.everyN === 0);
  }

  /** Name prefix of the block before layer `l`: `<prefix>gated_cross_attn_layers.<l>.`. */
  blockPrefix(l: number): string {
    return `${this.prefix}gated_cross_attn_layers.${l}.`;
  }

  override appliesTo(hook: HookName, layer: number): boolean {
    return hook !== 'crossAttentionForward' || (layer + 1) % this.everyN === 0;
  }

  override attach(model: Model): void {
    for (const l of this.layers()) {
      for (const s of gatedBlockParamSpecs(this.options)) model.params.create(this.blockPrefix(l) + s.name, s.shape, s.init, { component: this.name });
    }
  }

  private get metaKey(): string {
    return `${this.name}.textTime`;
  }

  /** State key of this pass's text_time [B, T] int32 and the largest media index it names. */
  get textTimeKey(): StateKey<{ textTime: tf.Tensor2D; maxMedia: number } | null> {
    return stateKey(`${this.name}.textTime`);
  }

  /**
   * Host stage: text_time [B, T] for this pass (and each row's running media count in the cache).
   * ctx.media['mediaLocations'] of width T with a cache holding earlier tokens covers this pass only (the
   * count continues from cache.meta); any other width is indexed by absolute position (the full sequence,
   * or e.g. just the prompt during generation: columns past its end count as "no media").
   */
  textTime(host: HostContext): { textTime: tf.Tensor2D; maxMedia: number } | null {
    const b = host.batch;
    const t = host.seqLen;
    const past = host.pastLength;
    let flags: Uint8Array | null = null;
    let width = t;
    let absolute = false;
    const given = host.media[GATED_XATTN_LOCATIONS_KEY];
    if (given != null) {
      const r = readLocations(given, b, host);
      width = r.width;
      flags = r.data;
      absolute = !(past > 0 && width === t);
    } else if (this.mediaTokenId != null) {
      flags = Uint8Array.from(host.inputIds, (x) => (x === this.mediaTokenId ? 1 : 0));
    }
    if (!flags) return null; // no locations: attend to all media unmasked (reference behaviour without media_locations)
    const meta = host.cacheMeta?.get(this.metaKey) as number[] | undefined;
    const out = new Int32Array(b * t);
    const last: number[] = [];
    let maxMedia = 0;
    for (let i = 0; i < b; i++) {
      const f = (col: number) => (col < width ? flags[i * width + col]! : 0);
      let run = 0;
      if (absolute) for (let j = 0; j < Math.min(past, width); j++) run += f(j);
      else run = meta?.[i] ?? 0;
      for (let j = 0; j < t; j++) {
        run += f(absolute ? past + j : j);
        out[i * t + j] = run;
        if (run > maxMedia) maxMedia = run;
      }
      last.push(run);
    }
    host.cacheMeta?.set(this.metaKey, last);
    return { textTime: tf.tensor2d(out, [b, t], 'int32'), maxMedia };
  }

  private media(ctx: ForwardContext): tf.Tensor | null {
    const fromState = ctx.state.get(MEDIA_LATENTS);
    const m = (fromState ?? ctx.media[GATED_XATTN_LATENTS_KEY] ?? null) as tf.Tensor | null;
    if (m == null) return null;
    const where = fromState ? `state '${MEDIA_LATENTS.name}'` : `ctx.media['${GATED_XATTN_LATENTS_KEY}']`;
    if (!(m instanceof tf.Tensor)) fail(`${where}: expected a tf.Tensor [B, T_img, n, D], got ${typeof m}`);
    const dv = this.options.dimVisual;
    if (m.rank !== 4 || m.shape[0] !== ctx.batch || m.shape[3] !== dv) {
      fail(`${where}: expected shape [${ctx.batch}, T_img, n, ${dv}], got ${shapeStr(m.shape)}`);
    }
    return m;
  }

  hooks(): HookImpls {
    return {
      hostInputs: (inputs, host, next) => next(inputs, host).with(this.textTimeKey, this.textTime(host), this.name),
      crossAttentionForward: (h: tf.Tensor, ctx: ForwardContext, next: (h: tf.Tensor, ctx: ForwardContext) => tf.Tensor): tf.Tensor => {
        const x = next(h, ctx);
        const tt = ctx.state.require(this.textTimeKey, this.name);
        const media = this.media(ctx);
        if (!media && tt && tt.maxMedia > 0) {
          fail(`gated cross-attention '${this.name}': media locations mark ${tt.maxMedia} media item(s) but no media latents were given (state '${MEDIA_LATENTS.name}' or ctx.media['${GATED_XATTN_LATENTS_KEY}'])`);
        }
        const bp = this.blockPrefix(ctx.layer);
        const textTime = tt?.textTime ?? null;
        // the masks depend only on textTime and the media layout: once per pass for every block
        const masks = textTime && media
          ? ctx.state.memo(stateKey<CrossAttentionMasks>(`${this.name}.masks`), () => crossAttentionMasks(textTime, media.shape[1]!, media.shape[2]!, this.options))
          : undefined;
        return gatedCrossAttentionBlock(x, media, textTime, (n) => ctx.param(bp + n), this.options, masks);
      },
    };
  }
}
