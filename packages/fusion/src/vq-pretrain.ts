/** Type D's image tokenizer (the VQ-VAE) trains on its own objective (reconstruction + codebook +
 *  commitment) before the LM sees any code. */
import * as tf from '@tensorflow/tfjs';
import { fail, Rng } from '@vlmix/core';
import { vqTrainStep } from '@vlmix/mixins';
import type { RgbImage } from '@vlmix/data';
import type { Vlm } from './vlm.js';

export interface VqPretrainOptions {
  steps: number;
  batchSize?: number;
  lr?: number;
  seed?: number | string;
  onStep?: (step: number, loss: { loss: number; reconLoss: number }) => void;
}

/** Images by index, decoded when asked (e.g. folder data): the tokenizer draws only its batches. */
export interface ImageList {
  readonly length: number;
  get(index: number): RgbImage;
}

/** The pre-training loop, one yield per step (so the async form can let the event loop run). */
function* pretrainSteps(vlm: Vlm, imageList: RgbImage[] | ImageList, opts: VqPretrainOptions, history: { loss: number; reconLoss: number }[]): Generator<void> {
  const images = Array.isArray(imageList) ? { length: imageList.length, get: (i: number) => imageList[i]! } : imageList;
  const vq = vlm.vq;
  if (!vq) fail(`pretrainImageTokenizer: model type ${vlm.type} has no VQ image tokenizer (only type D does)`);
  if (images.length === 0) fail(`pretrainImageTokenizer: images must not be empty`);
  const bs = Math.min(opts.batchSize ?? 32, images.length);
  const rng = new Rng(`${opts.seed ?? 0}/vq-pretrain`);
  const params = vlm.model.params.list().filter((p) => p.component === 'vq');
  const setTrainable = (on: boolean) => params.forEach((p) => { p.trainable = on; p.variable.trainable = on; });
  const sample = () => Array.from({ length: bs }, () => images.get(rng.int(images.length)));
  const optimizer = tf.train.adam(opts.lr ?? 2e-3);
  setTrainable(true);
  try {
    const init = vlm.pixels(Array.from({ length: Math.min(images.length, 256) }, (_, i) => images.get(i)));
    vq.vae.initCodebookFromData(init, opts.seed ?? 0);
    init.dispose();
    for (let s = 0; s < opts.steps; s++) {
      const px = vlm.pixels(sample());
      const r = vqTrainStep(vq.vae, optimizer, px);
      px.dispose();
      history.push({ loss: r.loss, reconLoss: r.reconLoss });
      opts.onStep?.(s, r);
      yield;
    }
  } finally {
    setTrainable(false);
    optimizer.dispose();
  }
}

export function pretrainImageTokenizer(vlm: Vlm, imageList: RgbImage[] | ImageList, opts: VqPretrainOptions): { loss: number; reconLoss: number }[] {
  const history: { loss: number; reconLoss: number }[] = [];
  for (const _ of pretrainSteps(vlm, imageList, opts, history)); // eslint-disable-line @typescript-eslint/no-unused-vars
  return history;
}

/** The same steps, returning to the event loop after each one (signal handlers and RPC keep running). */
export async function pretrainImageTokenizerAsync(vlm: Vlm, imageList: RgbImage[] | ImageList, opts: VqPretrainOptions): Promise<{ loss: number; reconLoss: number }[]> {
  const history: { loss: number; reconLoss: number }[] = [];
  for (const _ of pretrainSteps(vlm, imageList, opts, history)) await new Promise((r) => setImmediate(r)); // eslint-disable-line @typescript-eslint/no-unused-vars
  return history;
}

/** @deprecated renamed: "tokenizer" means a text tokenizer; use pretrainImageTokenizer. */
export const pretrainTokenizer = pretrainImageTokenizer;
