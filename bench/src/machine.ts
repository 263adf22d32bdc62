/** What machine and software the numbers come from. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { ResultsFile } from './types.js';

const ZEN: Record<number, string> = { 23: 'Zen/Zen 2', 25: 'Zen 3/Zen 4', 26: 'Zen 5' };

export function machineInfo(label?: string): ResultsFile['machine'] {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    /* not Linux */
  }
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const cpuModel = field('model name') ?? os.cpus()[0]?.model ?? 'unknown';
  const fam = field('cpu family');
  const cpuFamily = fam != null ? Number(fam) : null;
  const allFlags = new Set((field('flags') ?? '').split(/\s+/));
  const flags = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_bf16', 'amx_tile'].filter((f) => allFlags.has(f));
  const hypervisor = allFlags.has('hypervisor');
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const memoryGiB = Math.round(os.totalmem() / 2 ** 30);
  const vendorAmd = /AMD/i.test(cpuModel);
  const arch = vendorAmd && cpuFamily != null && ZEN[cpuFamily] ? ` ${ZEN[cpuFamily]}` : '';
  const simd = allFlags.has('avx512f') ? ', AVX-512' : allFlags.has('avx2') ? ', AVX2' : '';
  const auto = `${cores}-core ${cpuModel}${arch}${hypervisor ? ' (virtualised)' : ''}${simd}, ${memoryGiB} GiB, Node ${process.versions.node}`;
  return {
    label: label ?? process.env.VLMIX_BENCH_MACHINE ?? auto,
    cpuModel,
    cpuFamily,
    cores,
    memoryGiB,
    flags,
    hypervisor,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}
