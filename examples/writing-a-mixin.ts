/**
 * The worked example of docs/writing-a-mixin.md: two new mixins for a tiny LLaVA-style model.
 *
 * 1. `SharedImagePositionsMixin`, a position rule: every token of a run of image placeholders takes the
 *    position of the run's first token, text advances by one (so a 16-token image costs one position,
 *    as CogVLM's rule does for an image's interior). It serves the plain `positionIds` hook on the host,
 *    from the integer ids, and declares `overrides()` because RoPE already serves that hook. Between
 *    decoding steps it keeps each row's last position in the KV cache's `meta`.
 * 2. `QueryPoolerMixin`, a Q-Former variant: `numQueries` learned queries cross-attend once to the
 *    vision features (one head, pre-LayerNorm, no self-attention: a one-layer "abstractor") and a linear
 *    layer maps them to the LM width. It extends `ImageTokenMixin`, which places the tokens at the
 *    `<image>` placeholders; the module is built by `this.submodule` on attach.
 *
 * Run: pnpm exec tsx --conditions=@vlmix/source examples/writing-a-mixin.ts
 */
import * as tf from '@tensorflow/tfjs';
import { pathToFileURL } from 'node:url';
import {
  Mixin, ParamScope, createLlama, fail, normal, ones, ops, zeros,
  type HookImpls, type HookName, type HostContext, type Model, type ParamOverrides,
} from '@vlmix/core';
import { ImageTokenMixin, VisionEncoderMixin } from '@vlmix/mixins';

// ---------------------------------------------------------------- 1. a position encoding

/** Where a row stopped: its last position and whether its last token was a placeholder. */
export interface RowEnd {
  pos: number;
  image: boolean;
}

/**
 * One row's positions: a run of `image` ids shares the position of its first token; every other token
 * advances by one. `prev` is where the row stopped in an earlier pass (decoding with a cache).
 */
export function sharedImagePositions(row: ArrayLike<number>, image: number, prev: RowEnd = { pos: -1, image: false }): Int32Array {
  const out = new Int32Array(row.length);
  let p = prev.pos;
  for (let i = 0; i < row.length; i++) {
    const continuesRun = row[i] === image && (i > 0 ? row[i - 1] === image : prev.image);
    if (!continuesRun) p++;
    out[i] = p;
  }
  return out;
}

export class SharedImagePositionsMixin extends Mixin {
  constructor(readonly imageTokenId: number) {
    super();
    if (!Number.isInteger(imageTokenId) || imageTokenId < 0) fail(`SharedImagePositionsMixin: imageTokenId must be a token id, got ${JSON.stringify(imageTokenId)}`);
  }

  /** RoPE (createLlama's `rope`) serves positionIds already: these ids replace its sequential ones. */
  override overrides(): HookName[] {
    return ['positionIds'];
  }

  /** cache.meta key: per row, the last position and whether the last token was a placeholder. */
  private get metaKey(): string {
    return `${this.name}.last`;
  }

  hooks(): HookImpls {
    return {
      // host stage, once per batch: integer ids in, an int32 tensor out (uploaded, never read back)
      positionIds: (host: HostContext) => {
        const meta = host.cacheMeta;
        const last = host.pastLength > 0 ? (meta?.get(this.metaKey) as RowEnd[] | undefined) : undefined;
        const data = new Int32Array(host.batch * host.seqLen);
        const ends: RowEnd[] = [];
        for (let b = 0; b < host.batch; b++) {
          const row = host.row(b);
          const p = sharedImagePositions(row, this.imageTokenId, last?.[b] ?? { pos: host.pastLength - 1, image: false });
          data.set(p, b * host.seqLen);
          ends.push({ pos: p[p.length - 1]!, image: row[row.length - 1] === this.imageTokenId });
        }
        meta?.set(this.metaKey, ends);
        return tf.tensor2d(data, [host.batch, host.seqLen], 'int32');
      },
    };
  }
}

// ---------------------------------------------------------------- 2. a Q-Former variant

export interface QueryPoolerOptions {
  imageTokenId: number;
  /** Width of the vision features. */
  visionSize: number;
  /** Learned queries = image tokens per image. */
  numQueries: number;
  layerNormEps?: number;
}

/**
 * The module: parameters under `<prefix>` with their own names (a ParamScope), math as plain tf ops.
 *   q = LN_q(queries) Wq^T,  k = LN_kv(f) Wk^T,  v = LN_kv(f) Wv^T
 *   pooled = queries + softmax(q k^T / sqrt(C)) v Wo^T        [B, Q, Cv]
 *   tokens = pooled Wp^T + bp                                 [B, Q, C_lm]
 */
export class QueryPooler {
  readonly scope: ParamScope;

  constructor(params: Model['params'], prefix: string, component: string, readonly o: Required<QueryPoolerOptions>, lmSize: number) {
    const s = (this.scope = new ParamScope(params, prefix, component));
    const C = o.visionSize;
    s.create('queries', [o.numQueries, C], normal(0.02));
    for (const ln of ['ln_q', 'ln_kv']) {
      s.create(`${ln}.weight`, [C], ones);
      s.create(`${ln}.bias`, [C], zeros);
    }
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) s.create(`attn.${p}.weight`, [C, C], normal(0.02));
    s.create('proj.weight', [lmSize, C], normal(0.02));
    s.create('proj.bias', [lmSize], zeros);
  }

  /** features [B, N, Cv] -> image tokens [B, Q, C_lm]. `params` overrides weights by local name (gradient checks). */
  forward(features: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    const { visionSize: C, numQueries: Q, layerNormEps: eps } = this.o;
    if (features.rank !== 3 || features.shape[2] !== C) fail(`features: expected shape [B, N, ${C}], got [${features.shape.join(', ')}]`);
    const p = this.scope.getter(params);
    return tf.tidy(() => {
      const b = features.shape[0]!;
      const queries = tf.tile(tf.expandDims(p('queries'), 0), [b, 1, 1]); // [B, Q, C]
      const lnQ = ops.layerNorm(queries, p('ln_q.weight'), p('ln_q.bias'), eps);
      const lnF = ops.layerNorm(features, p('ln_kv.weight'), p('ln_kv.bias'), eps);
      const head = (x: tf.Tensor, w: string) => tf.expandDims(ops.linear(x, p(`attn.${w}.weight`)), 1); // [B, 1, T, C]: one head
      const ctx = ops.attention(head(lnQ, 'q_proj'), head(lnF, 'k_proj'), head(lnF, 'v_proj'), { causal: false });
      const pooled = tf.add(queries, ops.linear(tf.reshape(ctx, [b, Q, C]), p('attn.out_proj.weight')));
      return ops.linear(pooled, p('proj.weight'), p('proj.bias'));
    });
  }
}

export class QueryPoolerMixin extends ImageTokenMixin {
  readonly o: Required<QueryPoolerOptions>;
  /** Built when the mixin is attached; `this.pooler` before that is an error saying so. */
  private readonly mod = this.submodule('query pooler', (m) => new QueryPooler(m.params, `${this.name}.`, this.name, this.o, m.config.hiddenSize));

  constructor(opts: QueryPoolerOptions) {
    super({ imageTokenId: opts.imageTokenId });
    this.o = { layerNormEps: 1e-5, ...opts };
    for (const k of ['visionSize', 'numQueries'] as const) {
      if (!Number.isInteger(this.o[k]) || this.o[k] <= 0) fail(`queryPooler.${k}: expected a positive integer, got ${JSON.stringify(this.o[k])}`);
    }
  }

  get pooler(): QueryPooler {
    return this.mod.get();
  }

  override attach(model: Model): void {
    this.checkTokenId(model);
  }

  /** Called by ImageTokenMixin's encodeMedia hook with VISION_FEATURES. */
  imageTokens(features: tf.Tensor, params?: ParamOverrides): tf.Tensor {
    return this.pooler.forward(features, params);
  }
}

// ---------------------------------------------------------------- a model using both

export const IMAGE = 300;
export const QUERIES = 4;

/** A tiny LLaMA + ViT + QueryPooler (4 image tokens) + shared image positions. */
export function buildModel(seed = 0): Model {
  const model = createLlama({ vocabSize: 320, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxSeqLen: 64, seed });
  model.addMixin('vision', new VisionEncoderMixin({
    vit: { imageSize: 16, patchSize: 8, hiddenSize: 24, numLayers: 1, numHeads: 2, intermediateSize: 48 }, selectLayer: -1,
  }));
  model.addMixin('pooler', new QueryPoolerMixin({ imageTokenId: IMAGE, visionSize: 24, numQueries: QUERIES }));
  model.addMixin('positions', new SharedImagePositionsMixin(IMAGE));
  return model;
}

async function main(): Promise<void> {
  const { useBackend } = await import('@vlmix/backend-native');
  console.log('backend:', (await useBackend('auto')).reason);
  const model = buildModel();
  const g = model.hookOrigins().global;
  for (const h of ['tokenTypes', 'positionIds', 'hostInputs', 'encodeMedia', 'wordEmbedding'] as const) console.log(h.padEnd(14), g[h]!.join(' -> '));
  const ids = [[1, IMAGE, IMAGE, IMAGE, IMAGE, 7, 8, 9]];
  const prepared = model.prepareInputs({ inputIds: ids });
  console.log('positions', Array.from(prepared.positionIds.dataSync())); // 0 1 1 1 1 2 3 4
  const { logits } = model.forward({ inputIds: ids, media: { pixels: tf.randomUniform([1, 3, 16, 16], 0, 1, 'float32', 1) }, prepared });
  console.log('logits', logits.shape);
  model.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
