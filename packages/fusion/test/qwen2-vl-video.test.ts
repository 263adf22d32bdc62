// The qwen2-vl preset takes a video: 4 frames -> temporal patches of 2 -> a t = 2 grid, placeholders at
// <video>, M-RoPE positions from the video grid; an image and a video in one batch row.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CLIP_MEAN, CLIP_STD, makeImage, specialId, toFloatCHW } from '@vlmix/data';
import { qwen2Patchify } from '@vlmix/mixins';
import { createVlm } from '../src/index.js';

describe('qwen2-vl with video', () => {
  it('a 4-frame video and an image in one row; the video changes the output; gradients reach the tower', () => {
    const vlm = createVlm('qwen2-vl', { seed: 3 });
    const tok = vlm.tokenizer;
    const frame = (c: [number, number, number]) => toFloatCHW(makeImage(32, 32, c), CLIP_MEAN, CLIP_STD);
    const opts = { patchSize: 4, temporalPatchSize: 2, mergeSize: 2 };
    const img = qwen2Patchify([frame([200, 0, 0])], 3, 32, 32, opts);
    const vid = qwen2Patchify([frame([0, 200, 0]), frame([0, 180, 20]), frame([0, 160, 40]), frame([0, 140, 60])], 3, 32, 32, opts);
    expect(vid.grid).toEqual([2, 8, 8]);
    const [IMG, VID] = [specialId(tok, '<image>'), specialId(tok, '<video>')];
    const ids = [[specialId(tok, '<bos>'), ...new Array(16).fill(IMG), ...new Array(32).fill(VID), 65, 66]];
    const media = (v: Float32Array) => ({
      pixel_values: tf.tensor2d(img.patches, [64, 96]), imageGridThw: [img.grid],
      pixel_values_videos: tf.tensor2d(v, [128, 96]), videoGridThw: [vid.grid],
    });
    const a = vlm.model.forward({ inputIds: ids, media: media(vid.patches) }).logits;
    const other = qwen2Patchify([frame([0, 0, 200]), frame([0, 0, 200]), frame([0, 0, 200]), frame([0, 0, 200])], 3, 32, 32, opts);
    const b = vlm.model.forward({ inputIds: ids, media: media(other.patches) }).logits;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-4);
    const labels = tf.tensor2d([[...ids[0]!.slice(1), 67]], undefined, 'int32');
    const m = media(vid.patches);
    const { grads } = tf.variableGrads(() => vlm.model.loss({ inputIds: ids, media: m }, labels) as tf.Scalar);
    const key = Object.keys(grads).find((k) => k.includes('visual.patch_embed.proj.weight'))!;
    expect(tf.max(tf.abs(grads[key]!)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([a, b, labels, ...Object.values(grads)]);
    vlm.dispose();
  });
});
