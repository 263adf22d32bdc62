import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { iterImageTextFolder, loadImageTextFolder, parseLabel, qaToRecords, writeImageTextFolder } from '../src/folder.js';
import { encodePng } from '../src/png.js';
import { makeShapesDataset } from '../src/synthetic.js';
import { DATA } from './helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'vlmix-folder-'));
  dirs.push(d);
  mkdirSync(join(d, 'images'));
  mkdirSync(join(d, 'labels'));
  return d;
}
const tinyPng = encodePng({ width: 2, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) });
const label = (d: string, id: string, body: unknown) =>
  writeFileSync(join(d, 'labels', id + '.json'), typeof body === 'string' ? body : JSON.stringify(body));
const noWarn = { onWarning: (m: string) => { throw new Error('unexpected warning: ' + m); } };

describe('loadImageTextFolder', () => {
  it('reads captions and conversations with JPEG and PNG images, in numeric id order', async () => {
    const d = tmp();
    copyFileSync(join(DATA, 'jpeg/s420.jpg'), join(d, 'images', '10.jpg'));
    writeFileSync(join(d, 'images', '2.png'), tinyPng);
    label(d, '10', { captions: [{ role: 'caption', content: 'a gradient' }] });
    label(d, '2', { conversations: [{ role: 'user', content: 'what?' }, { role: 'assistant', content: 'pixels' }] });
    const recs = await loadImageTextFolder(d, noWarn);
    expect(recs.map((r) => r.id)).toEqual(['2', '10']);
    expect(recs[0]!.turns).toEqual([{ role: 'user', content: 'what?' }, { role: 'assistant', content: 'pixels' }]);
    expect(Array.from(recs[0]!.image.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(recs[1]!.turns).toEqual([{ role: 'caption', content: 'a gradient' }]);
    expect([recs[1]!.image.width, recs[1]!.image.height]).toEqual([37, 29]);
    expect(recs[1]!.imagePath).toBe(join(d, 'images', '10.jpg'));
    expect((await loadImageTextFolder(d, { ...noWarn, limit: 1 })).map((r) => r.id)).toEqual(['2']);
  });
  it('is lazy: a bad record late in the folder does not prevent reading earlier ones', async () => {
    const d = tmp();
    writeFileSync(join(d, 'images', '1.png'), tinyPng);
    label(d, '1', { captions: [{ role: 'caption', content: 'ok' }] });
    writeFileSync(join(d, 'images', '2.png'), tinyPng);
    label(d, '2', '{not json');
    const it = iterImageTextFolder(d, noWarn);
    expect((await it.next()).value.id).toBe('1');
    await expect(it.next()).rejects.toThrow(`${join(d, 'labels', '2.json')}: malformed JSON`);
  });
  it('label without its image → error naming the label and the expected image', async () => {
    const d = tmp();
    label(d, '5', { captions: [{ role: 'caption', content: 'x' }] });
    await expect(loadImageTextFolder(d, noWarn)).rejects.toThrow(
      `${join(d, 'labels', '5.json')}: missing image: expected ${join(d, 'images', '5')}.jpg, .jpeg or .png`,
    );
  });
  it('image without a label → warning naming the image, record skipped', async () => {
    const d = tmp();
    writeFileSync(join(d, 'images', '1.png'), tinyPng);
    writeFileSync(join(d, 'images', '9.png'), tinyPng);
    label(d, '1', { captions: [{ role: 'caption', content: 'x' }] });
    const warnings: string[] = [];
    const recs = await loadImageTextFolder(d, { onWarning: (m) => warnings.push(m) });
    expect(recs.map((r) => r.id)).toEqual(['1']);
    expect(warnings).toEqual([`${join(d, 'images', '9.png')}: image has no label file ${join(d, 'labels', '9.json')}; skipped`]);
  });
  it.each([
    ['{"captions": [', /malformed JSON \(/],
    [[], /expected a JSON object, got array/],
    [{ text: 'x' }, /expected exactly one of "captions" or "conversations", got keys \[text\]/],
    [{ captions: [], conversations: [] }, /expected exactly one of "captions" or "conversations", got both/],
    [{ captions: 'hi' }, /"captions" must be an array, got "hi"/],
    [{ conversations: [] }, /"conversations" must not be empty/],
    [{ conversations: [{ role: 'system', content: 'x' }] }, /conversations\[0\]\.role must be one of "user", "assistant", got "system"/],
    [{ captions: [{ role: 'caption', content: 'a' }, { role: 'user', content: 'b' }] }, /captions\[1\]\.role must be one of "caption", got "user"/],
    [{ conversations: [{ role: 'user', content: 3 }] }, /conversations\[0\]\.content must be a string, got number/],
    [{ captions: [null] }, /captions\[0\] must be an object, got null/],
  ])('schema error %#: names file, expected and actual', async (body, msg) => {
    const d = tmp();
    writeFileSync(join(d, 'images', '0.png'), tinyPng);
    label(d, '0', body);
    const err = await loadImageTextFolder(d, noWarn).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message.startsWith(join(d, 'labels', '0.json') + ': ')).toBe(true);
    expect((err as Error).message).toMatch(msg);
  });
  it('unsupported image format names the image file', async () => {
    const d = tmp();
    writeFileSync(join(d, 'images', '3.jpg'), 'GIF89a....');
    label(d, '3', { captions: [{ role: 'caption', content: 'x' }] });
    await expect(loadImageTextFolder(d, noWarn)).rejects.toThrow(`${join(d, 'images', '3.jpg')}: unsupported image format GIF; expected PNG or JPEG`);
  });
  it('missing directories and ambiguous ids', async () => {
    const d = tmp();
    rmSync(join(d, 'labels'), { recursive: true });
    await expect(loadImageTextFolder(d)).rejects.toThrow(`${join(d, 'labels')}: cannot read labels directory (ENOENT)`);
    const e = tmp();
    writeFileSync(join(e, 'images', '1.png'), tinyPng);
    writeFileSync(join(e, 'images', '1.jpg'), tinyPng);
    await expect(loadImageTextFolder(e)).rejects.toThrow(`${join(e, 'images', '1.png')}: ambiguous image for id "1" (also ${join(e, 'images', '1.jpg')})`);
  });
  it('parseLabel is usable on its own', () => {
    expect(parseLabel({ captions: [{ role: 'caption', content: 'c' }] }, 'f.json')).toEqual([{ role: 'caption', content: 'c' }]);
    expect(() => parseLabel(7, 'f.json')).toThrow('f.json: expected a JSON object, got number');
  });
});

describe('writeImageTextFolder', () => {
  it('round-trips the synthetic set exactly (lossless PNG)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmix-rt-'));
    dirs.push(d);
    const { train } = makeShapesDataset({ seed: 11, train: 12, heldOut: 0 });
    const recs = qaToRecords(train);
    await writeImageTextFolder(d, [...recs, { id: 'cap1', image: train[0]!.image, turns: [{ role: 'caption', content: 'a 😀 caption' }] }]);
    const back = await loadImageTextFolder(d, noWarn);
    expect(back).toHaveLength(13);
    const byId = new Map(back.map((r) => [r.id, r]));
    for (const [i, s] of train.entries()) {
      const r = byId.get(recs[i]!.id)!;
      expect(r.turns).toEqual([{ role: 'user', content: s.question }, { role: 'assistant', content: s.answer }]);
      expect(Buffer.from(r.image.data).equals(Buffer.from(s.image.data))).toBe(true);
      expect(r.imagePath.endsWith('.png')).toBe(true);
    }
    expect(byId.get('cap1')!.turns).toEqual([{ role: 'caption', content: 'a 😀 caption' }]);
  });
  it('rejects mixed roles, unsafe ids, duplicates and bad images', async () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmix-w-'));
    dirs.push(d);
    const image = { width: 1, height: 1, data: new Uint8Array(3) };
    await expect(writeImageTextFolder(d, [{ id: 'a', image, turns: [{ role: 'caption', content: 'x' }, { role: 'user', content: 'y' }] }])).rejects.toThrow(
      'writeImageTextFolder: record "a" mixes roles [caption, user]; expected all "caption" or only "user"/"assistant"',
    );
    await expect(writeImageTextFolder(d, [{ id: '../x', image, turns: [{ role: 'caption', content: 'x' }] }])).rejects.toThrow(
      'writeImageTextFolder: record id "../x" is not a safe file name',
    );
    const t = [{ role: 'caption' as const, content: 'x' }];
    await expect(writeImageTextFolder(d, [{ id: 'a', image, turns: t }, { id: 'a', image, turns: t }])).rejects.toThrow(
      'writeImageTextFolder: duplicate record id "a"',
    );
    await expect(writeImageTextFolder(d, [{ id: 'b', image: { width: 2, height: 1, data: new Uint8Array(3) }, turns: t }])).rejects.toThrow(
      'writeImageTextFolder: record "b" image: data length must be width*height*3 = 2*1*3 = 6, got 3',
    );
  });
});

describe('folder errors name the file (issue 11)', () => {
  it('a directory in place of an image names its path instead of a bare EISDIR', async () => {
    const d = tmp();
    mkdirSync(join(d, 'images', '1.png'));
    label(d, '1', { captions: [{ role: 'caption', content: 'x' }] });
    await expect(loadImageTextFolder(d, noWarn)).rejects.toThrow(`${join(d, 'images', '1.png')}: cannot read image file (is a directory); expected a PNG or JPEG file`);
  });

  it('an image over the pixel limit names the file; the limit passes through the folder options', async () => {
    const d = tmp();
    writeFileSync(join(d, 'images', '1.png'), tinyPng);
    label(d, '1', { captions: [{ role: 'caption', content: 'x' }] });
    await expect(loadImageTextFolder(d, { ...noWarn, maxPixels: 1 })).rejects.toThrow(`PNG ${join(d, 'images', '1.png')}: image declares 2x1 = 0.0 megapixels, above the limit of 0.0 megapixels`);
    expect((await loadImageTextFolder(d, { ...noWarn, maxPixels: 2 })).length).toBe(1);
  });
});

describe("onBadRecord: 'skip'", () => {
  it('skips each unreadable record with a warning naming it, counts them at the end; error (default) stops at the first', async () => {
    const d = tmp();
    for (const id of ['1', '2', '3', '4']) {
      writeFileSync(join(d, 'images', `${id}.png`), id === '2' ? Buffer.from('not an image') : tinyPng);
      label(d, id, id === '3' ? '{"captions": [' : { captions: [{ role: 'caption', content: `c${id}` }] });
    }
    await expect(loadImageTextFolder(d, noWarn)).rejects.toThrow(`${join(d, 'images', '2.png')}: unsupported image format`);
    const warnings: string[] = [];
    const recs = await loadImageTextFolder(d, { onBadRecord: 'skip', onWarning: (m) => warnings.push(m) });
    expect(recs.map((r) => r.id)).toEqual(['1', '4']);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/^skipped record 2: .*2\.png: unsupported image format/);
    expect(warnings[1]).toMatch(/^skipped record 3: .*3\.json: malformed JSON/);
    expect(warnings[2]).toBe(`${d}: skipped 2 bad records of 4 (onBadRecord: 'skip')`);
    await expect(loadImageTextFolder(d, { onBadRecord: 'maybe' as 'skip' })).rejects.toThrow(`loadImageTextFolder: onBadRecord must be 'error' or 'skip', got "maybe"`);
  });
});
