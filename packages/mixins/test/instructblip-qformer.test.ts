// InstructBLIP's instruction-aware Q-Former against plain-torch reference math after transformers'
// modeling_instructblip.py (scripts/fixtures/instructblip_qformer.py): queries + instruction tokens in one
// self-attention (padding masked), cross-attention and the query FFN on the queries, the text FFN on the text.
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ParamStore, readSafetensorsFileSync } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { QFormer } from '../src/index.js';

const fx = (f: string) => readSafetensorsFileSync(fileURLToPath(new URL(`./fixtures/instructblip_qformer/${f}`, import.meta.url)));

describe('instruction-aware Q-Former (InstructBLIP)', () => {
  it('equals the reference; the padded token changes nothing; BLIP-2 mode refuses an instruction; gradients; no leaks', () => {
    const params = new ParamStore(0);
    const qf = new QFormer(params, 'c.', {
      hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, encoderHiddenSize: 8, numQueryTokens: 3,
      crossAttentionFrequency: 1, outputSize: 12, instructionVocabSize: 20, maxInstructionLength: 8,
    }, 12);
    const w = fx('weights.safetensors');
    for (const n of w.names()) params.get(`c.${n}`).assign(w.toTensor(n));
    expect(params.names().length).toBe(w.names().length); // every parameter has a reference tensor
    const io = fx('io.safetensors');
    const feats = io.toTensor('features');
    const instruction = { ids: io.toTensor('ids'), mask: io.toTensor('mask') };
    assertClose(qf.forward(feats, undefined, instruction).languageTokens, io.toTensor('tokens'), { atol: 1e-4, rtol: 1e-4, name: 'instructblip tokens' });
    // row 1's padded token: another id there gives the same output
    const ids2 = tf.tensor2d(io.toTensor('ids').arraySync() as number[][], undefined, 'int32').arraySync() as number[][];
    ids2[1]![3] = (ids2[1]![3]! + 1) % 20;
    const again = qf.forward(feats, undefined, { ids: tf.tensor2d(ids2, undefined, 'int32'), mask: instruction.mask }).languageTokens;
    assertClose(tf.slice(again, [1, 0, 0], [1, -1, -1]), tf.slice(io.toTensor('tokens'), [1, 0, 0], [1, -1, -1]), { atol: 1e-4, name: 'padding ignored' });
    assertGradients((f) => qf.forward(f!, undefined, instruction).languageTokens, [feats], { label: 'instructblip wrt features' });
    assertNoLeak(() => tf.tidy(() => qf.forward(feats, undefined, instruction).languageTokens));
    const blip2 = new QFormer(new ParamStore(0), 'd.', { hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, encoderHiddenSize: 8, numQueryTokens: 3 }, 12);
    expect(() => blip2.forward(feats, undefined, instruction)).toThrow('qformer: an instruction was given but qformer.instructionVocabSize is 0 (a BLIP-2 Q-Former)');
  });
});
