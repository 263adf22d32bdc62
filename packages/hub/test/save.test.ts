// savePretrained writes a loaded language model back in its folder's own format (names, transposes,
// stacked q/k/v split back, config, tokenizer files); loading the result gives the same logits.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraMixin } from '@vlmix/mixins';
import { loadPretrainedLM, savePretrained } from '../src/index.js';

const lm = (n: string) => fileURLToPath(new URL(`./fixtures/lm/${n}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-save-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('savePretrained', () => {
  for (const name of ['tinyllama-tiny', 'qwen2-tiny', 'gpt2-hub-tiny', 'nanogpt-tiny']) {
    it(`${name}: changed weights saved and reloaded give the same logits`, async () => {
      const a = loadPretrainedLM(lm(name));
      // a trained model: every parameter the reference stores moved (nanoGPT's bias=False biases stay zero)
      const zero = (v: tf.Variable) => tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0] === 0);
      tf.tidy(() => a.model.params.list().forEach((p, i) => {
        if (!zero(p.variable)) p.variable.assign(tf.add(p.variable, tf.mul(tf.randomNormal(p.variable.shape, 0, 1, 'float32', i), 0.01)));
      }));
      const out = join(tmp, name);
      await savePretrained(a, out);
      expect(existsSync(join(out, 'config.json'))).toBe(true);
      const b = loadPretrainedLM(out);
      const ids = [[1, 5, 9, 2, 7]];
      const [la, lb] = [a.model.forward({ inputIds: ids }).logits, b.model.forward({ inputIds: ids }).logits];
      expect(Array.from(lb.dataSync())).toEqual(Array.from(la.dataSync()));
      expect(b.tokenizer === null).toBe(a.tokenizer === null); // the tokenizer files came along
      tf.dispose([la, lb]);
      a.model.dispose();
      b.model.dispose();
    });
  }

  it('a parameter the reference leaves out (nanoGPT bias=False) must still be zero', async () => {
    const a = loadPretrainedLM(lm('nanogpt-tiny'));
    const zeroBias = a.model.params.list().find((p) => p.name.endsWith('.bias') && tf.tidy(() => tf.max(tf.abs(p.variable)).dataSync()[0] === 0))!;
    tf.tidy(() => zeroBias.variable.assign(tf.onesLike(zeroBias.variable)));
    await expect(savePretrained(a, join(tmp, 'nano-bias'))).rejects.toThrow(`exportWeightMap: ${zeroBias.name} is not zero (max |value| 1)`);
    a.model.dispose();
  });

  it('refuses parameters without a reference name (an unmerged LoRA), naming the way out', async () => {
    const a = loadPretrainedLM(lm('tinyllama-tiny'));
    a.model.addMixin('lora', new LoraMixin({ r: 2, targets: ['transformer.layers.*.attention.query_key_value'] }));
    await expect(savePretrained(a, join(tmp, 'lora'))).rejects.toThrow(/parameter\(s\) have no name in HF .*; fold adapters in first \(LoraMixin\.mergeAndUnload\(\)\)/);
    a.model.getMixin<LoraMixin>('lora').mergeAndUnload();
    await savePretrained(a, join(tmp, 'lora'));
    expect(loadPretrainedLM(join(tmp, 'lora')).model.params.names().some((n) => n.includes('lora'))).toBe(false);
    a.model.dispose();
  });
});
