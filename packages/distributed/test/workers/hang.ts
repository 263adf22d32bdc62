// Rank 1 hangs (blocks forever without exiting) after one good collective; rank 0's next collective
// must end in DistributedTimeoutError after --timeout-ms, and its non-zero exit stop the job.
import { initDistributed } from '../../src/index.js';
import { numArg } from './common.js';

// A generous limit while the ranks start (one may load much later than the other on a busy machine).
const world = initDistributed({ require: true, timeoutMs: 120_000 });
try {
  world.allReduce(new Float32Array(4));
  world.timeoutMs = numArg('timeout-ms') ?? 2000;
  if (world.rank === 1) {
    process.stderr.write('hang worker: rank 1 blocks now\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  world.allReduce(new Float32Array(4));
  process.stderr.write(`hang worker: rank ${world.rank} passed the second all-reduce\n`);
} catch (e) {
  process.stderr.write(`hang worker: ${(e as Error).name}: ${(e as Error).message}\n`);
  process.exit(1);
}
