// A caption that holds a special-token literal is refused with the label file's name (issue 11).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
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
});
