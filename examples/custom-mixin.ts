/**
 * A new mixin in a few lines: a colour-histogram "image encoder" for a tiny LLaMA.
 *
 * Its encodeMedia hook turns ctx.media.pixels [B, 3, H, W] (values in [0, 1]) into a per-channel
 * histogram under a typed state key; its wordEmbedding chain hook adds a learned projection of it to
 * the embedding of every <image> token. Nothing else in the model changes.
 *
 * Run: pnpm exec tsx --conditions=@vlmix/source examples/custom-mixin.ts
 */
import * as tf from '@tensorflow/tfjs';
import { pathToFileURL } from 'node:url';
import { Mixin, createLlama, normal, ops, stateKey, type HookImpls, type Model } from '@vlmix/core';

/** The histogram [B, 3 * bins] under a typed key: ctx.state.get(HISTOGRAM) is a tf.Tensor2D. */
export const HISTOGRAM = stateKey<tf.Tensor2D>('colour.histogram');

export class ColourHistogramMixin extends Mixin {
  constructor(readonly opts: { imageTokenId: number; bins?: number }) {
    super();
  }
  get bins(): number {
    return this.opts.bins ?? 4;
  }
  override attach(model: Model): void {
    // component = this.name, so counts, freezing and removal treat it as this mixin's parameter.
    model.params.create(`${this.name}.proj.weight`, [model.config.hiddenSize, 3 * this.bins], normal(0.5), { component: this.name });
  }
  hooks(): HookImpls {
    return {
      // once per pass, before the embeddings: media -> features (chain: call next, add your key)
      encodeMedia: (features, ctx, next) => {
        const out = next(features, ctx);
        const px = ctx.media.pixels as tf.Tensor4D | undefined;
        if (!px) return out; // text-only pass, or a cached decode step
        const [b, c, h, w] = px.shape;
        const bin = tf.cast(tf.clipByValue(tf.floor(tf.mul(px, this.bins)), 0, this.bins - 1), 'int32');
        const hist = tf.mean(tf.oneHot(tf.reshape(bin, [b * c, h * w]), this.bins), 1); // [B*3, bins]
        return out.with(HISTOGRAM, tf.reshape(hist, [b, c * this.bins]), this.name);
      },
      wordEmbedding: (ids, ctx, next) => {
        const emb = next(ids, ctx);
        const feats = ctx.state.get(HISTOGRAM);
        if (!feats) return emb;
        const v = ops.linear(feats, ctx.param(`${this.name}.proj.weight`)); // [B, C]
        const at = tf.expandDims(tf.cast(tf.equal(ids, this.opts.imageTokenId), 'float32'), -1); // [B, T, 1]
        return tf.add(emb, tf.mul(at, tf.expandDims(v, 1)));
      },
    };
  }
}

export const IMAGE = 3;
export function buildModel(seed = 0): Model {
  const model = createLlama({ vocabSize: 16, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64, maxSeqLen: 16, seed });
  model.addMixin('colour', new ColourHistogramMixin({ imageTokenId: IMAGE, bins: 4 }));
  return model;
}

// ---------------------------------------------------------------- a task only the mixin can solve

/** Solid images of colour k (red, green, blue); the answer token after `<bos> <image>` is 10 + k. */
export function colourBatch(colours: number[]): { inputIds: tf.Tensor2D; pixels: tf.Tensor4D; targets: tf.Tensor2D } {
  const n = colours.length;
  const px = new Float32Array(n * 3 * 4 * 4);
  colours.forEach((k, i) => px.fill(0.9, (i * 3 + k) * 16, (i * 3 + k + 1) * 16));
  return {
    inputIds: tf.tensor2d(colours.map((k) => [1, IMAGE, 10 + k]), [n, 3], 'int32'),
    pixels: tf.tensor4d(px, [n, 3, 4, 4]),
    // logits[t] predicts token t+1; only the answer carries loss (-1 = ignored).
    targets: tf.tensor2d(colours.map((k) => [-1, 10 + k, -1]), [n, 3], 'int32'),
  };
}

/** Trains with AdamW for `steps` steps; returns the loss per step. */
export async function train(model: Model, steps: number): Promise<number[]> {
  const { Trainer } = await import('@vlmix/train');
  const batch = colourBatch([0, 1, 2, 0, 1, 2]);
  const trainer = new Trainer<typeof batch>({
    model, steps, log: 'silent', optimizer: { lr: 1e-2, weightDecay: 0 },
    data: { length: 1, get: () => batch },
    lossFn: (b) => model.loss({ inputIds: b.inputIds, media: { pixels: b.pixels } }, b.targets, { ignoreIndex: -1 }),
  });
  try {
    return (await trainer.train()).history.map((r) => r.loss);
  } finally {
    trainer.dispose();
    tf.dispose([batch.inputIds, batch.pixels, batch.targets]);
  }
}

async function main(): Promise<void> {
  const { useBackend } = await import('@vlmix/backend-native');
  console.log('backend:', (await useBackend('auto')).reason);
  const model = buildModel();
  const o = model.hookOrigins();
  console.log('encodeMedia:', o.global.encodeMedia!.join(' -> ')); // colour -> base
  console.log('wordEmbedding:', o.global.wordEmbedding!.join(' -> ')); // colour -> base
  console.log('layer 0 applyRotary:', o.layers[0]!.hooks.applyRotary!.join(' -> ')); // rope -> base
  console.log('parameters by component:', model.params.counts().byComponent);
  const losses = await train(model, 30);
  console.log(`loss ${losses[0]!.toFixed(3)} -> ${losses[losses.length - 1]!.toFixed(3)} in ${losses.length} steps`);
  model.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
