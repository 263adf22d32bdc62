/**
 * LoRA (Hu et al. 2021) as a mixin on the `linear` chain hook, after SAT `lora2` / HF PEFT `LoraLayer`:
 *   y = next(name, x) + (dropout(x) @ A^T @ B^T) * (alpha / r)
 * for every targeted linear. Parameters (component = the mixin's name):
 *   `<linear>.lora_A.weight` [r, in]  kaiming-uniform, i.e. U(-1/sqrt(in), 1/sqrt(in)) like PyTorch
 *   `<linear>.lora_B.weight` [out, r] zeros (so a fresh LoRA is the identity)
 * `merge()` folds scale * B @ A into `<linear>.weight` and disables the LoRA path; `unmerge()` undoes it.
 * Removing the mixin (`removeMixin`) removes its effect, merged or not; `mergeAndUnload()` (PEFT's
 * merge_and_unload) instead keeps the adapted weights and drops the adapter: a plain model to export.
 */
import * as tf from '@tensorflow/tfjs';
import {
  Mixin,
  fail,
  globToRegExp,
  ops,
  type ForwardContext,
  type HookFn,
  type HookImpls,
  type HookName,
  type Model,
} from '@vlmix/core';

export interface LoraOptions {
  /** Rank. */
  r: number;
  /** Scale numerator: the update is multiplied by alpha / r. Default r (scale 1). */
  alpha?: number;
  /** Globs over linear base names, e.g. 'transformer.layers.*.attention.query_key_value' (`*` = one segment, `**` = any). */
  targets: string[];
  /** Dropout on the LoRA input while training (default 0). */
  dropout?: number;
  /** Restrict to these layer indices (default: every layer the targets match). */
  layers?: number[];
  /** Seed for the dropout masks (default 0). */
  seed?: number;
}

/** Base names that are rank-2 weights but never routed through the `linear` hook. */
const NOT_LINEAR = new Set(['transformer.word_embeddings', 'transformer.position_embeddings', 'lm_head']);

interface Target {
  base: string;
  inF: number;
  outF: number;
}

export class LoraMixin extends Mixin {
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly targetGlobs: string[];
  readonly dropout: number;
  readonly layers: Set<number> | null;
  private readonly seed: number;
  private targetsByName = new Map<string, Target>();
  private mergedFlag = false;
  private dropoutCalls = 0;

  constructor(opts: LoraOptions) {
    super();
    this.recordOptions(opts);
    if (!opts || typeof opts !== 'object') fail(`LoraMixin: expected options {r, alpha, targets}, got ${JSON.stringify(opts)}`);
    if (!Number.isInteger(opts.r) || opts.r <= 0) fail(`lora.r: expected a positive integer, got ${JSON.stringify(opts.r)}`);
    this.r = opts.r;
    this.alpha = opts.alpha ?? opts.r;
    if (!(typeof this.alpha === 'number' && Number.isFinite(this.alpha))) fail(`lora.alpha: expected a finite number, got ${JSON.stringify(opts.alpha)}`);
    this.scale = this.alpha / this.r;
    if (!Array.isArray(opts.targets) || opts.targets.length === 0 || opts.targets.some((t) => typeof t !== 'string' || !t)) {
      fail(`lora.targets: expected a non-empty array of globs over linear names, got ${JSON.stringify(opts.targets)}`);
    }
    this.targetGlobs = [...opts.targets];
    this.dropout = opts.dropout ?? 0;
    if (!(this.dropout >= 0 && this.dropout < 1)) fail(`lora.dropout: expected a number in [0, 1), got ${JSON.stringify(opts.dropout)}`);
    if (opts.layers != null) {
      if (!Array.isArray(opts.layers) || opts.layers.some((l) => !Number.isInteger(l) || l < 0)) {
        fail(`lora.layers: expected an array of layer indices, got ${JSON.stringify(opts.layers)}`);
      }
      this.layers = new Set(opts.layers);
    } else this.layers = null;
    this.seed = opts.seed ?? 0;
  }

  /** Linear base names this LoRA adapts (after attach). */
  get targets(): string[] {
    return [...this.targetsByName.keys()];
  }

  get merged(): boolean {
    return this.mergedFlag;
  }

  override appliesTo(_hook: HookName, layer: number): boolean {
    return this.layers == null || this.layers.has(layer);
  }

  override attach(model: Model): void {
    const cfg = model.config;
    if (this.layers) {
      for (const l of this.layers) if (l >= cfg.numLayers) fail(`lora.layers: layer ${l} out of range; the model has ${cfg.numLayers} layers`);
    }
    const linears: Target[] = [];
    for (const p of model.params.list()) {
      if (!p.name.endsWith('.weight') || p.variable.rank !== 2) continue;
      const base = p.name.slice(0, -'.weight'.length);
      if (NOT_LINEAR.has(base) || base.endsWith('.lora_A') || base.endsWith('.lora_B')) continue;
      linears.push({ base, outF: p.variable.shape[0]!, inF: p.variable.shape[1]! });
    }
    const layerOf = (base: string): number | null => {
      const m = /^transformer\.layers\.(\d+)\./.exec(base);
      return m ? Number(m[1]) : null;
    };
    const chosen = new Map<string, Target>();
    for (const glob of this.targetGlobs) {
      const re = globToRegExp(glob);
      const hits = linears.filter((t) => re.test(t.base));
      if (hits.length === 0) {
        const some = linears.slice(0, 8).map((t) => t.base).join(', ');
        fail(`lora.targets: '${glob}' matches no linear layer; linear names look like: ${some}`);
      }
      for (const t of hits) {
        const l = layerOf(t.base);
        if (this.layers && l != null && !this.layers.has(l)) continue;
        chosen.set(t.base, t);
      }
    }
    if (chosen.size === 0) fail(`lora.layers: targets ${JSON.stringify(this.targetGlobs)} match nothing in layers ${JSON.stringify([...this.layers!])}`);
    for (const t of chosen.values()) {
      // One LoRA per linear: a second one on the same target is a mixin conflict, not a name clash.
      const a = `${t.base}.lora_A.weight`;
      if (model.params.has(a)) {
        const other = model.params.param(a).component;
        fail(`mixin conflict: LoRA mixins '${other}' and '${this.name}' both adapt '${t.base}'; a linear takes one LoRA. ` +
          `Remove '${other}' first, or narrow the targets / layers of '${this.name}'.`);
      }
    }
    for (const t of chosen.values()) {
      model.params.create(`${t.base}.lora_A.weight`, [this.r, t.inF], { kind: 'kaimingUniform', fanIn: t.inF }, { component: this.name });
      model.params.create(`${t.base}.lora_B.weight`, [t.outF, this.r], { kind: 'constant', value: 0 }, { component: this.name });
    }
    this.targetsByName = chosen;
  }

  override detach(_model: Model): void {
    if (this.mergedFlag && !this.unloading) this.unmerge();
  }

  private unloading = false;

  /**
   * Folds the adapter into the base weights (if not merged yet) and removes this mixin from its model,
   * keeping the merged weights: the model then computes what the adapted model did, with no LoRA
   * parameters or hooks left (PEFT's merge_and_unload). Returns the model.
   */
  mergeAndUnload(): Model {
    const model = this.requireModel('mergeAndUnload');
    if (!this.mergedFlag) this.merge();
    this.unloading = true;
    try {
      model.removeMixin(this.name);
    } finally {
      this.unloading = false;
      this.mergedFlag = false;
    }
    return model;
  }

  /** The LoRA update for one target: x [..., in] -> [..., out] (already scaled). */
  delta(name: string, x: tf.Tensor, ctx: { param(name: string): tf.Tensor; training: boolean }): tf.Tensor {
    return tf.tidy(() => {
      let xin = x;
      if (this.dropout > 0 && ctx.training) xin = tf.dropout(x, this.dropout, undefined, this.seed * 100003 + this.dropoutCalls++);
      const a = ctx.param(`${name}.lora_A.weight`);
      const b = ctx.param(`${name}.lora_B.weight`);
      return tf.mul(ops.linear(ops.linear(xin, a), b), this.scale);
    });
  }

  hooks(): HookImpls {
    return {
      linear: (name: string, x: tf.Tensor, ctx: ForwardContext, next: HookFn<'linear'>): tf.Tensor => {
        const y = next(name, x, ctx);
        if (this.mergedFlag || !this.targetsByName.has(name)) return y;
        return tf.tidy(() => tf.add(y, this.delta(name, x, ctx)));
      },
    };
  }

  private requireModel(what: string): Model {
    if (!this.attached) fail(`lora.${what}: the mixin is not attached to a model`);
    return this.model;
  }

  /** scale * B @ A for one target, [out, in]. */
  private update(model: Model, base: string): tf.Tensor {
    return tf.tidy(() => tf.mul(tf.matMul(model.param(`${base}.lora_B.weight`), model.param(`${base}.lora_A.weight`)), this.scale));
  }

  /** Folds scale * B @ A into each target's base weight; the LoRA path is then skipped. */
  merge(): void {
    const model = this.requireModel('merge');
    if (this.mergedFlag) fail(`lora.merge: mixin '${this.name}' is already merged; call unmerge() first`);
    for (const base of this.targetsByName.keys()) {
      const w = model.param(`${base}.weight`);
      tf.tidy(() => w.assign(tf.add(w, this.update(model, base))));
    }
    this.mergedFlag = true;
  }

  /** Subtracts scale * B @ A from each target's base weight and re-enables the LoRA path. */
  unmerge(): void {
    const model = this.requireModel('unmerge');
    if (!this.mergedFlag) fail(`lora.unmerge: mixin '${this.name}' is not merged`);
    for (const base of this.targetsByName.keys()) {
      const w = model.param(`${base}.weight`);
      tf.tidy(() => w.assign(tf.sub(w, this.update(model, base))));
    }
    this.mergedFlag = false;
  }
}

/** Freezes every parameter except LoRA ones (`**.lora_A.weight`, `**.lora_B.weight`); returns the trainable names. */
export function loraOnly(model: Model): string[] {
  const lora = model.params.names().filter((n) => /\.lora_[AB]\.weight$/.test(n));
  if (lora.length === 0) fail(`loraOnly: the model has no LoRA parameters; add a LoraMixin first (mixins: ${model.mixinNames().join(', ') || '(none)'})`);
  model.params.freeze('**');
  model.params.unfreeze(['**.lora_A.weight', '**.lora_B.weight']);
  return lora;
}

/**
 * HF PEFT name -> vlmix name for a LoRA tensor whose base linear maps one-to-one (e.g. GPT-2 `c_attn`,
 * LLaMA `o_proj`/`gate_proj`/`up_proj`/`down_proj`). `baseMap` maps the HF linear base (without
 * `base_model.model.`) to the vlmix one; returns null for names that are not LoRA tensors.
 * Example: `base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight` with
 * baseMap('model.layers.0.self_attn.o_proj') = 'transformer.layers.0.attention.dense'
 * -> `transformer.layers.0.attention.dense.lora_A.weight`.
 */
export function peftLoraName(peftName: string, baseMap: (hfBase: string) => string | null): string | null {
  const m = /^(?:base_model\.model\.)?(.+)\.(lora_[AB])(?:\.default)?\.weight$/.exec(peftName);
  if (!m) return null;
  const base = baseMap(m[1]!);
  return base == null ? null : `${base}.${m[2]}.weight`;
}

const LLAMA_LINEARS: Record<string, string> = {
  'self_attn.o_proj': 'attention.dense',
  'mlp.gate_proj': 'mlp.dense_h_to_4h_gate',
  'mlp.up_proj': 'mlp.dense_h_to_4h',
  'mlp.down_proj': 'mlp.dense_4h_to_h',
};

/** baseMap for HF LLaMA (`model.layers.<l>.<module>`), for use with peftLoraName. q/k/v are fused in vlmix: see fuseQkvLora. */
export function llamaLoraBase(hfBase: string): string | null {
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfBase);
  if (!m) return null;
  const local = LLAMA_LINEARS[m[2]!];
  return local ? `transformer.layers.${m[1]}.${local}` : null;
}

/**
 * Exact conversion of separate q/k/v LoRAs (rank r each) into one LoRA on the fused query_key_value
 * linear of rank 3r: A = [Aq; Ak; Av] ([3r, in]), B = blockdiag(Bq, Bk, Bv) ([outQ + 2 outKv, 3r]).
 * Use a LoraMixin of rank 3r (and alpha 3 * alpha_peft, so the scale is unchanged) for those targets.
 */
export function fuseQkvLora(
  a: [tf.Tensor, tf.Tensor, tf.Tensor],
  b: [tf.Tensor, tf.Tensor, tf.Tensor],
): { loraA: tf.Tensor; loraB: tf.Tensor } {
  return tf.tidy(() => {
    const r = a[0].shape[0]!;
    a.forEach((t, i) => {
      if (t.rank !== 2 || t.shape[0] !== r || t.shape[1] !== a[0].shape[1]) fail(`fuseQkvLora: a[${i}]: expected shape [${r}, ${a[0].shape[1]}], got [${t.shape}]`);
    });
    b.forEach((t, i) => {
      if (t.rank !== 2 || t.shape[1] !== r) fail(`fuseQkvLora: b[${i}]: expected shape [out, ${r}], got [${t.shape}]`);
    });
    const loraA = tf.concat(a, 0);
    const rows = b.map((t, i) => {
      const parts = [0, 1, 2].map((j) => (j === i ? t : tf.zeros([t.shape[0]!, r])));
      return tf.concat(parts, 1);
    });
    return { loraA, loraB: tf.concat(rows, 0) };
  });
}
