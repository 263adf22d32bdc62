// Chameleon's VQGAN against a plain-torch re-implementation of HF ChameleonVQVAE + taming's decoder
// (fixtures/chameleon_vqgan): encoder, codes, reconstruction, losses and the input gradient through the
// straight-through estimator; loading HF's encoder-only names; FD gradients, leaks, errors.
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Model, openSafetensorsFile, readSafetensors, Rng, writeSafetensors } from '@vlmix/core';
import { assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { assertParity } from './helpers.js';
import { IMAGE_CODES, nearestResize } from '../src/image-tokenizer/vq.js';
import { loadChameleonVqgan, Vqgan, VqganTokenizerMixin, type VqganConfig } from '../src/image-tokenizer/vqgan.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIX: VqganConfig = { baseChannels: 8, channelMultiplier: [1, 2], numResBlocks: 1, latentChannels: 8, embedDim: 6, numEmbeddings: 16, resolution: 16, attnResolutions: [8], groups: 4 };
const rng = new Rng('vqgan-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
const lm = () => new Model({ vocabSize: 32, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 16, seed: 1 });
const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);

describe('Chameleon VQGAN vs the torch reference (fixtures/chameleon_vqgan)', () => {
  const dir = join(here, 'fixtures/chameleon_vqgan');
  const io = loadFixtureSync(dir).io;
  const file = openSafetensorsFile(join(dir, 'weights.safetensors'));
  const model = lm();
  const mixin = model.addMixin('vq', new VqganTokenizerMixin({ vqgan: FIX }));
  const res = loadChameleonVqgan(model, 'vq', file);
  const vq = mixin.vae;
  const px = io.toTensor('pixels');

  it('loads model.vqmodel.* (HF names + the taming decoder): every tensor, nothing missing', () => {
    expect(res.missing).toEqual([]);
    expect(res.loaded.length).toBe(file.names().length);
    expect(res.loaded).toContain('vq.encoder.down.1.attn.0.proj_out.weight');
    expect(res.loaded).toContain('vq.decoder.up.1.upsample.conv.weight');
  });

  it('encoder output, latents, codes (exact), reconstruction and losses', () => {
    assertParity(nchw(vq.encoderOutput(px)), io.toTensor('encoder_out'), 'encoder output');
    const z = vq.encodeContinuous(px);
    assertParity(nchw(z), io.toTensor('z'), 'z (quant_conv)');
    expect(Array.from(vq.encode(px).dataSync())).toEqual(Array.from(io.toInt32('codes')));
    const l = vq.loss(px);
    assertParity(l.recon, io.toTensor('recon'), 'reconstruction');
    assertParity(tf.reshape(tf.add(l.codebookLoss, l.commitmentLoss), [1]), io.toTensor('quant_loss'), 'quantizer loss (legacy weighting)');
    assertParity(tf.reshape(l.loss, [1]), io.toTensor('total_loss'), 'total loss');
    // decoding the codes gives the reconstruction
    assertParity(vq.decode(vq.encode(px)), io.toTensor('recon'), 'decode(encode(x))');
  });

  it('the input gradient of the full loss through the straight-through estimator equals torch autograd', () => {
    const g = tf.grad((x: tf.Tensor) => vq.loss(x).loss)(px);
    assertParity(g, io.toTensor('grad_pixels'), 'dL/dpixels');
  });

  it('encodeMedia writes the codes; a checkpoint without the decoder (HF) loads, one without encoder tensors does not', () => {
    const codes = model.encodeMedia({ pixels: px }, 2).require(IMAGE_CODES, 'test');
    expect(Array.from(codes.dataSync())).toEqual(Array.from(io.toInt32('codes')));
    const pick = (keep: (n: string) => boolean) => readSafetensors(writeSafetensors(Object.fromEntries(file.names().filter(keep).map((n) => [n, file.toTensor(n)]))));
    const m2 = lm();
    m2.addMixin('vq', new VqganTokenizerMixin({ vqgan: FIX }));
    const r2 = loadChameleonVqgan(m2, 'vq', pick((n) => !n.includes('.decoder.')));
    expect(r2.missing.every((n) => n.startsWith('vq.decoder.'))).toBe(true);
    expect(r2.missing.length).toBeGreaterThan(0);
    expect(() => loadChameleonVqgan(m2, 'vq', pick((n) => !n.includes('encoder.mid.attn_1.q.')))).toThrow(/2 tensor\(s\) missing from the file \(prefix 'model.vqmodel.'\): vq.encoder.mid.attn_1.q.bias/);
    m2.dispose();
  });
});

describe('VQGAN: gradients, leaks, errors', () => {
  const tiny: VqganConfig = { baseChannels: 4, channelMultiplier: [1, 2], numResBlocks: 1, latentChannels: 4, embedDim: 3, numEmbeddings: 8, resolution: 8, attnResolutions: [4], groups: 2, seed: 3 };

  it('finite-difference gradients through GroupNorm, attention, the (0,1,0,1) downsampling and the upsampling', () => {
    const v = new Vqgan(tiny);
    assertGradients((x) => tf.sum(tf.square(v.encoderOutput(x))), [randn([1, 3, 8, 8], 0.5)], { label: 'encoder' });
    assertGradients((z) => tf.sum(tf.square(v.decodeLatent(z))), [randn([1, 4, 4, 3], 0.5)], { label: 'decoder' });
    v.dispose();
  });

  it('no leaks in encode, decode and loss', () => {
    const v = new Vqgan(tiny);
    const x = randn([2, 3, 8, 8]);
    assertNoLeak(() => tf.tidy(() => v.decode(v.encode(x))));
    assertNoLeak(() => {
      const l = v.loss(x);
      return [l.loss, l.reconLoss, l.recon, l.zq, l.codes, l.codebookLoss, l.commitmentLoss];
    });
    v.dispose();
  });

  it('nearestResize: the values of resizeNearestNeighbor (torch nearest), and gradients that match finite differences', () => {
    const x = randn([2, 3, 5, 2]);
    for (const [h, w] of [[6, 10], [3, 5], [7, 4]] as const) {
      expect(Array.from(nearestResize(x, h, w).dataSync())).toEqual(Array.from(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [h, w]).dataSync()));
    }
    assertGradients((t) => tf.sum(tf.mul(nearestResize(t, 6, 10), tf.range(0, 2 * 6 * 10 * 2).reshape([2, 6, 10, 2]))), [x], { label: 'nearestResize' });
  });

  it('errors name the argument', () => {
    expect(() => new Vqgan({ ...tiny, groups: 3 })).toThrow(/vqgan.groups: 3 must divide every level's channels, 4 x 1 = 4 is not a multiple/);
    expect(() => new Vqgan({ ...tiny, channelMultiplier: [] })).toThrow(/vqgan.channelMultiplier: expected positive integers, one per level/);
    const v = new Vqgan(tiny);
    expect(() => v.encode(randn([1, 3, 7, 8]))).toThrow(/height and width must be positive multiples of 2 \(the tokenizer's downsampling factor\), got 7x8/);
    expect(() => v.decode(tf.tensor3d([[[9]]], [1, 1, 1], 'int32'))).toThrow(/codes: expected values in \[0, 8\), got values in \[9, 9\]/);
    expect(() => new Vqgan({ ...tiny, decoder: false }).decodeLatent(randn([1, 4, 4, 3]))).toThrow(/built without a decoder/);
    v.dispose();
  });
});
