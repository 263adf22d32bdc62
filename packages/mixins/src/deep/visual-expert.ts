/**
 * Visual expert (CogVLM; THUDM/cogvlm-chat-hf `modeling_cogvlm.py`: `VisionExpertAttention`,
 * `VisionExpertMLP`, `get_expert_mask`, `build_position_ids`).
 *
 * Every layer gets a second copy of the attention's QKV and output projections and of the MLP. Vision
 * tokens (ctx.tokenTypes == 1) go through the vision copy, text tokens through the base weights (the
 * base model IS the language expert). Attention itself is one joint causal attention over all tokens:
 * q/k/v from both experts are scattered back into one sequence, then the core path runs (rotary, KV
 * cache, attentionFn) via core's `qkvHeads` and `attendHeads`.
 *
 * Routing (CogVLM `get_expert_mask`): a token is routed to the vision expert when it and the NEXT token
 * of the same pass are vision tokens, so the last token of each image span (and the last token of a
 * pass) uses the language expert.
 *
 * Positions (CogVLM `build_position_ids`), served as the plain `positionIds` hook (it overrides RoPE's
 * sequential ids) when token types are set: the first and last token of each image span count as text;
 * the position advances at every text token and at the first token of the span's interior, so all
 * interior image tokens share one position id. Across KV-cache steps the last position of each row is
 * kept in `cache.meta`.
 *
 * Routing and positions are computed in the host stage from the integer token types (hostInputs,
 * positionIds), once per batch; the layers only gather rows by the uploaded routing.
 */
import * as tf from '@tensorflow/tfjs';
import {
  attendHeads, consume, fail, mlpBlock, Mixin, names, normal, ops, qkvHeads, shapeStr, stateKey, zeros,
  type ForwardContext, type HookImpls, type HookName, type HostContext, type Init, type Model, type StateKey, type TransformerConfig,
} from '@vlmix/core';

export const LANGUAGE_TOKEN_TYPE = 0;
export const VISION_TOKEN_TYPE = 1;

export interface VisualExpertOptions {
  /** Serve CogVLM's position ids (positionIds hook, overriding RoPE's) when token types are set (default true). */
  cogvlmPositions?: boolean;
  /** Give the vision QKV projection a bias even when the base has none (CogVLM2 has one). Default: config.bias. */
  visionQkvBias?: boolean;
}

/** CogVLM get_expert_mask for one row-major [B, T] token-type array: 1 where the vision expert runs. */
export function visionExpertMask(tt: ArrayLike<number>, b: number, t: number): Uint8Array {
  const out = new Uint8Array(b * t);
  for (let i = 0; i < b; i++) {
    for (let j = 0; j + 1 < t; j++) {
      out[i * t + j] = tt[i * t + j] === VISION_TOKEN_TYPE && tt[i * t + j + 1] === VISION_TOKEN_TYPE ? 1 : 0;
    }
  }
  return out;
}

/** CogVLM build_position_ids (no padding) for a row-major [B, T] token-type array; starts at 0 per row. */
export function cogvlmPositionIds(tt: ArrayLike<number>, b: number, t: number): Int32Array {
  const out = new Int32Array(b * t);
  const tmp = new Int32Array(t);
  for (let i = 0; i < b; i++) {
    const row = (j: number) => tt[i * t + j]!;
    for (let j = 0; j < t; j++) {
      const v = row(j);
      const boi = v === VISION_TOKEN_TYPE && (j === 0 || row(j - 1) === LANGUAGE_TOKEN_TYPE);
      const eoi = v === VISION_TOKEN_TYPE && (j === t - 1 || row(j + 1) === LANGUAGE_TOKEN_TYPE);
      tmp[j] = boi || eoi ? LANGUAGE_TOKEN_TYPE : v;
    }
    let y = 0;
    for (let j = 0; j < t; j++) {
      if (j > 0 && (tmp[j] === LANGUAGE_TOKEN_TYPE || (tmp[j] === VISION_TOKEN_TYPE && tmp[j - 1] === LANGUAGE_TOKEN_TYPE))) y++;
      out[i * t + j] = y;
    }
  }
  return out;
}

/** The mixin's parameter names for layer l (vlmix side). */
export const visualExpertNames = {
  qkv: (l: number) => names.layer(l, 'attention.vision_expert_query_key_value'),
  dense: (l: number) => names.layer(l, 'attention.vision_expert_dense'),
  mlp: (l: number, local: 'dense_h_to_4h' | 'dense_h_to_4h_gate' | 'dense_4h_to_h') => names.layer(l, `mlp.vision_mlp.${local}`),
};

/** Which rows go through which expert, uploaded once per batch and used by every layer. */
export interface Route {
  /** Token rows in expert order: the vision-routed ones, then the others (a permutation of B*T). */
  order: ops.RowGather;
  /** Its inverse: row i of the sequence is row inv[i] of the expert order. */
  inv: ops.RowGather;
  nV: number;
  nL: number;
}

/**
 * Mixin: CogVLM visual expert on every layer (serves `attentionForward` and `mlpForward`, plain hooks).
 * `addMixin(name, new VisualExpertMixin(), { reinit: true })` copies the language (base) weights into the
 * vision expert, as CogVLM initialises it.
 */
export class VisualExpertMixin extends Mixin {
  readonly cogvlmPositions: boolean;
  private readonly visionQkvBias: boolean | undefined;

  constructor(opts: VisualExpertOptions = {}) {
    super();
    this.recordOptions(opts);
    this.cogvlmPositions = opts.cogvlmPositions ?? true;
    this.visionQkvBias = opts.visionQkvBias;
  }

  private specs(cfg: TransformerConfig): { name: string; base: string | null; shape: number[]; init: Init }[] {
    const C = cfg.hiddenSize;
    const qkvOut = (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
    const std = normal(cfg.initStd);
    const projStd = normal(cfg.initStd / Math.sqrt(2 * cfg.numLayers));
    const out: { name: string; base: string | null; shape: number[]; init: Init }[] = [];
    const lin = (name: string, base: string, o: number, i: number, init: Init, bias: boolean) => {
      out.push({ name: `${name}.weight`, base: `${base}.weight`, shape: [o, i], init });
      if (bias) out.push({ name: `${name}.bias`, base: cfg.bias ? `${base}.bias` : null, shape: [o], init: zeros });
    };
    for (let l = 0; l < cfg.numLayers; l++) {
      const p = (s: string) => names.layer(l, s);
      lin(visualExpertNames.qkv(l), p('attention.query_key_value'), qkvOut, C, std, this.visionQkvBias ?? cfg.bias);
      lin(visualExpertNames.dense(l), p('attention.dense'), C, cfg.numHeads * cfg.headDim, projStd, cfg.bias);
      lin(visualExpertNames.mlp(l, 'dense_h_to_4h'), p('mlp.dense_h_to_4h'), cfg.intermediateSize, C, std, cfg.bias);
      if (cfg.activation === 'swiglu') lin(visualExpertNames.mlp(l, 'dense_h_to_4h_gate'), p('mlp.dense_h_to_4h_gate'), cfg.intermediateSize, C, std, cfg.bias);
      lin(visualExpertNames.mlp(l, 'dense_4h_to_h'), p('mlp.dense_4h_to_h'), C, cfg.intermediateSize, projStd, cfg.bias);
    }
    return out;
  }

  override attach(model: Model): void {
    for (const s of this.specs(model.config)) model.params.create(s.name, s.shape, s.init, { component: this.name });
  }

  /** Copies the language (base) weights into the vision expert (a bias the base lacks becomes 0). */
  override reinit(model: Model): void {
    tf.tidy(() => {
      for (const s of this.specs(model.config)) {
        const v = model.param(s.name);
        v.assign(s.base ? model.param(s.base) : tf.zerosLike(v));
      }
    });
  }

  override overrides(): HookName[] {
    return this.cogvlmPositions ? ['positionIds'] : [];
  }

  /** State key of the pass's routing (null when no token goes to the vision expert). */
  get routeKey(): StateKey<Route | null> {
    return stateKey(`${this.name}.route`);
  }

  private get metaKey(): string {
    return `${this.name}.lastPosition`;
  }

  /** The batch's token types on the host, checked to be 0 or 1. */
  private types(host: HostContext): Int32Array | null {
    const tt = host.tokenTypes;
    if (tt && !this.checked.has(tt)) {
      for (let i = 0; i < tt.length; i++) {
        if (tt[i] !== LANGUAGE_TOKEN_TYPE && tt[i] !== VISION_TOKEN_TYPE) fail(`tokenTypes: expected 0 (text) or 1 (vision), got ${tt[i]} at [${Math.floor(i / host.seqLen)}, ${i % host.seqLen}]`);
      }
      this.checked.add(tt);
    }
    return tt;
  }

  private readonly checked = new WeakSet<Int32Array>();

  /** Host stage: rows routed to the vision expert (get_expert_mask) and back, or null when there are none. */
  route(host: HostContext): Route | null {
    const tt = this.types(host);
    if (!tt) return null;
    const [b, t] = [host.batch, host.seqLen];
    const mask = visionExpertMask(tt, b, t);
    const v: number[] = [];
    const l: number[] = [];
    mask.forEach((m, i) => (m ? v : l).push(i));
    if (v.length === 0) return null;
    const inv = new Int32Array(b * t);
    v.forEach((src, k) => (inv[src] = k));
    l.forEach((src, k) => (inv[src] = v.length + k));
    return { order: ops.rowGather([...v, ...l], b * t), inv: ops.rowGather(inv, b * t), nV: v.length, nL: l.length };
  }

  /** Host stage: CogVLM position ids, continued from the previous pass's last position (cache.meta). */
  positionIds(host: HostContext, next: (host: HostContext) => tf.Tensor): tf.Tensor {
    const tt = this.types(host);
    const metaBefore = host.cacheMeta?.get(this.metaKey) as number[] | undefined;
    if (!tt && !metaBefore) return next(host);
    const given = host.givenPositionIds;
    if (given && given.rank !== 2) fail(`visual expert '${this.name}': CogVLM positions need positionIds [B, T], got ${shapeStr(given.shape)} (set cogvlmPositions: false to keep them)`);
    const [b, t] = [host.batch, host.seqLen];
    const local = tt ? cogvlmPositionIds(tt, b, t) : Int32Array.from({ length: b * t }, (_, i) => i % t);
    const pos = new Int32Array(b * t);
    const last: number[] = [];
    for (let i = 0; i < b; i++) {
      // a pass always starts one past the previous one: its first token counts as text (boi) in build_position_ids
      const offset = metaBefore ? metaBefore[i]! + 1 : host.pastLength;
      for (let j = 0; j < t; j++) pos[i * t + j] = offset + local[i * t + j]!;
      last.push(pos[i * t + t - 1]!);
    }
    host.cacheMeta?.set(this.metaKey, last);
    return tf.tensor2d(pos, [b, t], 'int32');
  }

  /** Runs fV on the vision-routed rows and fL on the others ([n, C] each), then restores token order. */
  private routed(x: tf.Tensor, r: Route, fV: (x: tf.Tensor) => tf.Tensor, fL: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
    const [b, t, c] = x.shape as number[];
    // gatherRows, not tf.gather: its gradient is a gather too (fast on stock tfjs backends)
    const sorted = ops.gatherRows(tf.reshape(x, [b! * t!, c!]), r.order);
    const [xv, xl] = r.nL > 0 ? tf.split(sorted, [r.nV, r.nL], 0) : [sorted];
    if (xl) sorted.dispose();
    // each part freed once read (consume): the routed copies do not all stay until the layer ends
    const run = (part: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor, n: number) => consume(part, f, (y) => (y.rank === 2 ? y : tf.reshape(y, [n, -1])));
    const parts = [run(xv!, fV, r.nV)];
    if (xl) parts.push(run(xl, fL, r.nL));
    const joined = parts.length > 1 ? tf.concat(parts, 0) : parts[0]!;
    if (parts.length > 1) tf.dispose(parts);
    return consume(joined, (y) => ops.gatherRows(y, r.inv), (y) => tf.reshape(y, [b!, t!, y.shape[1]!]));
  }

  hooks(): HookImpls {
    return {
      ...(this.cogvlmPositions ? { positionIds: (host: HostContext, next: (host: HostContext) => tf.Tensor) => this.positionIds(host, next) } : {}),
      hostInputs: (inputs, host, next) => next(inputs, host).with(this.routeKey, this.route(host), this.name),
      attentionForward: (h: tf.Tensor, ctx: ForwardContext, next: (h: tf.Tensor, ctx: ForwardContext) => tf.Tensor): tf.Tensor => {
        const r = ctx.state.require(this.routeKey, this.name);
        if (!r) return next(h, ctx);
        const l = ctx.layer;
        const p = ctx.layerPrefix;
        const qkv = this.routed(h, r,
          (x) => ctx.run('linear', visualExpertNames.qkv(l), x),
          (x) => ctx.run('linear', `${p}attention.query_key_value`, x));
        const [q, k, v] = qkvHeads(qkv, ctx);
        qkv.dispose();
        return consume(attendHeads(q, k, v, ctx, true), (a) => this.routed(a, r,
          (x) => ctx.run('linear', visualExpertNames.dense(l), x),
          (x) => ctx.run('linear', `${p}attention.dense`, x)));
      },
      mlpForward: (h: tf.Tensor, ctx: ForwardContext, next: (h: tf.Tensor, ctx: ForwardContext) => tf.Tensor): tf.Tensor => {
        const r = ctx.state.require(this.routeKey, this.name);
        if (!r) return next(h, ctx);
        // the linears and mlpBlock take the routed rows as they are; a wrapped mlpForward gets [1, n, C] (its contract)
        return this.routed(h, r, (x) => mlpBlock(ctx, names.layer(ctx.layer, 'mlp.vision_mlp.'), x),
          (x) => consume(x, (y) => tf.expandDims(y, 0), (y) => next(y, ctx)));
      },
    };
  }
}

function take(src: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const t = src.get(name);
  if (!t) fail(`CogVLM checkpoint: missing tensor '${name}'`);
  return t;
}

/**
 * CogVLM (HF `CogVLMForCausalLM`) language-model tensors -> vlmix names for a LLaMA-style base plus a
 * VisualExpertMixin. Language expert -> base weights; vision expert -> the mixin's parameters.
 * `model.vision.*` (the EVA-CLIP encoder) is not mapped. Returns clones; dispose them after loading.
 */
export function cogvlmToVlmix(src: Map<string, tf.Tensor>, numLayers: number, opts: { tied?: boolean } = {}): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const C = (n: string) => take(src, n).clone();
  const opt = (from: string, to: string) => {
    if (src.has(from)) out.set(to, C(from));
  };
  out.set(names.wordEmbeddings, C('model.embed_tokens.weight'));
  for (let l = 0; l < numLayers; l++) {
    const s = `model.layers.${l}.`;
    const p = (x: string) => names.layer(l, x);
    out.set(p('input_layernorm.weight'), C(`${s}input_layernorm.weight`));
    out.set(p('post_attention_layernorm.weight'), C(`${s}post_attention_layernorm.weight`));
    out.set(p('attention.query_key_value.weight'), C(`${s}self_attn.language_expert_query_key_value.weight`));
    opt(`${s}self_attn.language_expert_query_key_value.bias`, p('attention.query_key_value.bias'));
    out.set(p('attention.dense.weight'), C(`${s}self_attn.language_expert_dense.weight`));
    out.set(visualExpertNames.qkv(l) + '.weight', C(`${s}self_attn.vision_expert_query_key_value.weight`));
    opt(`${s}self_attn.vision_expert_query_key_value.bias`, visualExpertNames.qkv(l) + '.bias');
    out.set(visualExpertNames.dense(l) + '.weight', C(`${s}self_attn.vision_expert_dense.weight`));
    for (const [mine, theirs] of [['dense_h_to_4h_gate', 'gate_proj'], ['dense_h_to_4h', 'up_proj'], ['dense_4h_to_h', 'down_proj']] as const) {
      out.set(p(`mlp.${mine}.weight`), C(`${s}mlp.language_mlp.${theirs}.weight`));
      out.set(visualExpertNames.mlp(l, mine) + '.weight', C(`${s}mlp.vision_mlp.${theirs}.weight`));
    }
  }
  out.set(`${names.finalNorm}.weight`, C('model.norm.weight'));
  if (!opts.tied) out.set(`${names.lmHead}.weight`, C('lm_head.weight'));
  return out;
}
