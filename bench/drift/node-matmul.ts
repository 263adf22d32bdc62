/**
 * One fresh process: a 1024^3 matmul through tfjs on vlmix-cpu, 30 timed calls, and the CPU time each thread
 * of the process used in that window (/proc/self/task/<tid>/stat utime + stime): tells a process whose two
 * threads shared one CPU (their CPU times add up to about the wall time) from one whose threads both ran but
 * slowly (about twice the wall time). Prints one JSON line (bench/drift/README.md):
 *   pnpm exec tsx --conditions=@vlmix/source bench/drift/node-matmul.ts
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { sync } from '../src/tfutil.js';

/** CPU milliseconds used so far by each thread of this process, by "<comm>#<tid>". */
function threadCpuMs(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
      out.set(`${comm}#${tid}`, (Number(f[11]) + Number(f[12])) * 10); // utime + stime, 100 Hz ticks
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

await native.useBackend('vlmix-cpu');
const a = tf.randomNormal([1024, 1024]);
const b = tf.randomNormal([1024, 1024]);
const run = () => {
  const c = tf.matMul(a, b);
  sync(c);
  c.dispose();
};
run();
run();
const before = threadCpuMs();
const ms: number[] = [];
const w0 = performance.now();
for (let i = 0; i < 30; i++) {
  const t0 = performance.now();
  run();
  ms.push(performance.now() - t0);
}
const wallMs = performance.now() - w0;
const cpuMsByThread: Record<string, number> = {};
for (const [k, v] of threadCpuMs()) if (v - (before.get(k) ?? 0) > 0) cpuMsByThread[k] = v - (before.get(k) ?? 0);
ms.sort((x, y) => x - y);
console.log(JSON.stringify({ median: +ms[15]!.toFixed(3), p25: +ms[7]!.toFixed(3), p75: +ms[22]!.toFixed(3), wallMs: Math.round(wallMs), cpuMsByThread }));
tf.dispose([a, b]);
