/**
 * One process of `pnpm bench distributed` (started by suites/distributed.ts, under mpirun or alone).
 *   --mode allreduce --sizes 1024,1048576 --repeats R --warmup W --out FILE
 *       per size and algorithm: R timed all-reduces, each started after a barrier; a sample is the
 *       slowest rank's time.
 *   --mode train --preset gpt2-tiny --batch B --seq T --steps S --warmup W --out FILE
 *       data-parallel training steps on the global batch B x T (each rank its shard): step time
 *       (slowest rank), the time spent waiting for the slowest rank's backward (a barrier), and the
 *       time of the gradient all-reduce and loss mean after it.
 * Rank 0 writes FILE (JSON).
 */
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { createModel } from '@vlmix/core';
import { DataParallel, initDistributed, type Communicator } from '@vlmix/distributed';
import { AdamW } from '@vlmix/train';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`distributed-worker: --${name} is required`);
  return v;
}
const num = (name: string, def?: number) => Number(arg(name, def === undefined ? undefined : String(def)));

/** Per-sample maximum over ranks (the collective step ends when the slowest rank is done). */
function slowest(world: Communicator, samples: number[]): number[] {
  const all = world.allGather(Float64Array.from(samples));
  return samples.map((_, i) => Math.max(...Array.from({ length: world.size }, (_, r) => all[r * samples.length + i]!)));
}

function allReduceBench(world: Communicator): unknown {
  const repeats = num('repeats');
  const warmup = num('warmup', 2);
  const rows = [];
  for (const n of arg('sizes').split(',').map(Number)) {
    for (const deterministic of [true, false]) {
      const buf = new Float32Array(n).fill(1);
      const once = () => world.allReduce(buf, 'sum', { deterministic, check: false });
      for (let i = 0; i < warmup; i++) once();
      const ms: number[] = [];
      for (let i = 0; i < repeats; i++) {
        world.barrier();
        const t0 = performance.now();
        once();
        ms.push(performance.now() - t0);
      }
      rows.push({ n, deterministic, ms: slowest(world, ms) });
    }
  }
  return { rows };
}

async function trainBench(world: Communicator): Promise<unknown> {
  const { backend } = await native.useBackend('auto');
  const [B, T, steps, warmup] = [num('batch'), num('seq'), num('steps'), num('warmup', 2)];
  const model = createModel(arg('preset'), { seed: 0 });
  const trainable = model.params.trainable();
  const vars = trainable.map((p) => p.variable);
  const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
  const opt = new AdamW(trainable.map((p) => ({ name: p.name, variable: p.variable })), { lr: 1e-3 });
  const dp = new DataParallel({ comm: world });
  dp.broadcastParameters(model.params.list());
  const shard = dp.shard(B);
  const vocab = model.config.vocabSize;
  const ids = tf.randomUniformInt([B, T], 0, vocab, 1).slice([shard.start, 0], [shard.rows, T]);
  const labels = tf.randomUniformInt([B, T], 0, vocab, 2).slice([shard.start, 0], [shard.rows, T]);
  const stepMs: number[] = [];
  const commMs: number[] = [];
  const waitMs: number[] = [];
  let gradElems = 0;
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => model.loss({ inputIds: ids as tf.Tensor2D }, labels), vars);
    const local = new Map(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g]));
    value.dataSync();
    const t1 = performance.now();
    // Separates waiting for the slowest rank's backward from the communication itself.
    world.barrier();
    const t1b = performance.now();
    const avg = dp.reduceGradients(local, { rows: shard.rows, totalRows: B });
    dp.meanOf(value.dataSync()[0]!, shard.rows);
    const t2 = performance.now();
    opt.step(avg);
    vars[vars.length - 1]!.dataSync();
    const t3 = performance.now();
    gradElems = [...avg.values()].reduce((a, g) => a + g.size, 0);
    tf.dispose([value, ...local.values(), ...avg.values()]);
    if (s >= warmup) {
      stepMs.push(t3 - t0);
      waitMs.push(t1b - t1);
      commMs.push(t2 - t1b);
    }
  }
  return {
    backend, threadsPerRank: backend === native.BACKEND_NAME ? native.nativeInfo().threads : 1, gradBytes: gradElems * 4,
    tokens: B * T, stepMs: slowest(world, stepMs), commMs: slowest(world, commMs), waitMs: slowest(world, waitMs),
  };
}

async function main(): Promise<void> {
  const mode = arg('mode');
  const world = initDistributed({ require: process.env.OMPI_COMM_WORLD_SIZE !== undefined });
  const result = mode === 'allreduce' ? allReduceBench(world) : await trainBench(world);
  if (world.rank === 0) writeFileSync(arg('out'), JSON.stringify({ size: world.size, library: world.library, ...(result as object) }));
  world.barrier();
}

main().catch((e: Error) => {
  process.stderr.write(`distributed-worker: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
