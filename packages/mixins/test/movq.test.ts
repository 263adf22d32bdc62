// Emu3's MoVQ (image path) against a plain-torch re-implementation of HF Emu3VQVAE in eval mode
// (fixtures/emu3_movq): the 2-D encoder on repeated frames, causal Conv3d temporal downsampling, BatchNorm3d
// temporal blocks with running statistics, quant_conv, codes, and the SpatialNorm decoder; FD gradients, leaks, errors.
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Model, openSafetensorsFile, Rng } from '@vlmix/core';
import { assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { assertParity } from './helpers.js';
import { loadEmu3Movq, Movq, MovqTokenizerMixin, type MovqConfig } from '../src/image-tokenizer/movq.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIX: MovqConfig = { baseChannels: 8, channelMultiplier: [1, 2], numResBlocks: 1, latentChannels: 4, embedDim: 4, codebookSize: 16, attnResolutions: [1], hiddenSize: 16, numAttentionHeads: 2, temporalDownsampleFactor: 4, groups: 4 };
const rng = new Rng('movq-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);

describe('Emu3 MoVQ vs the torch reference (fixtures/emu3_movq)', () => {
  const dir = join(here, 'fixtures/emu3_movq');
  const io = loadFixtureSync(dir).io;
  const file = openSafetensorsFile(join(dir, 'weights.safetensors'));
  const model = new Model({ vocabSize: 32, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 16, seed: 1 });
  const mixin = model.addMixin('vq', new MovqTokenizerMixin({ movq: FIX }));
  const res = loadEmu3Movq(model, 'vq', file);
  const vq = mixin.vae;
  const px = io.toTensor('pixels');

  it('loads model.vqmodel.* with HF names (BatchNorm running statistics included): nothing missing', () => {
    expect(res.missing).toEqual([]);
    expect(res.unexpected).toEqual([]);
    expect(res.loaded).toContain('vq.encoder.time_res_stack.0.norm1.running_var');
    expect(res.loaded).toContain('vq.decoder.up_block.up.1.attn_norms.0.conv_y.weight');
    expect(res.loaded).toContain('vq.quant_conv.conv.weight');
  });

  it('encoder (2-D on repeated frames, temporal downsampling), z, codes (exact) and the decoded image (1e-4)', () => {
    expect(vq.encoderFrames(px).shape).toEqual([2, 4, 4, 4, 4]); // 4 repeated frames through the 2-D encoder
    assertParity(nchw(tf.squeeze(vq.encoderOutput(px), [1])), io.toTensor('encoder_out'), 'encoder output (frames 4 -> 1)');
    assertParity(nchw(vq.encodeContinuous(px)), io.toTensor('z'), 'z (after quant_conv)');
    expect(Array.from(vq.encode(px).dataSync())).toEqual(Array.from(io.toInt32('codes')));
    assertParity(vq.decode(io.toTensor('codes')), io.toTensor('recon'), 'decoded image (frame 0)');
  });
});

describe('MoVQ: gradients, leaks, errors', () => {
  const tiny: MovqConfig = { baseChannels: 4, channelMultiplier: [1, 2], numResBlocks: 1, latentChannels: 2, embedDim: 2, codebookSize: 8, attnResolutions: [1], hiddenSize: 8, numAttentionHeads: 2, temporalDownsampleFactor: 2, groups: 2, seed: 4 };

  it('finite-difference gradients through the encoder (Conv3d, BatchNorm3d) and the SpatialNorm decoder', () => {
    const v = new Movq(tiny);
    assertGradients((x) => tf.sum(tf.square(v.encodeContinuous(x))), [randn([1, 3, 4, 4], 0.5)], { label: 'encoder' });
    assertGradients((z) => tf.sum(tf.square(v.decodeLatent(z))), [randn([1, 2, 2, 2], 0.5)], { label: 'decoder' });
    v.dispose();
  });

  it('no leaks; running statistics are not trainable', () => {
    const v = new Movq(tiny);
    const x = randn([2, 3, 4, 4]);
    assertNoLeak(() => tf.tidy(() => v.decode(v.encode(x))));
    expect(v.variables().some((t) => t.name.includes('running'))).toBe(false);
    v.dispose();
  });

  it('errors name the argument', () => {
    expect(() => new Movq({ ...tiny, latentChannels: 3 })).toThrow(/movq.latentChannels: must equal embedDim 2/);
    expect(() => new Movq({ ...tiny, hiddenSize: 6 })).toThrow(/movq.hiddenSize: the middle attention runs on 8 channels/);
    expect(() => new Movq({ ...tiny, temporalDownsampleFactor: 3 })).toThrow(/temporalDownsampleFactor: expected a power of 2, got 3/);
    const v = new Movq(tiny);
    expect(() => v.encode(randn([1, 3, 5, 4]))).toThrow(/height and width must be positive multiples of 2 \(the tokenizer's downsampling factor\), got 5x4/);
    v.dispose();
  });
});
