// DecodePool: images decoded and resized on worker threads equal the in-thread result byte for byte;
// errors name the file; an idle pool does not keep a process alive.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodePool, loadImageFile, loadSharp, type DecodeRequest } from '../src/index.js';

const data = (f: string) => fileURLToPath(new URL(`./data/${f}`, import.meta.url));
const FILES = ['jpeg/s420.jpg', 'jpeg/progressive.jpg', 'jpeg/exif-6.jpg', 'jpeg/gray.jpg', 'png/rgba16.png', 'png/pal4.png', 'png/adam7-rgb8.png'].map(data);
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const same = (a: { width: number; height: number; data: Uint8Array }, b: typeof a) =>
  a.width === b.width && a.height === b.height && Buffer.from(a.data).equals(Buffer.from(b.data));

describe('DecodePool', () => {
  it('decodes PNG and JPEG (EXIF, grey, 16-bit, interlaced), resized or not, exactly as in-thread; many at once', async () => {
    const pool = new DecodePool({ workers: 2 });
    try {
      const reqs: DecodeRequest[] = FILES.flatMap((path) => [{ path }, { path, width: 16, height: 12 }]);
      const out = await Promise.all([...reqs, ...reqs, ...reqs].map((r) => pool.decode(r)));
      out.forEach((img, i) => expect(same(img, loadImageFile(reqs[i % reqs.length]!)), reqs[i % reqs.length]!.path).toBe(true));
      expect(out[1]!.width * out[1]!.height).toBe(16 * 12);
    } finally {
      await pool.close();
    }
  });

  it('errors name the file: random bytes, a missing file, the pixel limit; the pool goes on after them', async () => {
    const pool = new DecodePool({ workers: 1 });
    try {
      const junk = join(tmp, 'junk.png');
      writeFileSync(junk, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
      await expect(pool.decode({ path: junk })).rejects.toThrow(new RegExp(`${junk}: `));
      await expect(pool.decode({ path: join(tmp, 'none.jpg') })).rejects.toThrow(/none\.jpg: cannot read image file/);
      await expect(pool.decode({ path: FILES[0]!, limits: { maxPixels: 10 } })).rejects.toThrow(/s420\.jpg: image declares 37x29 = .*above the limit/);
      expect(same(await pool.decode({ path: FILES[0]! }), loadImageFile({ path: FILES[0]! }))).toBe(true);
    } finally {
      await pool.close();
    }
    await expect(pool.decode({ path: FILES[0]! })).rejects.toThrow(/DecodePool: closed/);
    expect(() => new DecodePool({ workers: 0 })).toThrow(/workers must be a positive integer, got 0/);
  });

  it('a pool left open does not keep the process from exiting once idle', () => {
    const script = join(tmp, 'idle.mts');
    const src = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    writeFileSync(script, `import { DecodePool } from ${JSON.stringify(src)};\nconst p = new DecodePool({ workers: 2 });\nconst img = await p.decode({ path: ${JSON.stringify(FILES[0])} });\nconsole.log('decoded', img.width, img.height);\n`);
    const t0 = Date.now();
    const out = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/^decoded \d+ \d+/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 40_000);

  it('decoder sharp (optional dependency): PNG identical, JPEG within 3/255, EXIF applied, resized by vlmix; errors name the file', async (t) => {
    if (!(await loadSharp())) t.skip('sharp is not installed here (optional dependency of @vlmix/data)');
    const pool = new DecodePool({ workers: 1 });
    try {
      for (const path of FILES) {
        for (const size of [{}, { width: 16, height: 12 }]) {
          const a = await pool.decode({ path, ...size, decoder: 'sharp' });
          const b = loadImageFile({ path, ...size });
          expect([a.width, a.height], path).toEqual([b.width, b.height]);
          let max = 0;
          for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i]! - b.data[i]!));
          if (path.endsWith('.png')) expect(max, path).toBe(0);
          else expect(max, path).toBeLessThanOrEqual(3);
        }
      }
      const junk = join(tmp, 'junk2.jpg');
      writeFileSync(junk, Buffer.from('not an image'));
      await expect(pool.decode({ path: junk, decoder: 'sharp' })).rejects.toThrow(new RegExp(`${junk}: .*\\(sharp\\)`));
      await expect(pool.decode({ path: FILES[0]!, decoder: 'sharp', limits: { maxPixels: 10 } })).rejects.toThrow(/s420\.jpg: .*pixel/i);
      expect(() => loadImageFile({ path: FILES[0]!, decoder: 'sharp' })).toThrow(/decoder 'sharp' is asynchronous/);
    } finally {
      await pool.close();
    }
  });
});
