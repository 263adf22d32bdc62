// Real processes killed with SIGKILL at seeded random moments: in the middle of a checkpoint file
// write (through the fault seam), or by the test at a random time. After every kill the directory holds
// a verified checkpoint (or none yet), and the run finished by resuming again and again equals one
// uninterrupted run bit for bit.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '@vlmix/core';
import { Trainer, checkpointWeights, hasCheckpoint, loadCheckpoint, readMetrics } from '../src/index.js';
import type { WriteFault } from './fault-fs.js';
import { CHILD_STEPS, childTrainerOptions } from './fixtures/train-child.js';
import { tinyModel } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/train-child.ts', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'vlmix-kill-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

interface ChildRun {
  lines: string[];
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Runs the child; `killAfterMs` (from its "ready" line) SIGKILLs it from outside. */
function runChild(opts: { fault?: WriteFault }, killAfterMs?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--conditions=@vlmix/source', CHILD, JSON.stringify({ out, ...opts })], {
      cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: ChildRun = { lines: [], stderr: '', code: null, signal: null };
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) {
        run.lines.push(l);
        if (l.startsWith('ready') && killAfterMs !== undefined) setTimeout(() => p.kill('SIGKILL'), killAfterMs);
      }
    });
    p.stderr.on('data', (d: Buffer) => void (run.stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ ...run, code, signal }));
  });
}

async function reference() {
  const m = tinyModel();
  const t = new Trainer(childTrainerOptions(m));
  const losses = (await t.train()).history.map((r) => r.loss);
  const w = new Map([...m.stateDict()].map(([n, v]) => [n, Array.from(v.dataSync())]));
  t.dispose();
  m.dispose();
  return { losses, w };
}

describe('SIGKILL at random moments, then --resume', () => {
  it('every kill leaves a verified checkpoint; the finished run equals an uninterrupted one bit for bit', async () => {
    const rng = new Rng('kill-plan');
    const files = [/model-\d+\.safetensors/, /optimizer-\d+\.safetensors/, /state-\d+\.json/, /\.state\.json\./];
    const kills: string[] = [];
    for (let round = 0; round < 4; round++) {
      const at = hasCheckpoint(out) ? (await loadCheckpoint(out)).state.step : 0;
      const left = CHILD_STEPS - at;
      let run: ChildRun;
      if (round % 2 === 0) {
        // Mid-write: the (skip+1)-th matching file write of this process dies after `afterBytes` bytes.
        const match = files[rng.int(files.length)]!;
        const fault: WriteFault = { match: match.source, fault: 'SIGKILL', afterBytes: rng.int(4000), skip: rng.int(Math.max(1, left - 1)) };
        run = await runChild({ fault });
        expect(run.signal, `${match} ${run.stderr}`).toBe('SIGKILL');
        kills.push(`write ${match.source} +${fault.afterBytes} B (skip ${fault.skip})`);
      } else {
        const ms = rng.int(80);
        run = await runChild({}, ms);
        kills.push(`timer ${ms} ms: ${run.signal ?? `exit ${run.code}`}`);
      }
      // The invariant after every kill: whatever is committed verifies, with no fallback needed.
      if (hasCheckpoint(out)) {
        const ck = await loadCheckpoint(out);
        expect(ck.warnings, kills.join('; ')).toEqual([]);
        expect(ck.state.step).toBeGreaterThanOrEqual(at);
      }
    }
    const last = await runChild({});
    expect(last.code, last.stderr).toBe(0);
    expect(last.lines[last.lines.length - 1]).toBe('done');
    const ref = await reference();
    expect(readMetrics(join(out, 'metrics.jsonl')).map((r) => r.loss), kills.join('; ')).toEqual(ref.losses);
    const ck = await loadCheckpoint(out);
    expect(ck.state.step).toBe(CHILD_STEPS);
    const w = checkpointWeights(ck);
    for (const [n, t] of w) expect(Array.from(t.dataSync()), n).toEqual(ref.w.get(n));
    for (const t of w.values()) t.dispose();
    // Debris of the killed writes (temp files, stale lock) is gone after the final run.
    expect(readdirSync(join(out, 'checkpoint')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(['checkpoint', 'metrics.jsonl']);
  });
});
