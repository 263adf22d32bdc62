// Fuyu's patch embedding: patch order and flattening as HF FuyuImageProcessor.patchify_image (rows, columns,
// channels), the linear projection, a newline after each row; checked against loops written here and
// against HF's patchify_image + Linear run in torch (fixtures/fuyu_patches, scripts/fixtures/fuyu_patches.py).
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createLlama } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { fileURLToPath } from 'node:url';
import { FuyuPatchMixin, fuyuPatchify, fuyuTokens } from '../src/index.js';

describe('Fuyu patches vs HF patchify_image + vision_embed_tokens in torch', () => {
  it('patches of a non-square image and the token layout (rows of patches, newline after each)', () => {
    const fx = loadFixtureSync(fileURLToPath(new URL('./fixtures/fuyu_patches', import.meta.url)));
    const w = fx.weights!;
    const patches = fuyuPatchify(fx.io.toTensor('pixels'), 4); // [2, 2, 3, 48]
    assertClose(tf.reshape(patches, [2, 6, 48]), fx.io.toTensor('patches'), { rtol: 0, atol: 0, name: 'patches' });
    const tokens = fuyuTokens(patches, w.toTensor('vision_embed_tokens.weight'), w.toTensor('vision_embed_tokens.bias'), w.toTensor('image_newline'));
    assertClose(tokens, fx.io.toTensor('tokens'), { rtol: 1e-5, atol: 1e-5, name: 'tokens' });
  });
});

describe('Fuyu patches', () => {
  it('patchify: patch (i, j) holds pixels (i*p + r, j*p + c) for channel k at index (r*p + c)*C + k', () => {
    const [b, C, H, W, p] = [2, 3, 4, 6, 2];
    const px = tf.randomNormal([b, C, H, W], 0, 1, 'float32', 1);
    const got = fuyuPatchify(px, p).arraySync() as number[][][][];
    const v = px.arraySync() as number[][][][];
    for (let n = 0; n < b; n++) for (let i = 0; i < H / p; i++) for (let j = 0; j < W / p; j++) {
      for (let r = 0; r < p; r++) for (let c = 0; c < p; c++) for (let k = 0; k < C; k++) {
        expect(got[n]![i]![j]![(r * p + c) * C + k]).toBe(v[n]![k]![i * p + r]![j * p + c]);
      }
    }
    expect(() => fuyuPatchify(tf.zeros([1, 3, 5, 6]), 2)).toThrow('fuyu: image 5x6 is not a multiple of the patch size 2; pad it to 6x6 first (as FuyuImageProcessor)');
    px.dispose();
  });

  it('tokens: W x + b per patch, row by row, the newline vector after each row; gradients by finite differences', () => {
    const patches = tf.randomNormal([1, 2, 3, 4], 0, 1, 'float32', 2);
    const w = tf.randomNormal([5, 4], 0, 1, 'float32', 3);
    const bias = tf.randomNormal([5], 0, 1, 'float32', 4);
    const nl = tf.randomNormal([5], 0, 1, 'float32', 5);
    const got = fuyuTokens(patches, w, bias, nl);
    expect(got.shape).toEqual([1, 2 * (3 + 1), 5]);
    const P = patches.arraySync() as number[][][][];
    const Wv = w.arraySync() as number[][];
    const bv = bias.arraySync() as number[];
    const want: number[][] = [];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) want.push(Wv.map((row, o) => row.reduce((s, x, k) => s + x * P[0]![i]![j]![k]!, bv[o]!)));
      want.push(nl.arraySync() as number[]);
    }
    assertClose(got, tf.tensor3d([want]), { atol: 1e-5, name: 'fuyu tokens' });
    assertGradients((x, a, c, d) => fuyuTokens(x!, a!, c!, d!), [patches, w, bias, nl], { label: 'fuyu tokens' });
    tf.dispose([patches, w, bias, nl, got]);
  });

  it('as a mixin: the tokens go to the placeholders; a forward leaks nothing; a placeholder count that does not fit is named', () => {
    const IMG = 30;
    const m = createLlama({ vocabSize: 32, hiddenSize: 16, numLayers: 1, numHeads: 2, seed: 0 });
    m.addMixin('patches', new FuyuPatchMixin({ imageTokenId: IMG, patchSize: 4 }));
    const pixels = tf.randomNormal([1, 3, 8, 8], 0, 1, 'float32', 6);
    const ids = [[1, ...new Array(2 * 3).fill(IMG), 5, 6]];
    const { logits } = m.forward({ inputIds: ids, media: { pixels } });
    expect(logits.shape).toEqual([1, 9, 32]);
    assertNoLeak(() => m.forward({ inputIds: ids, media: { pixels } }).logits);
    expect(() => m.forward({ inputIds: [[1, IMG, IMG, 5]], media: { pixels } })).toThrow('patches: row 0 of inputIds has 2 image placeholder token(s) (id 30) but 6 image tokens were projected; each row needs exactly 6 placeholders');
    tf.dispose([pixels, logits]);
    m.dispose();
  });
});
