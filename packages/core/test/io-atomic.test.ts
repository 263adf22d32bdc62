import { afterEach, describe, expect, it, vi } from 'vitest';
import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Wrap the fs functions atomic.ts uses so single calls can be made to fail.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, rename: vi.fn(actual.rename), open: vi.fn(actual.open) };
});
// The test setup may already have loaded atomic.ts (through the backend package) with the real fs:
// load a fresh copy that sees the mock.
vi.resetModules();
const { writeFileAtomic, writeFileAtomicSync } = await import('../src/io/index.js');

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vlmix-atomic-'));
}

afterEach(() => {
  vi.mocked(fsp.rename).mockClear();
  vi.mocked(fsp.open).mockClear();
});

describe('writeFileAtomic', () => {
  it('writes bytes and strings, replaces an existing file, leaves no temp file', async () => {
    const dir = await tmp();
    const p = join(dir, 'out.bin');
    await writeFileAtomic(p, new Uint8Array([1, 2, 3]));
    expect([...(await readFile(p))]).toEqual([1, 2, 3]);
    await writeFileAtomic(p, 'héllo');
    expect(await readFile(p, 'utf8')).toBe('héllo');
    expect(await readdir(dir)).toEqual(['out.bin']);
    // temp file lives in the target directory
    const tmpArg = vi.mocked(fsp.rename).mock.calls[0]![0] as string;
    expect(tmpArg.startsWith(join(dir, '.out.bin.'))).toBe(true);
    expect(tmpArg.endsWith('.tmp')).toBe(true);
  });

  it('rename failure: target keeps its old content and the temp file is removed', async () => {
    const dir = await tmp();
    const p = join(dir, 'ckpt.safetensors');
    await writeFile(p, 'old');
    vi.mocked(fsp.rename).mockRejectedValueOnce(new Error('injected rename failure'));
    await expect(writeFileAtomic(p, 'new content')).rejects.toThrow(/injected rename failure/);
    expect(await readFile(p, 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
  });

  it('failure in the middle of writing: no partial target, no temp file', async () => {
    const dir = await tmp();
    const p = join(dir, 'big.bin');
    const actualOpen = (await vi.importActual<typeof import('node:fs/promises')>('node:fs/promises')).open;
    vi.mocked(fsp.open).mockImplementationOnce(async (path, flags, mode) => {
      const fh = await actualOpen(path, flags, mode);
      // write half the data, then fail
      const origWrite = fh.write.bind(fh) as (b: Uint8Array, o: number, l: number) => Promise<{ bytesWritten: number }>;
      (fh as unknown as { write: unknown }).write = async (b: Uint8Array, o: number, l: number) => {
        await origWrite(b, o, Math.floor(l / 2));
        throw new Error('injected ENOSPC');
      };
      return fh;
    });
    await expect(writeFileAtomic(p, new Uint8Array(1 << 16).fill(7))).rejects.toThrow(/injected ENOSPC/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('directory removed: rejects, nothing created', async () => {
    const dir = await tmp();
    await rm(dir, { recursive: true });
    await expect(writeFileAtomic(join(dir, 'x.bin'), 'data')).rejects.toThrow(/ENOENT/);
    expect(() => writeFileAtomicSync(join(dir, 'x.bin'), 'data')).toThrow(/ENOENT/);
  });

  it('sync variant writes and replaces atomically', async () => {
    const dir = await tmp();
    const p = join(dir, 's.txt');
    writeFileAtomicSync(p, 'one');
    writeFileAtomicSync(p, new Uint8Array([0x32]));
    expect(await readFile(p, 'utf8')).toBe('2');
    expect(await readdir(dir)).toEqual(['s.txt']);
  });

  it('concurrent writers each produce a complete file', async () => {
    const dir = await tmp();
    const p = join(dir, 'c.bin');
    const payloads = Array.from({ length: 8 }, (_, i) => new Uint8Array(50_000).fill(i));
    await Promise.all(payloads.map((d) => writeFileAtomic(p, d)));
    const got = await readFile(p);
    expect(got.length).toBe(50_000);
    expect(got.every((b) => b === got[0])).toBe(true);
    expect(await readdir(dir)).toEqual(['c.bin']);
  });
});
