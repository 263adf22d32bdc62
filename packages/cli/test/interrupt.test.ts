// `vlmix train` as a real process: a second trainer on the same directory is refused naming the
// first; SIGINT stops after the current step with a checkpoint and the exact resume command, and that
// command continues bit-exactly; a second signal ends the process at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint } from '@vlmix/train';
import { run, tempDirs } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const WRITE_FAULT = fileURLToPath(new URL('./fixtures/write-fault.ts', import.meta.url));
const tmp = tempDirs();


/** The CLI as its own process (node + tsx's loader: one process, so signals reach it directly). */
function spawnCli(argv: string[], env: Record<string, string> = {}): { proc: ChildProcess; stderr: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=@vlmix/source', '--import', WRITE_FAULT, BIN, ...argv], {
    cwd: ROOT, env: { ...process.env, npm_lifecycle_event: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => void (err += d.toString()));
  proc.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { proc, stderr: () => err, exit };
}

const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l.endsWith('}')) : []);
const losses = (dir: string) => lines(join(dir, 'metrics.jsonl')).map((l) => JSON.parse(l).loss as number);

/** Waits until the run has `n` metric lines (so its signal handlers are installed). */
async function waitForSteps(dir: string, n: number, exit: Promise<unknown>): Promise<void> {
  let done = false;
  void exit.then(() => (done = true));
  while (lines(join(dir, 'metrics.jsonl')).length < n) {
    if (done) throw new Error('the trainer exited before reaching the step');
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Small but not instant: 60 steps of batch 8 take a few seconds on 2 cores.
const small = ['--train-size', '64', '--held-out', '8', '--batch-size', '8', '--log', 'plain'];

describe('vlmix train under signals (real process)', () => {
  it('a second trainer is refused naming the first; SIGINT checkpoints and prints the resume command, which continues bit-exactly', async () => {
    const dir = tmp('vlmix-sigint-');
    const backend = tf.getBackend();
    const args = ['typeC-tiny', '--steps', '60', '--out', dir, '--backend', backend, '--checkpoint-every', '1', ...small];
    // From the third checkpoint on, each model file write takes 400 ms longer: the child cannot finish
    // before the signal even on a loaded machine (the losses do not depend on it).
    const fault = { match: 'model-\\d+\\.safetensors', fault: 'delay', delayMs: 400, skip: 2 };
    const child = spawnCli(['train', ...args], { VLMIX_TEST_WRITE_FAULT: JSON.stringify(fault) });
    await waitForSteps(dir, 3, child.exit);

    const second = await run(['train', 'typeC-tiny', '--steps', '60', '--out', dir, '--seed', '1', ...small]);
    expect(second.code).toBe(1);
    expect(second.err).toMatch(new RegExp(`^vlmix train: run directory ${dir} is in use by another trainer: pid ${child.proc.pid} on host ${hostname()}, started \\S+ \\(vlmix train ${args.join(' ')}\\); wait for it to finish or stop it$`, 'm'));

    child.proc.kill('SIGINT');
    const { code } = await child.exit;
    const err = child.stderr();
    expect(code, err).toBe(130);
    const m = /stopped by SIGINT after step (\d+) of 60; checkpoint of step (\d+) saved in (\S+)\n/.exec(err);
    expect(m, err).not.toBeNull();
    const step = Number(m![1]);
    expect(Number(m![2])).toBe(step);
    expect(m![3]).toBe(join(dir, 'checkpoint'));
    expect(step).toBeGreaterThanOrEqual(3);
    expect(step).toBeLessThan(60);
    expect((await loadCheckpoint(dir)).state.step).toBe(step);
    expect(losses(dir)).toHaveLength(step);
    expect(existsSync(join(dir, 'vlmix.lock'))).toBe(false);
    const cmd = /resume with: (.*)\n/.exec(err)![1]!;
    expect(cmd).toBe(`vlmix train ${args.join(' ')} --resume`);

    // The printed command, run as is, finishes the run exactly as an uninterrupted one.
    const resumed = await run(cmd.split(' ').slice(1));
    expect(resumed.code, resumed.err).toBe(0);
    const straight = tmp('vlmix-straight-');
    expect((await run(['train', 'typeC-tiny', '--steps', '60', '--out', straight, ...small])).code).toBe(0);
    expect(losses(dir)).toEqual(losses(straight));
    expect(losses(dir)).toHaveLength(60);
  });

  it('SIGTERM twice: the second ends the process at once (143), even inside a checkpoint write; the last committed checkpoint verifies', async () => {
    const dir = tmp('vlmix-sigterm-');
    // Checkpoints every step; from the third on, each model file write takes 3 s longer, holding the
    // process inside a checkpoint write while the signals arrive.
    const fault = { match: 'model-\\d+\\.safetensors', fault: 'delay', delayMs: 3000, skip: 2 };
    const child = spawnCli(['train', 'typeC-tiny', '--steps', '400', '--out', dir, '--checkpoint-every', '1', ...small], { VLMIX_TEST_WRITE_FAULT: JSON.stringify(fault) });
    await waitForSteps(dir, 3, child.exit);
    child.proc.kill('SIGTERM');
    while (!child.stderr().includes('SIGTERM received')) await new Promise((r) => setTimeout(r, 10));
    child.proc.kill('SIGTERM');
    const { code } = await child.exit;
    expect(code, child.stderr()).toBe(143);
    expect(child.stderr()).toContain('vlmix train: second SIGTERM: ending now; the newest checkpoint is step 2');
    const ck = await loadCheckpoint(dir);
    expect(ck.warnings).toEqual([]);
    expect(ck.state.step).toBe(2);
  });
});
