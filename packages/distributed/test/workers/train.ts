// A data-parallel training loop written with @vlmix/distributed's seam, core ops and @vlmix/train's
// AdamW / clipping / checkpoint files: what Trainer({ distributed }) will do. One process per rank:
//   mpirun -np 2 node --import tsx train.ts --steps 20 --out /tmp/x [--ckpt DIR --save-at K]
//          [--kill-rank R --kill-at K] [--resume] [--bucket-bytes N]
// Writes <out>.rank<r>.json: the global loss and a sha256 of every parameter after each step.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@vlmix/core';
import { AdamW, checkpointMoments, checkpointWeights, clipGradNorm, loadCheckpoint, saveCheckpoint } from '@vlmix/train';
import { DataParallel, initDistributed, tensorsDigest } from '../../src/index.js';
import { BATCHES, CLIP, LR, globalBatch, lossOf, slice, tinyModel } from '../task.js';
import { arg, flag, numArg, selectBackend, writeResult } from './common.js';

interface StepOut {
  step: number;
  loss: number;
  digest: string;
}

async function main(): Promise<void> {
  const world = initDistributed({ require: !flag('local'), timeoutMs: numArg('timeout-ms') ?? 120_000 });
  const backend = await selectBackend();
  const steps = numArg('steps')!;
  const out = arg('out')!;
  const ckptDir = arg('ckpt');
  const saveAt = numArg('save-at');
  const killAt = numArg('kill-at');
  const killRank = numArg('kill-rank') ?? 1;

  const model = tinyModel();
  const trainable = model.params.trainable();
  const varList = trainable.map((p) => p.variable);
  const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
  const opt = new AdamW(trainable.map((p) => ({ name: p.name, variable: p.variable })), { lr: LR });
  const dp = new DataParallel({ bucketBytes: numArg('bucket-bytes') ?? 8192 });
  const root = world.rank === 0;

  let step = 0;
  let history: StepOut[] = [];
  let resumedFrom: number | null = null;
  if (flag('resume')) {
    // Rank 0 reads the checkpoint; the others receive it (no shared file system needed).
    const ckpt = root ? await loadCheckpoint(ckptDir!) : null;
    const state = world.broadcastJson(ckpt ? ckpt.state : null)!;
    dp.checkResume((state.config as { distributed?: { worldSize: number } }).distributed);
    const weights = dp.broadcastTensors(ckpt ? checkpointWeights(ckpt) : null);
    model.loadStateDict(weights, { strict: true });
    const moments = ckpt ? checkpointMoments(ckpt) : null;
    const m = dp.broadcastTensors(moments?.m ?? null);
    const v = dp.broadcastTensors(moments?.v ?? null);
    opt.loadState({ step: state.optimizer.step, m, v });
    for (const t of [...weights.values(), ...m.values(), ...v.values(), ...(moments ? [...moments.m.values(), ...moments.v.values()] : [])]) t.dispose();
    step = resumedFrom = state.step;
    history = state.metrics as StepOut[];
  } else {
    dp.broadcastParameters(model.params.list());
  }

  const tensorsAtStart = tf.memory().numTensors;
  for (; step < steps; step++) {
    const batch = globalBatch(step % BATCHES);
    const shard = dp.shard(batch.ids.length);
    const { value, grads } = tf.variableGrads(() => lossOf(model, slice(batch, shard.start, shard.end)), varList);
    const local = new Map(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g]));
    const avg = dp.reduceGradients(local, { rows: shard.rows, totalRows: shard.total });
    const loss = dp.meanOf(value.dataSync()[0]!, shard.rows);
    const clipped = clipGradNorm(avg, CLIP);
    opt.step(clipped.grads, LR);
    for (const m of [local, avg, clipped.grads]) for (const t of m.values()) if (!t.isDisposed) t.dispose();
    value.dispose();
    history.push({ step: step + 1, loss, digest: tensorsDigest(model.stateDict()) });

    if (step + 1 === saveAt) {
      const st = opt.state();
      await dp.runOnRoot('save checkpoint', () => saveCheckpoint(ckptDir!, {
        step: step + 1,
        weights: model.stateDict() as Map<string, tf.Tensor>,
        optimizer: { m: st.m, v: st.v },
        state: {
          data: { epoch: Math.floor((step + 1) / BATCHES), index: (step + 1) % BATCHES, seed: 'copy', length: BATCHES },
          rng: new Rng('unused').state(),
          optimizer: { step: st.step, lr: LR, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay },
          config: { distributed: dp.record() },
          metrics: history,
        },
      }));
    }
    if (step + 1 === killAt && world.rank === killRank) process.kill(process.pid, 'SIGKILL');
  }
  const leaked = tf.memory().numTensors - tensorsAtStart;
  writeResult(out, world.rank, { rank: world.rank, size: world.size, backend, library: world.library, leaked, resumedFrom, steps: history });
}

main().catch((e: Error) => {
  process.stderr.write(`train worker: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
