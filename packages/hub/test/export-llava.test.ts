// exportLlava: a LLaVA-style model composed in code is written as a HF LlavaForConditionalGeneration folder
// (transformers >= 4.52 layout, llava config); loadLlava reads it back with identical logits.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { createLlama, openSafetensorsFile, Rng } from '@vlmix/core';
import { LoraMixin, ProjectorMixin, VisionEncoderMixin } from '@vlmix/mixins';
import { exportLlava, loadLlava } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmix-export-llava-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const IMG = 60;

function composed(tied: boolean) {
  const m = createLlama({ vocabSize: 64, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 96, maxSeqLen: 64, tieEmbeddings: tied, seed: 5 }, { base: 5000 });
  m.addMixin('vision', new VisionEncoderMixin({ vit: { imageSize: 32, patchSize: 8, hiddenSize: 32, numLayers: 2, numHeads: 2, intermediateSize: 64, activation: 'quick_gelu' }, selectLayer: -2, selectFeature: 'patch' }));
  m.addMixin('projector', new ProjectorMixin({ imageTokenId: IMG, projector: { kind: 'mlp2x_gelu', inputSize: 32 } }));
  const rng = new Rng('export-llava');
  for (const p of m.params.list()) tf.tidy(() => p.variable.assign(tf.add(p.variable, tf.tensor(Float32Array.from({ length: p.variable.size }, () => 0.05 * rng.normal()), p.variable.shape))));
  return m;
}

describe('exportLlava', () => {
  for (const tied of [false, true]) {
    it(`${tied ? 'tied' : 'untied'} embeddings: HF names and config; loadLlava gives identical logits`, async () => {
      const m = composed(tied);
      const dir = join(tmp, `llava-${tied}`);
      const cfg = await exportLlava(m, dir, { imageTokenId: IMG });
      const onDisk = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(onDisk).toEqual(cfg);
      expect(onDisk).toMatchObject({
        model_type: 'llava', image_token_index: IMG, image_seq_length: 16, vision_feature_layer: -2, vision_feature_select_strategy: 'default',
        text_config: { model_type: 'llama', num_key_value_heads: 2, rope_theta: 5000, tie_word_embeddings: tied },
        vision_config: { model_type: 'clip_vision_model', hidden_act: 'quick_gelu', image_size: 32, patch_size: 8 },
      });
      const names = openSafetensorsFile(join(dir, 'model.safetensors')).names();
      for (const n of ['model.language_model.layers.1.self_attn.k_proj.weight', 'model.language_model.embed_tokens.weight', 'model.language_model.norm.weight',
        'model.vision_tower.vision_model.embeddings.patch_embedding.weight', 'model.vision_tower.vision_model.pre_layrnorm.weight',
        'model.multi_modal_projector.linear_2.bias']) expect(names).toContain(n);
      expect(names.includes('lm_head.weight')).toBe(!tied);
      const back = loadLlava(dir, { tokenizer: false });
      const ids = [[1, 2, ...new Array(16).fill(IMG), 3, 4, 5]];
      const pixels = tf.tensor4d(Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i)), [1, 3, 32, 32]);
      const a = m.forward({ inputIds: ids, media: { pixels } }).logits;
      const b = back.model.forward({ inputIds: ids, media: { pixels } }).logits;
      expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
      tf.dispose([a, b, pixels]);
      m.dispose();
      back.model.dispose();
    });
  }

  it('refuses what LLaVA cannot hold, naming it', async () => {
    const m = composed(false);
    m.addMixin('lora', new LoraMixin({ r: 2, targets: ['transformer.layers.*.attention.dense'] }));
    await expect(exportLlava(m, join(tmp, 'lora'), { imageTokenId: IMG })).rejects.toThrow(/parameter\(s\) have no LLaVA name \(transformer.layers.0.attention.dense.lora_A.weight.*mergeAndUnload/);
    m.removeMixin('lora');
    m.removeMixin('projector');
    await expect(exportLlava(m, join(tmp, 'np'), { imageTokenId: IMG })).rejects.toThrow(/needs a 'projector' mixin/);
    m.dispose();
    const g = createLlama({ vocabSize: 64, hiddenSize: 32, numLayers: 1, numHeads: 2 }, {});
    const gpt = await import('@vlmix/core').then((c) => c.createGpt2({ vocabSize: 64, hiddenSize: 32, numLayers: 1, numHeads: 2, maxSeqLen: 16 }));
    gpt.addMixin('vision', new VisionEncoderMixin({ vit: { imageSize: 16, patchSize: 8, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32 } }));
    gpt.addMixin('projector', new ProjectorMixin({ imageTokenId: 5, projector: { kind: 'mlp2x_gelu', inputSize: 16 } }));
    await expect(exportLlava(gpt, join(tmp, 'gpt'), { imageTokenId: 5 })).rejects.toThrow(/config.norm = "layernorm", a LLaMA text model needs "rmsnorm"/);
    g.dispose();
    gpt.dispose();
  });
});
