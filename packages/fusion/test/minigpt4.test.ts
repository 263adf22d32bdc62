// MiniGPT-4: the LAVIS checkpoint names map onto the Q-Former (checked by renaming the HF-named Q-Former
// fixture into LAVIS names, mapping them back and comparing the outputs with the fixture's), and
// --freeze connector trains llama_proj alone.
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Model, openSafetensorsFile, readSafetensors, writeSafetensors } from '@vlmix/core';
import { assertClose } from '@vlmix/core/testkit';
import { loadBlip2QFormer, QFormerConnectorMixin } from '@vlmix/mixins';
import { createVlm, minigpt4QFormerName } from '../src/index.js';

const fix = (f: string) => fileURLToPath(new URL(`../../mixins/test/fixtures/qformer/${f}`, import.meta.url));

/** HF Blip2 name -> LAVIS (MiniGPT-4) name, written independently of the loader's mapping. */
function lavisName(n: string): string | null {
  if (n === 'query_tokens') return n;
  if (n.startsWith('language_projection.')) return `llama_proj.${n.slice('language_projection.'.length)}`;
  if (n.startsWith('qformer.layernorm.')) return `Qformer.bert.embeddings.LayerNorm.${n.slice('qformer.layernorm.'.length)}`;
  if (n.startsWith('qformer.encoder.')) return `Qformer.bert.${n.slice('qformer.'.length).replace(/\.(attention|crossattention)\.attention\./, '.$1.self.')}`;
  return null;
}

describe('minigpt4', () => {
  it('a LAVIS-named checkpoint (Qformer.bert.*, llama_proj.*) loads and reproduces the HF-named Q-Former fixture', () => {
    const hf = openSafetensorsFile(fix('weights.safetensors'));
    const io = openSafetensorsFile(fix('io.safetensors'));
    const lavis: Record<string, tf.Tensor> = {};
    for (const n of hf.names()) {
      const l = lavisName(n);
      if (l) lavis[l] = hf.toTensor(n);
    }
    lavis['Qformer.bert.embeddings.word_embeddings.weight'] = tf.zeros([4, 32]); // in LAVIS, unused by the queries
    expect(Object.keys(lavis)).toContain('Qformer.bert.encoder.layer.0.crossattention.self.key.weight');
    expect(minigpt4QFormerName('Qformer.bert.embeddings.word_embeddings.weight')).toBeNull();
    const mapped = readSafetensors(writeSafetensors(Object.fromEntries(Object.entries(lavis).flatMap(([n, t]) => {
      const m = minigpt4QFormerName(n);
      return m ? [[m, t]] : [];
    }))));
    const model = new Model({ vocabSize: 64, hiddenSize: 40, numLayers: 1, numHeads: 2, maxSeqLen: 32, positionEmbedding: 'none', seed: 3 });
    const q = model.addMixin('qformer', new QFormerConnectorMixin({
      imageTokenId: 63, qformer: { hiddenSize: 32, numLayers: 3, numHeads: 4, intermediateSize: 48, encoderHiddenSize: 24, numQueryTokens: 6, crossAttentionFrequency: 2 },
    }));
    const res = loadBlip2QFormer(model, 'qformer', mapped);
    expect(res.missing).toEqual([]);
    const out = q.qformer.forward(io.toTensor('image_embeds'));
    assertClose(out.languageTokens, io.toTensor('language_tokens'), { atol: 1e-4, rtol: 1e-4, name: 'language_tokens (llama_proj)' });
    tf.dispose([...Object.values(lavis), out.lastHiddenState, out.languageTokens]);
    model.dispose();
  });

  it('--freeze connector trains llama_proj only (the paper\'s stage 1); the default trains everything', () => {
    const frozen = createVlm('minigpt4', { freeze: 'connector' });
    expect(frozen.model.params.list().filter((p) => p.trainable).map((p) => p.name)).toEqual(['qformer.language_projection.weight', 'qformer.language_projection.bias']);
    const all = createVlm('minigpt4');
    expect(all.model.params.list().every((p) => p.trainable)).toBe(true);
    frozen.dispose();
    all.dispose();
  });
});
