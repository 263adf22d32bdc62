/** `vlmix train <preset> --steps N --seed S --out DIR [--backend B] [--resume] [--json]` */
import { intFlag, parseArgs, strFlag, UsageError } from '../args.js';
import { chooseBackend } from '../backend.js';
import { DEFAULTS, runExperiment, type ExperimentResult } from '../experiment.js';
import type { IO } from '../io.js';
import { VLM_PRESETS } from '@vlmix/fusion';

export const trainHelp = `Usage: vlmix train <preset> --steps N [--seed S] [--out DIR] [--backend B] [--resume] [--json]

Trains a fusion preset (typeA-tiny, typeB-tiny, typeC-tiny, typeC-qformer-tiny, typeD-tiny, lm-tiny)
on the seeded synthetic visual-QA set and reports held-out exact-match accuracy.

Options:
  --steps N         optimizer steps in total (with --resume: continue up to N)
  --seed S          seed of data, weights and order (default 0)
  --out DIR         run directory: checkpoint/, metrics.jsonl, vlmix-run.json
  --data DIR        train on an images/ + labels/ folder (CogVLM-SFT-311K format) instead of the
                    synthetic set; the last 10% of records (or --held-out N) are held out
  --resume          continue the run saved in --out (the loss curve equals an uninterrupted run)
  --backend B       auto | vlmix-cpu | cpu | wasm | tensorflow (default auto)
  --batch-size N    default ${DEFAULTS.batchSize}
  --lr X            peak learning rate (default: the preset's: ${VLM_PRESETS.filter((x) => x.lr).map((x) => `${x.name} ${x.lr}`).join(', ')}, others ${DEFAULTS.lr})
  --train-size N    training samples (default ${DEFAULTS.trainSize})
  --held-out N      held-out samples (default ${DEFAULTS.heldOutSize}; with --data: records)
  --vq-steps N      type D: image-tokenizer pre-training steps (default ${DEFAULTS.vqSteps})
  --eval-every N    also measure held-out accuracy every N steps (log and metrics.jsonl)
  --log MODE        auto | tty | plain | silent (progress goes to stderr)
  --json            last stdout line: {"preset","steps","loss","accuracy","stepMs","tokensPerSec","params","trainableParams"}
`;

export function trainSummary(r: ExperimentResult) {
  return {
    preset: r.preset, steps: r.steps, loss: r.loss, accuracy: r.accuracy, stepMs: r.stepMs,
    tokensPerSec: r.tokensPerSec, params: r.params, trainableParams: r.trainableParams,
  };
}

export async function runTrain(argv: string[], io: IO): Promise<number> {
  const p = parseArgs(argv, {
    booleans: ['json', 'resume', 'help'],
    values: ['steps', 'seed', 'out', 'data', 'backend', 'batch-size', 'lr', 'train-size', 'held-out', 'log', 'eval-every', 'vq-steps'],
  });
  if (p.flags.has('help')) {
    io.out(trainHelp);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`train takes one preset name, got ${p.positionals.length}`);
  if (p.flags.has('resume') && !p.flags.has('out')) throw new UsageError(`--resume needs --out DIR (the run to continue)`);
  const lr = strFlag(p, 'lr');
  if (lr != null && !(Number(lr) > 0)) throw new UsageError(`--lr: expected a positive number, got ${JSON.stringify(lr)}`);
  if (p.flags.has('eval-every') && intFlag(p, 'eval-every') < 1) throw new UsageError(`--eval-every: expected a positive integer, got ${intFlag(p, 'eval-every')}`);
  const log = strFlag(p, 'log') ?? 'auto';
  if (!['auto', 'tty', 'plain', 'silent'].includes(log)) throw new UsageError(`--log: expected auto, tty, plain or silent, got ${JSON.stringify(log)}`);
  await chooseBackend(strFlag(p, 'backend'), io.err);
  const r = await runExperiment({
    preset: p.positionals[0]!,
    steps: intFlag(p, 'steps'),
    seed: intFlag(p, 'seed', 0),
    outDir: strFlag(p, 'out'),
    dataDir: strFlag(p, 'data'),
    resume: p.flags.has('resume'),
    batchSize: intFlag(p, 'batch-size', DEFAULTS.batchSize),
    lr: lr == null ? undefined : Number(lr),
    trainSize: intFlag(p, 'train-size', DEFAULTS.trainSize),
    heldOutSize: p.flags.has('held-out') || !p.flags.has('data') ? intFlag(p, 'held-out', DEFAULTS.heldOutSize) : undefined,
    vqSteps: intFlag(p, 'vq-steps', DEFAULTS.vqSteps),
    evalEvery: p.flags.has('eval-every') ? intFlag(p, 'eval-every') : undefined,
    log: log as 'auto',
    logStream: process.stderr,
  });
  const s = trainSummary(r);
  if (p.flags.has('json')) io.out(JSON.stringify(s));
  else {
    io.out(`${r.preset}: ${r.steps} steps, loss ${r.loss.toFixed(4)}, held-out accuracy ${(100 * r.accuracy).toFixed(1)}% ` +
      `(${Object.entries(r.accuracyByKind).map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(', ')}), ${r.stepMs.toFixed(1)} ms/step, ${Math.round(r.tokensPerSec)} tokens/s`);
  }
  return 0;
}
