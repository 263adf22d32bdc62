// @vlmix/train's Trainer with `distributed: new DataParallel()`: the library's data-parallel loop (the
// hand-written one is train.ts). One process per rank:
//   mpirun -np 2 node --import tsx trainer.ts --steps 20 --out /tmp/x [--dir RUN --save-every K]
//          [--kill-rank R --kill-at K] [--resume]
// Writes <out>.rank<r>.json: the global loss and a sha256 of every parameter after each step.
import * as tf from '@tensorflow/tfjs';
import { Trainer, type DataSource } from '@vlmix/train';
import { DataParallel, initDistributed, tensorsDigest } from '../../src/index.js';
import { BATCHES, CLIP, LR, globalBatch, lossOf, slice, tinyModel, type Rows } from '../task.js';
import { arg, flag, numArg, selectBackend, writeResult } from './common.js';

async function main(): Promise<void> {
  const world = initDistributed({ require: !flag('local'), timeoutMs: numArg('timeout-ms') ?? 120_000 });
  const backend = await selectBackend();
  const killAt = numArg('kill-at');
  const killRank = numArg('kill-rank') ?? 1;
  const model = tinyModel();
  const dp = new DataParallel({ bucketBytes: numArg('bucket-bytes') ?? 8192 });
  // Every rank draws the same global batch (same index, same order) and keeps its shard of the rows.
  const data: DataSource<Rows> = { length: BATCHES, get: (i) => shardOf(globalBatch(i)) };
  function shardOf(b: Rows): Rows {
    const s = dp.shard(b.ids.length);
    return slice(b, s.start, s.end);
  }
  const steps: { step: number; loss: number; digest: string }[] = [];
  const dir = arg('dir');
  const trainer = new Trainer({
    model, data, steps: numArg('steps')!, shuffle: false, clipNorm: CLIP, optimizer: { lr: LR }, log: 'silent',
    outDir: dir, checkpointEvery: dir ? numArg('save-every') : undefined, checkpointEverySeconds: false,
    distributed: dp, lossWeight: (b) => b.ids.length,
    lossFn: (b, { model: m }) => lossOf(m as typeof model, b),
    onStep: (r) => {
      steps.push({ step: r.step, loss: r.loss, digest: tensorsDigest(model.stateDict()) });
      if (r.step === killAt && world.rank === killRank) process.kill(process.pid, 'SIGKILL');
    },
  });
  let resumedFrom: number | null = null;
  if (flag('resume')) resumedFrom = (await trainer.resume(dir!)).step;
  const before = tf.memory().numTensors;
  const res = await trainer.train();
  const leaked = tf.memory().numTensors - before;
  trainer.dispose();
  writeResult(arg('out')!, world.rank, { rank: world.rank, size: world.size, backend, leaked, resumedFrom, lastCheckpoint: res.lastCheckpoint, steps });
}

main().catch((e: Error) => {
  process.stderr.write(`trainer worker: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
