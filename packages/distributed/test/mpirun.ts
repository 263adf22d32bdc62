// Starting the workers under mpirun from a test, with a hard time limit so a test can never hang.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMpirun, loadMpiAddon, mpirunEnv } from '../src/index.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WORKERS = join(dirname(fileURLToPath(import.meta.url)), 'workers');

/** Whether the mpirun tests can run here, and why not. */
export function mpiSetup(): { ok: boolean; reason: string; mpirun: string | null } {
  const { addon, reason } = loadMpiAddon();
  const mpirun = findMpirun();
  if (!addon) return { ok: false, reason, mpirun };
  if (!mpirun) return { ok: false, reason: 'mpirun not found on PATH (or VLMIX_MPIRUN)', mpirun };
  return { ok: true, reason: `${reason}; ${mpirun}`, mpirun };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr interleaved. */
  output: string;
  ms: number;
  killedByLimit: boolean;
}

function run(cmd: string, args: string[], limitMs: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { cwd: REPO, env: { ...mpirunEnv(), ...extraEnv }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d) => (output += d));
    p.stderr.on('data', (d) => (output += d));
    let killedByLimit = false;
    const timer = setTimeout(() => {
      killedByLimit = true;
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, limitMs);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, ms: performance.now() - t0, killedByLimit });
    });
  });
}

const nodeArgs = (worker: string, args: string[]) => [process.execPath, '--conditions=@vlmix/source', '--import', 'tsx', join(WORKERS, worker), ...args];

/** `mpirun -np <np> --oversubscribe node --import tsx test/workers/<worker> ...args`. */
export function mpirun(np: number, worker: string, args: string[], limitMs = 90_000, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const bin = findMpirun();
  if (!bin) throw new Error('mpirun not found');
  return run(bin, ['-np', String(np), '--oversubscribe', ...nodeArgs(worker, args)], limitMs, env);
}

/** The worker as one plain process (no launcher). */
export function plain(worker: string, args: string[], limitMs = 90_000): Promise<RunResult> {
  const [node, ...rest] = nodeArgs(worker, args);
  return run(node!, rest, limitMs);
}
