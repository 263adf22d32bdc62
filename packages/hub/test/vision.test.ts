import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createLlama, readSafetensorsFileSync, writeSafetensors } from '@vlmix/core';
import { assertClose } from '@vlmix/core/testkit';
import { loadVisionTower } from '../src/index.js';

const vlm = (n: string) => fileURLToPath(new URL(`./fixtures/vlm/${n}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-vision-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Relative 1e-4 of the reference's largest magnitude. */
function close(got: tf.Tensor, want: tf.Tensor, name: string): void {
  const scale = tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!);
  assertClose(got, want, { rtol: 1e-4, atol: 1e-4 * scale, name });
}

describe('loadVisionTower: HF folders give the reference outputs (torch re-implementations of CLIP / SigLIP)', () => {
  it('CLIPVisionModel: last_hidden_state, pooler_output, hidden_states; sizes and processor from the folder', () => {
    const io = readSafetensorsFileSync(vlm('clip-vision-tiny.io.safetensors'));
    const [px, wantLast, wantPooled, wantH1] = ['pixel_values', 'last_hidden_state', 'pooler_output', 'hidden_state_1'].map((n) => io.toTensor(n));
    const before = tf.memory().numTensors;
    const t = loadVisionTower(vlm('clip-vision-tiny'));
    expect([t.kind, t.arch, t.hfClass]).toEqual(['vision-tower', 'clip', 'CLIPVisionModel']);
    expect([t.config.imageSize, t.config.patchSize, t.config.hiddenSize, t.config.numLayers, t.config.activation, t.config.pooling]).toEqual([16, 4, 32, 2, 'quick_gelu', 'cls']);
    expect(t.skipped).toEqual(['vision_model.embeddings.position_ids']);
    expect(t.imageProcessor!.config.centerCrop).toEqual({ height: 16, width: 16 });
    const out = t.forward(px!, { outputHiddenStates: true });
    close(out.lastHiddenState, wantLast!, 'last_hidden_state');
    close(out.poolerOutput!, wantPooled!, 'pooler_output');
    close(out.hiddenStates![1]!, wantH1!, 'hidden_states[1]');
    tf.dispose([out.lastHiddenState, out.poolerOutput!, ...out.hiddenStates!]);
    t.dispose();
    expect(tf.memory().numTensors).toBe(before); // loading and a forward leave nothing behind
  });

  it('CLIPModel: the vision part (vision_config, gelu); the text tower and projections are skipped', () => {
    const io = readSafetensorsFileSync(vlm('clip-tiny.io.safetensors'));
    const t = loadVisionTower(vlm('clip-tiny'));
    expect([t.hfClass, t.config.activation]).toEqual(['CLIPModel', 'gelu']);
    expect(t.skipped).toContain('text_projection.weight');
    expect(t.skipped).toContain('text_model.embeddings.token_embedding.weight');
    expect(t.skipped).not.toContain('visual_projection.weight');
    const out = t.forward(io.toTensor('pixel_values'));
    close(out.lastHiddenState, io.toTensor('last_hidden_state'), 'last_hidden_state');
    close(out.poolerOutput!, io.toTensor('pooler_output'), 'pooler_output');
    close(out.imageEmbeds!, io.toTensor('image_embeds'), 'image_embeds (visual_projection)');
    t.dispose();
  });

  it('CLIPVisionModelWithProjection (clip_vision_model + visual_projection.weight): image_embeds', () => {
    const d = join(tmp, 'with-projection');
    cpSync(vlm('clip-vision-tiny'), d, { recursive: true });
    const f = readSafetensorsFileSync(join(d, 'model.safetensors'));
    const tensors: Record<string, tf.Tensor> = Object.fromEntries(f.names().map((n) => [n, f.toTensor(n)]));
    const w = tf.randomNormal([24, 32], 0, 0.2, 'float32', 3);
    tensors['visual_projection.weight'] = w;
    writeFileSync(join(d, 'model.safetensors'), writeSafetensors(tensors));
    const t = loadVisionTower(d);
    expect([t.hfClass, t.visualProjection!.shape]).toEqual(['CLIPVisionModelWithProjection', [24, 32]]);
    const px = readSafetensorsFileSync(vlm('clip-vision-tiny.io.safetensors')).toTensor('pixel_values');
    const out = t.forward(px);
    assertClose(out.imageEmbeds!, tf.matMul(out.poolerOutput!, w, false, true), { rtol: 1e-6, atol: 1e-6, name: 'image_embeds' });
    // addTo copies the tower only (the projection is not part of the vision mixin)
    const model = createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 });
    t.addTo(model);
    expect(model.params.names().filter((n) => n.includes('projection'))).toEqual([]);
    model.dispose();
    t.dispose();
  });

  it('SiglipVisionModel: no class token, patch bias, post_layernorm on every token, MAP head pooling', () => {
    const io = readSafetensorsFileSync(vlm('siglip-tiny.io.safetensors'));
    const t = loadVisionTower(vlm('siglip-tiny'));
    expect([t.arch, t.config.classToken, t.config.patchBias, t.config.preLayerNorm, t.config.pooling, t.config.layerNormEps, t.config.activation])
      .toEqual(['siglip', false, true, false, 'map', 1e-6, 'gelu_tanh']);
    expect(t.imageProcessor!.config.resize).toEqual({ height: 16, width: 16 });
    const out = t.forward(io.toTensor('pixel_values'), { outputHiddenStates: true });
    expect(out.lastHiddenState.shape).toEqual([2, 16, 32]);
    close(out.lastHiddenState, io.toTensor('last_hidden_state'), 'last_hidden_state');
    close(out.poolerOutput!, io.toTensor('pooler_output'), 'pooler_output (MAP head)');
    close(out.hiddenStates![2]!, io.toTensor('hidden_state_2'), 'hidden_states[2]');
    t.dispose();
  });

  it('addTo: the tower as a VisionEncoderMixin of an LM, with the same weights (features = hidden_states[-2] patches)', () => {
    const io = readSafetensorsFileSync(vlm('clip-vision-tiny.io.safetensors'));
    const t = loadVisionTower(vlm('clip-vision-tiny'));
    const model = createLlama({ vocabSize: 40, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 });
    const mixin = t.addTo(model, 'vision');
    const px = io.toTensor('pixel_values');
    const want = tf.slice(t.forward(px, { outputHiddenStates: true }).hiddenStates![1]!, [0, 1, 0], [-1, -1, -1]);
    assertClose(mixin.encode(px), want, { rtol: 0, atol: 0, name: 'features' });
    t.dispose();
    model.dispose();
  });

  it('other image sizes: an error naming the expected size, or resized positions with interpolatePositions', () => {
    const px = tf.randomNormal([1, 3, 24, 24], 0, 1, 'float32', 5);
    const strict = loadVisionTower(vlm('siglip-tiny'));
    expect(() => strict.forward(px)).toThrow(/expected 16x16 images \(patch grid 4x4\), got 24x24; set interpolatePositions/);
    strict.dispose();
    const t = loadVisionTower(vlm('siglip-tiny'), { interpolatePositions: true });
    const out = t.forward(px);
    expect([out.lastHiddenState.shape, out.poolerOutput!.shape]).toEqual([[1, 36, 32], [1, 32]]);
    t.dispose();
  });

  it('errors name the problem: unsupported model_type, a shape that disagrees with config.json, a missing tensor', () => {
    const bad = (name: string, edit: (cfg: Record<string, unknown>) => void) => {
      const d = join(tmp, name);
      cpSync(vlm('clip-vision-tiny'), d, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
      edit(cfg);
      writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
      return d;
    };
    expect(() => loadVisionTower(bad('vit', (c) => (c.model_type = 'vit')))).toThrow(/"model_type" = "vit" is not a supported vision tower \(supported: clip_vision_model, clip, siglip_vision_model, siglip\)/);
    expect(() => loadVisionTower(bad('wide', (c) => (c.intermediate_size = 48)))).toThrow(/encoder\.layers\.0\.mlp\.fc1\.weight: expected \[48, 32\], the checkpoint gives \[64, 32\]/);
    expect(() => loadVisionTower(bad('deep', (c) => (c.num_hidden_layers = 3)))).toThrow(/missing \(16\): vision_model\.encoder\.layers\.2\./);
    expect(() => loadVisionTower(bad('act', (c) => (c.hidden_act = 'relu')))).toThrow(/"hidden_act" = "relu" is not supported/);
  });
});
