// `vlmix train --distributed` under `mpirun -np 2` (real processes): one --json line from rank 0, the
// loss curve of the one-process run (same global batch) within 1e-5, exact resume after SIGKILL of the
// whole job, and a clear error without a launcher.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findMpirun, loadMpiAddon, mpirunEnv } from '@vlmix/distributed';
import { run, tempDirs } from './helpers.js';

const tmp = tempDirs();
const REPO = join(__dirname, '..', '..', '..');
const BIN = join(REPO, 'packages', 'cli', 'src', 'bin.ts');
const mpirun = findMpirun();
const { addon, reason } = loadMpiAddon();
const skip = !mpirun || !addon;
if (skip) console.warn(`vlmix train --distributed: mpirun tests skipped: ${!mpirun ? 'mpirun not found' : reason}`);
it.runIf(skip && !!process.env.VLMIX_REQUIRE_MPI_TESTS)('mpirun tests are required here (VLMIX_REQUIRE_MPI_TESTS) but cannot run', () => {
  throw new Error(`vlmix train --distributed: ${!mpirun ? 'mpirun not found' : reason}`);
});

const ARGS = ['typeC-tiny', '--steps', '150', '--train-size', '96', '--held-out', '16', '--batch-size', '8', '--checkpoint-every', '25', '--log', 'silent', '--json'];

interface Done { code: number | null; signal: NodeJS.Signals | null; out: string; err: string }

/** `mpirun -np 2 node vlmix train ...`, in its own process group; `killWhen` may SIGKILL the whole job. */
function launch(args: string[], killWhen?: () => boolean): Promise<Done> {
  return new Promise((resolve, reject) => {
    const p = spawn(mpirun!, ['-np', '2', '--oversubscribe', process.execPath, '--conditions=@vlmix/source', '--import', 'tsx', BIN, 'train', ...args],
      { cwd: REPO, env: mpirunEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const kill = () => { try { process.kill(-p.pid!, 'SIGKILL'); } catch { /* gone */ } };
    const limit = setTimeout(kill, 120_000);
    const poll = killWhen ? setInterval(() => { if (killWhen()) kill(); }, 20) : null;
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(limit);
      if (poll) clearInterval(poll);
      resolve({ code, signal, out, err });
    });
  });
}

const losses = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
const jsonLines = (out: string) => out.split('\n').filter((l) => l.startsWith('{'));

describe('vlmix train --distributed', () => {
  it('without mpirun: a clear error, nothing trained', async () => {
    const r = await run(['train', 'typeC-tiny', '--steps', '2', '--distributed']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('distributed mode needs a launch by mpirun: this process was started without one');
  });

  it.skipIf(skip)('2 ranks: rank 0 alone prints the --json line and writes --out; losses equal the one-process run to 1e-5; SIGKILL of the job + --resume equals the uninterrupted run', async () => {
    const one = join(tmp('vlmix-dist-cli-'), 'one');
    const single = await run(['train', ...ARGS, '--out', one]);
    expect(single.code, single.err).toBe(0);
    const full = join(tmp('vlmix-dist-cli-'), 'full');
    const d = await launch([...ARGS, '--out', full, '--distributed']);
    expect(d.code, d.err).toBe(0);
    expect(jsonLines(d.out)).toHaveLength(1); // rank 0 only
    const [a, b] = [JSON.parse(jsonLines(d.out)[0]!), JSON.parse(jsonLines(single.out)[0]!)];
    expect(a.steps).toBe(150);
    expect(Math.abs(a.loss - b.loss) / b.loss).toBeLessThan(1e-5);
    const [dl, sl] = [losses(full), losses(one)];
    expect(dl.map((r) => r.step)).toEqual(sl.map((r) => r.step));
    dl.forEach((r, i) => expect(Math.abs(r.loss - sl[i]!.loss) / sl[i]!.loss, `step ${r.step}`).toBeLessThan(1e-5));
    expect(readdirSync(full).sort()).toEqual(['checkpoint', 'metrics.jsonl', 'vlmix-run.json']); // lock released

    // Kill the whole job (mpirun and both ranks) once the checkpoint of step 25 or 50 exists, then resume.
    const dir = join(tmp('vlmix-dist-cli-'), 'killed');
    const ck = join(dir, 'checkpoint');
    const killed = await launch([...ARGS, '--out', dir, '--distributed'],
      () => existsSync(ck) && readdirSync(ck).some((f) => /^state-0*(25|50)\.json$/.test(f)));
    expect(killed.signal ?? killed.code).not.toBe(0);
    expect(jsonLines(killed.out)).toHaveLength(0);
    // the ranks may still be going down: wait until the lock's holder has gone
    const lock = join(dir, 'vlmix.lock');
    for (let i = 0; i < 200 && existsSync(lock); i++) {
      try { process.kill(JSON.parse(readFileSync(lock, 'utf8')).pid as number, 0); } catch { break; }
      await new Promise((r) => setTimeout(r, 50));
    }
    const resumed = await launch([...ARGS, '--out', dir, '--distributed', '--resume']);
    expect(resumed.code, resumed.err).toBe(0);
    expect(JSON.parse(jsonLines(resumed.out)[0]!).loss).toBe(a.loss); // bit-exact
    expect(losses(dir).map((r) => [r.step, r.loss])).toEqual(dl.map((r) => [r.step, r.loss])); // every step's loss
  }, 300_000);
});
