import { describe, expect, it } from 'vitest';
import { ArgError, parseArgs } from '../src/args.js';

describe('parseArgs', () => {
  it('defaults', () => {
    expect(parseArgs([])).toEqual({ backends: ['auto'], suites: ['kernels', 'arch', 'scaling'], size: 'quick', torch: 'auto', help: false });
  });

  it('parses every option, with and without =', () => {
    const o = parseArgs(['--backend', 'cpu,vlmix-cpu', '--suite=kernels,scaling', '--size', 'full', '--repeats', '7', '--warmup=1',
      '--json', 'r.json', '--out', 'o', '--torch', 'off', '--threads', '2', '--filter', 'matmul,GELU', '--machine', 'box']);
    expect(o).toEqual({
      backends: ['cpu', 'vlmix-cpu'], suites: ['kernels', 'scaling'], size: 'full', repeats: 7, warmup: 1, json: 'r.json', out: 'o',
      torch: 'off', threads: 2, filter: ['matmul', 'GELU'], machine: 'box', help: false,
    });
    expect(parseArgs(['--help']).help).toBe(true);
    expect(parseArgs(['--', '--size', 'full']).size).toBe('full');
  });

  it('unknown suite names the value and the allowed ones', () => {
    expect(() => parseArgs(['--suite', 'kernels,models'])).toThrow(ArgError);
    expect(() => parseArgs(['--suite', 'kernels,models'])).toThrow("--suite: unknown value 'models'; allowed: kernels, arch, scaling");
  });

  it('unknown backend names the value and the allowed ones', () => {
    expect(() => parseArgs(['--backend', 'webgl'])).toThrow("--backend: unknown value 'webgl'; allowed: auto, vlmix-cpu, vlmix-cuda, cpu, wasm, tensorflow");
  });

  it('other errors', () => {
    expect(() => parseArgs(['--size', 'huge'])).toThrow("--size: unknown value 'huge'; allowed: quick, full");
    expect(() => parseArgs(['--torch', 'yes'])).toThrow("--torch: unknown value 'yes'; allowed: auto, off");
    expect(() => parseArgs(['--repeats', '0'])).toThrow("--repeats: expected an integer >= 1, got '0'");
    expect(() => parseArgs(['--repeats', 'x'])).toThrow(/--repeats: expected an integer/);
    expect(() => parseArgs(['--repeats'])).toThrow('--repeats: missing value');
    expect(() => parseArgs(['--suite', ''])).toThrow(/--suite: expected one or more of kernels, arch, scaling/);
    expect(() => parseArgs(['--bogus'])).toThrow(/unknown option '--bogus'/);
  });
});

describe('parseArgs: anchor and run-to-run options', () => {
  it('--keep-blas-env is a flag, --processes a positive integer', () => {
    expect(parseArgs(['--keep-blas-env', '--processes', '3'])).toMatchObject({ keepBlasEnv: true, processes: 3 });
    expect(parseArgs([]).keepBlasEnv).toBeUndefined();
    expect(() => parseArgs(['--keep-blas-env=yes'])).toThrow("--keep-blas-env: takes no value, got 'yes'");
    expect(() => parseArgs(['--processes', '0'])).toThrow("--processes: expected an integer >= 1, got '0'");
  });
});
