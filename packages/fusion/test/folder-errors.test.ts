// Folder data: a caption that holds a special-token literal is refused with the label file's name (issue 11);
// a multi-turn conversation trains as one sequence with the loss on every answer (issue 15).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { encodePng } from '@vlmix/data';
import { createVlm, folderSplit } from '../src/index.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('folderSplit', () => {
  it('names the label file whose text injects a control token', async () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmix-folder-err-'));
    dirs.push(d);
    mkdirSync(join(d, 'images'));
    mkdirSync(join(d, 'labels'));
    const png = encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(200) });
    for (const [id, text] of [['1', 'a green square'], ['2', 'a red <eos> square'], ['3', 'a blue circle']] as const) {
      writeFileSync(join(d, 'images', `${id}.png`), png);
      writeFileSync(join(d, 'labels', `${id}.json`), JSON.stringify({ captions: [{ role: 'caption', content: text }] }));
    }
    const vlm = createVlm('typeC-tiny', { seed: 0 });
    try {
      await expect(folderSplit(d, vlm, 1)).rejects.toThrow(
        `${join(d, 'labels', '2.json')}: formatQA: answer contains the special token literal "<eos>"; user text must not inject control tokens`);
    } finally {
      vlm.dispose();
    }
  });

  it('a multi-turn conversation becomes one item (earlier turns as history); its loss covers every answer; accuracy is the last answer', async () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmix-folder-conv-'));
    dirs.push(d);
    mkdirSync(join(d, 'images'));
    mkdirSync(join(d, 'labels'));
    const png = encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(90) });
    const conv = [{ role: 'user', content: 'what colour?' }, { role: 'assistant', content: 'red' }, { role: 'user', content: 'what shape?' }, { role: 'assistant', content: 'circle' }];
    for (const id of ['1', '2']) {
      writeFileSync(join(d, 'images', `${id}.png`), png);
      writeFileSync(join(d, 'labels', `${id}.json`), JSON.stringify({ conversations: conv }));
    }
    const vlm = createVlm('typeC-tiny', { seed: 0 });
    try {
      const split = await folderSplit(d, vlm, 1);
      expect(split.train).toHaveLength(1);
      const item = split.train[0]!;
      expect([item.question, item.answer, item.history]).toEqual(['what shape?', 'circle', [{ question: 'what colour?', answer: 'red' }]]);
      // folder items are lazy (getters on a class): copy the fields, a spread would not see them
      const single = vlm.encode([{ image: item.image, question: item.question, answer: item.answer }]);
      const multi = vlm.encode([item]);
      const answerTokens = (a: string) => vlm.tokenizer.encode(` ${a}`).length + 1; // + <eos>
      expect(single.lossTokens).toBe(answerTokens('circle'));
      expect(multi.lossTokens).toBe(answerTokens('red') + answerTokens('circle'));
      tf.dispose([...single.tensors, ...multi.tensors]);
    } finally {
      vlm.dispose();
    }
  });
});
