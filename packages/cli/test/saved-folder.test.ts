// `vlmix inspect <dir>` and `vlmix generate <dir>` on a folder written by vlm.save(dir).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { decodeImage, resize } from '@vlmix/data';
import { createVlm } from '@vlmix/fusion';
import { LoraMixin } from '@vlmix/mixins';
import { readFileSync } from 'node:fs';
import { run, tempDirs } from './helpers.js';

const tmp = tempDirs();
const image = fileURLToPath(new URL('../../data/test/data/jpeg/s420.jpg', import.meta.url));

describe('vlmix on a saved model folder', () => {
  it('inspect shows the saved recipe (LoRA added after the preset); generate answers as the library does', async () => {
    const vlm = createVlm('typeB-tiny', { seed: 4 });
    vlm.model.addMixin('lora', new LoraMixin({ r: 2, targets: ['transformer.layers.*.attention.dense'] }));
    const dir = join(tmp('saved'), 'model');
    await vlm.save(dir);
    const r = await run(['inspect', dir, '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.mixins).toEqual(vlm.model.mixinNames());
    expect(j.mixins).toContain('lora');
    expect(j.description).toMatch(/^saved model folder: built from preset typeB-tiny, /);
    // the answer streams to stdout token by token
    const streamed: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (streamed.push(String(s)), true));
    const g = await run(['generate', dir, '--image', image, '--prompt', 'what colour is the shape?', '--max-tokens', '3']).finally(() => spy.mockRestore());
    expect(g.code, g.err).toBe(0);
    const img = decodeImage(readFileSync(image), image);
    const want = vlm.answer({ image: resize(img, vlm.imageSize, vlm.imageSize), question: 'what colour is the shape?' }, { maxNewTokens: 3 });
    expect(streamed.join('').trim()).toBe(want.trim());
    expect(want.length).toBeGreaterThan(0);
    vlm.dispose();
  }, 60_000);
});
