// vlmix train --data with --on-bad-record error|skip.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodePng } from '@vlmix/data';
import { run, tempDirs } from './helpers.js';

const tmp = tempDirs();

describe('vlmix train --on-bad-record', () => {
  it('error (default) stops naming the file; skip trains on the rest and reports the count; bad values are named', async () => {
    const d = tmp('vlmix-badrec-');
    mkdirSync(join(d, 'images'));
    mkdirSync(join(d, 'labels'));
    const png = encodePng({ width: 4, height: 4, data: new Uint8Array(48).fill(120) });
    for (let i = 1; i <= 7; i++) {
      writeFileSync(join(d, 'images', `${i}.png`), i === 4 ? png.subarray(0, 20) : png); // record 4: truncated PNG
      writeFileSync(join(d, 'labels', `${i}.json`), JSON.stringify({ captions: [{ role: 'caption', content: `shape ${i}` }] }));
    }
    const base = ['train', 'typeC-tiny', '--data', d, '--steps', '1', '--batch-size', '2', '--held-out', '1', '--log', 'silent'];
    const stop = await run(base);
    expect(stop.code).toBe(1);
    expect(stop.err).toContain(join(d, 'images', '4.png'));
    const skip = await run([...base, '--on-bad-record', 'skip']);
    expect(skip.code, skip.err).toBe(0);
    expect(skip.err).toContain('warning: skipped record 4:');
    expect(skip.err).toContain(`warning: ${d}: skipped 1 bad record of 7 (onBadRecord: 'skip')`);
    const bad = await run([...base, '--on-bad-record', 'ignore']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--on-bad-record: expected error or skip, got "ignore"');
    const noData = await run(['train', 'typeC-tiny', '--steps', '1', '--on-bad-record', 'skip']);
    expect(noData.err).toContain('--on-bad-record needs --data DIR');
  });
});
