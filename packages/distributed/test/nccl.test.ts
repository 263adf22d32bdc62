// The dlopen'ed NCCL shim, tested against a stand-in library (this machine has no GPU and no NCCL).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadMpiAddon, ncclCandidates, ncclInfo } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const addon = loadMpiAddon();
const cc = spawnSync('cc', ['--version']).status === 0;

function buildFake(defines: string[]): string {
  const out = join(mkdtempSync(join(tmpdir(), 'vlmix-nccl-')), 'libfake_nccl.so');
  const r = spawnSync('cc', ['-shared', '-fPIC', ...defines, join(here, 'fixtures', 'fake_nccl.c'), '-o', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
  return out;
}

describe('NCCL probe', () => {
  it('candidates: $VLMIX_NCCL_PATH alone, else the sonames', () => {
    expect(ncclCandidates({})).toEqual(['libnccl.so.2', 'libnccl.so']);
    expect(ncclCandidates({ VLMIX_NCCL_PATH: '/x/libnccl.so.2' })).toEqual(['/x/libnccl.so.2']);
  });

  it.skipIf(!addon.addon)(`a missing library is reported per candidate${addon.addon ? '' : ` (skipped: ${addon.reason})`}`, () => {
    const r = ncclInfo(['/nonexistent/libnccl.so.2', 'libvlmix-no-such-nccl.so']);
    expect(r.available).toBe(false);
    expect(r.reason).toMatch(/^\/nonexistent\/libnccl\.so\.2: .*No such file or directory; libvlmix-no-such-nccl\.so: .*/);
  });

  it.skipIf(!addon.addon || !cc)(`resolves every entry point and decodes the version; names a missing symbol${addon.addon && cc ? '' : ' (skipped: no addon or no cc)'}`, () => {
    const good = buildFake([]);
    expect(ncclInfo([good])).toEqual({ available: true, path: good, version: '2.21.5', reason: `NCCL 2.21.5 loaded from ${good}` });
    const old = buildFake(['-DFAKE_VERSION=2804']); // before 2.9: major*1000 + minor*100 + patch
    expect(ncclInfo([old]).version).toBe('2.8.4');
    const partial = buildFake(['-DOMIT_ALLREDUCE']);
    const r = ncclInfo(['/nonexistent/libnccl.so.2', partial]);
    expect(r.available).toBe(false);
    expect(r.reason).toContain(`${partial}: missing symbol ncclAllReduce (not an NCCL 2.x library?)`);
  });
});
