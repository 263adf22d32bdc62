/** `vlmix train <preset> --steps N ...`: argument parsing and printing around trainVlm (@vlmix/fusion). */
import { TRAIN_VLM_DEFAULTS, listVlmPresets, trainVlm, type TrainVlmOptions, type TrainVlmResult } from '@vlmix/fusion';
import { boundedIntFlag, intFlag, parseArgs, positiveNumberFlag, shellQuote, strFlag, UsageError } from '../args.js';
import { BACKEND_NAMES, chooseBackend } from '../backend.js';
import { EXIT_CODE, GracefulStop } from '../interrupt.js';
import type { IO } from '../io.js';

export function trainHelp(): string {
  const presets = listVlmPresets();
  return `Usage: vlmix train <preset> --steps N [--seed S] [--out DIR] [--resume | --overwrite] [--backend B] [--json]

Trains a fusion preset on the seeded synthetic visual-QA set and reports held-out exact-match accuracy.
Presets: ${presets.map((x) => x.name).join(', ')}

Options:
  --steps N              optimizer steps in total (with --resume: continue up to N; see "Resuming")
  --seed S               seed of data, weights and order (default 0)
  --out DIR              run directory: checkpoint/, metrics.jsonl, vlmix-run.json (locked while training)
  --resume               continue the run saved in --out
  --overwrite            start over in a non-empty --out, deleting its checkpoint/, metrics.jsonl and vlmix-run.json
  --data DIR             train on an images/ + labels/ folder (CogVLM-SFT-311K format) instead of the
                         synthetic set; the last 10% of records (or --held-out N) are held out
  --on-bad-record P      with --data: error (default: stop, naming the file) | skip (warn per record, count at the end)
  --decode-workers N     with --data: threads decoding the next batches' images while a step runs
                         (default: cores - 1, at least 1; 0 = decode on the main thread)
  --grad-checkpoint      recompute each layer in the backward pass (less activation memory, ~1 more forward)
  --no-capture-steps     run every step through the model code; by default each batch shape's forward and
                         backward pass is recorded on its first two steps and replayed after (the same
                         results bit for bit, less dispatch time)
  --precision P          fp32 (default) | bf16: matmuls and linear layers with bf16 operands and fp32 sums
                         (vlmix-cpu on a CPU with AVX512-BF16; weights, optimizer and other ops stay fp32)
  --image-decoder D      with --data: auto (default: sharp on the decode workers when installed, else js) |
                         js (the same pixels everywhere) | sharp (libvips, ~5x faster decoding per worker)
  --backend B            ${BACKEND_NAMES.join(' | ')} (default auto; vlmix-cuda is experimental)
  --batch-size N         default ${TRAIN_VLM_DEFAULTS.batchSize}
  --lr X                 peak learning rate (default: the preset's: ${presets.filter((x) => x.lr).map((x) => `${x.name} ${x.lr}`).join(', ')}, others ${TRAIN_VLM_DEFAULTS.lr})
  --train-size N         training samples (default ${TRAIN_VLM_DEFAULTS.trainSize})
  --held-out N           held-out samples (default ${TRAIN_VLM_DEFAULTS.heldOutSize}; with --data: records; 0: no evaluation)
  --vq-steps N           type D: image-tokenizer pre-training steps (default ${TRAIN_VLM_DEFAULTS.vqSteps})
  --eval-every N         also measure held-out accuracy every N steps (log and metrics.jsonl)
  --checkpoint-every N   a checkpoint every N steps (default max(50, steps/4))
  --checkpoint-minutes M and one every M minutes of training (default 5)
  --keep-checkpoints K   checkpoints kept; an older one is the fallback if the newest is damaged (default 2)
  --log MODE             auto | tty | plain | silent (progress goes to stderr)
  --distributed          data-parallel training over the processes of an MPI launch:
                           mpirun -np N pnpm vlmix train <preset> --steps S --out DIR --distributed
                         every rank trains on its shard of each global batch (--batch-size stays the global
                         batch); rank 0 prints, writes --out and the --json line (see docs/distributed.md)
  --json                 last stdout line: {"preset","steps","loss","accuracy","stepMs","tokensPerSec","params","trainableParams",
                         "replayedSteps"}
                         (accuracy is null when nothing was evaluated)

Resuming: the seed, data and batch size must be the run's, and the learning-rate schedule is the one
stored in its checkpoint. A larger --steps extends the run: the schedule is not stretched, the steps
past its end run at its final lr (a tenth of the peak). A --steps below the checkpoint's step is an error.

Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint, prints the command that resumes
the run and exits with 130 (143); a second Ctrl-C ends the process at once. Under mpirun (Open MPI),
Ctrl-C reaches the ranks as SIGTERM: they stop after the same step and rank 0 writes the checkpoint.
`;
}

/** --precision bf16: the vlmix-cpu backend's bf16 matmuls (an error naming the backend or the CPU otherwise). */
async function useBf16Matmuls(backend: string): Promise<() => void> {
  const native = await import('@vlmix/backend-native');
  if (backend !== native.BACKEND_NAME) throw new UsageError(`--precision bf16 needs the ${native.BACKEND_NAME} backend, but ${backend} is in use`);
  const before = native.matmulPrecision();
  try {
    native.setMatmulPrecision('bf16');
  } catch (e) {
    throw new UsageError(`--precision bf16: ${(e as Error).message}`);
  }
  return () => native.setMatmulPrecision(before);
}

export function trainSummary(r: TrainVlmResult) {
  return {
    preset: r.preset, steps: r.steps, loss: r.loss, accuracy: r.accuracy, stepMs: r.stepMs,
    tokensPerSec: r.tokensPerSec, params: r.params, trainableParams: r.trainableParams, replayedSteps: r.replayedSteps,
  };
}

/** How errors of trainVlm name its options: by our flags. */
const LABELS: TrainVlmOptions['labels'] = {
  steps: '--steps', seed: '--seed', batchSize: '--batch-size', lr: '--lr', outDir: '--out', resume: '--resume', overwrite: '--overwrite',
  dataDir: '--data', decodeWorkers: '--decode-workers', imageDecoder: '--image-decoder', trainSize: '--train-size', heldOutSize: '--held-out', evalEvery: '--eval-every', vqSteps: '--vq-steps',
  checkpointEvery: '--checkpoint-every', checkpointEverySeconds: '--checkpoint-minutes', keepCheckpoints: '--keep-checkpoints', recipe: 'recipe',
};

/** The command line that continues this run: the same arguments, --resume instead of --overwrite. */
export function resumeCommand(argv: string[]): string {
  const args = argv.filter((a) => a !== '--overwrite' && a !== '--resume');
  const prefix = process.env.npm_lifecycle_event === 'vlmix' ? 'pnpm vlmix' : 'vlmix';
  return `${prefix} train ${[...args, '--resume'].map(shellQuote).join(' ')}`;
}

export async function runTrain(argv: string[], io: IO): Promise<number> {
  const p = parseArgs(argv, {
    booleans: ['json', 'resume', 'overwrite', 'help', 'distributed', 'grad-checkpoint', 'no-capture-steps'],
    values: ['steps', 'seed', 'out', 'data', 'backend', 'batch-size', 'lr', 'train-size', 'held-out', 'log', 'eval-every', 'vq-steps',
      'checkpoint-every', 'checkpoint-minutes', 'keep-checkpoints', 'on-bad-record', 'decode-workers', 'image-decoder', 'precision'],
  });
  if (p.flags.has('help')) {
    io.out(trainHelp());
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`train takes one preset name, got ${p.positionals.length}`);
  const outDir = strFlag(p, 'out');
  for (const f of ['resume', 'overwrite', 'checkpoint-every', 'checkpoint-minutes', 'keep-checkpoints']) {
    if (p.flags.has(f) && !outDir) throw new UsageError(`--${f} needs --out DIR (the run directory)`);
  }
  if (p.flags.has('resume') && p.flags.has('overwrite')) throw new UsageError(`--resume and --overwrite exclude each other: continue the run in --out, or replace it`);
  const log = strFlag(p, 'log') ?? 'auto';
  if (!['auto', 'tty', 'plain', 'silent'].includes(log)) throw new UsageError(`--log: expected auto, tty, plain or silent, got ${JSON.stringify(log)}`);
  const hasData = p.flags.has('data');
  const onBadRecord = strFlag(p, 'on-bad-record');
  if (onBadRecord !== undefined && onBadRecord !== 'error' && onBadRecord !== 'skip') throw new UsageError(`--on-bad-record: expected error or skip, got ${JSON.stringify(onBadRecord)}`);
  if (onBadRecord !== undefined && !hasData) throw new UsageError('--on-bad-record needs --data DIR');
  if (p.flags.has('decode-workers') && !hasData) throw new UsageError('--decode-workers needs --data DIR');
  const decodeWorkers = p.flags.has('decode-workers') ? boundedIntFlag(p, 'decode-workers', 0) : undefined;
  const imageDecoder = strFlag(p, 'image-decoder');
  if (imageDecoder !== undefined && !['auto', 'js', 'sharp'].includes(imageDecoder)) throw new UsageError(`--image-decoder: expected auto, js or sharp, got ${JSON.stringify(imageDecoder)}`);
  if (imageDecoder !== undefined && !hasData) throw new UsageError('--image-decoder needs --data DIR');
  const precision = strFlag(p, 'precision') ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new UsageError(`--precision: expected fp32 or bf16, got ${JSON.stringify(precision)}`);
  const minutes = positiveNumberFlag(p, 'checkpoint-minutes');
  const opts: TrainVlmOptions = {
    steps: boundedIntFlag(p, 'steps', 1),
    seed: intFlag(p, 'seed', 0),
    outDir,
    dataDir: strFlag(p, 'data'),
    ...(onBadRecord ? { onBadRecord } : {}),
    ...(decodeWorkers !== undefined ? { decodeWorkers } : {}),
    ...(p.flags.has('grad-checkpoint') ? { gradientCheckpointing: true } : {}),
    ...(p.flags.has('no-capture-steps') ? { captureSteps: false } : {}),
    ...(imageDecoder ? { imageDecoder: imageDecoder as 'auto' | 'js' | 'sharp' } : {}),
    resume: p.flags.has('resume'),
    overwrite: p.flags.has('overwrite'),
    batchSize: boundedIntFlag(p, 'batch-size', 1, TRAIN_VLM_DEFAULTS.batchSize),
    lr: positiveNumberFlag(p, 'lr'),
    trainSize: hasData ? undefined : boundedIntFlag(p, 'train-size', 1, TRAIN_VLM_DEFAULTS.trainSize),
    heldOutSize: p.flags.has('held-out') || !hasData ? boundedIntFlag(p, 'held-out', 0, TRAIN_VLM_DEFAULTS.heldOutSize) : undefined,
    vqSteps: boundedIntFlag(p, 'vq-steps', 0, TRAIN_VLM_DEFAULTS.vqSteps),
    evalEvery: p.flags.has('eval-every') ? boundedIntFlag(p, 'eval-every', 1) : undefined,
    checkpointEvery: p.flags.has('checkpoint-every') ? boundedIntFlag(p, 'checkpoint-every', 1) : undefined,
    checkpointEverySeconds: minutes === undefined ? undefined : minutes * 60,
    keepCheckpoints: p.flags.has('keep-checkpoints') ? boundedIntFlag(p, 'keep-checkpoints', 1) : undefined,
    log: log as 'auto',
    logStream: process.stderr,
    labels: LABELS,
    lockCommand: `vlmix train ${argv.map(shellQuote).join(' ')}`,
    onWarning: (m) => io.err(`warning: ${m}`),
  };
  if (opts.evalEvery && opts.heldOutSize === 0) throw new UsageError(`--eval-every needs held-out samples, but --held-out is 0`);
  // --distributed: join the MPI launch (an error without mpirun); only rank 0 prints and writes.
  let rank = 0;
  if (p.flags.has('distributed')) {
    const { DataParallel, initDistributed } = await import('@vlmix/distributed');
    initDistributed({ require: true });
    const dp = new DataParallel();
    opts.distributed = dp;
    rank = dp.rank;
    if (rank !== 0) {
      opts.log = 'silent';
      opts.onWarning = () => {};
    }
  }
  const root = rank === 0;
  const backend = await chooseBackend(strFlag(p, 'backend'), root ? io.err : () => {});
  // bf16 matmuls for this run only (the precision is process-wide: restored when the run ends)
  const restorePrecision = precision === 'bf16' ? await useBf16Matmuls(backend) : null;
  let step = 0;
  let lastSaved: number | null = null;
  const stop = new GracefulStop(
    (sig) => {
      if (!root) return;
      io.err(`\nvlmix train: ${sig} received: stopping after step ${step} ${outDir ? 'and writing a checkpoint' : '(no --out: nothing is saved)'}; ` +
        `${sig === 'SIGINT' ? 'press Ctrl-C' : 'send it'} again to end at once`);
    },
    (sig) => {
      io.err(`vlmix train: second ${sig}: ending now${lastSaved === null ? '' : `; the newest checkpoint is step ${lastSaved}`}`);
      process.exit(EXIT_CODE[sig]);
    },
  );
  let r: TrainVlmResult;
  try {
    r = await trainVlm(p.positionals[0]!, {
      ...opts,
      signal: stop.signal,
      onStep: (rec) => void (step = rec.step),
      onCheckpoint: (c) => void (lastSaved = c.step),
      onPhase: (phase) => (phase === 'train' ? stop.install() : stop.uninstall()),
    });
  } finally {
    stop.uninstall();
    restorePrecision?.();
  }
  if (!root) return r.interrupted ? EXIT_CODE[stop.received ?? 'SIGINT'] : 0;
  if (r.interrupted) {
    const sig = stop.received ?? 'SIGINT';
    const where = r.lastCheckpoint ? `; checkpoint of step ${r.lastCheckpoint.step} saved in ${r.lastCheckpoint.dir}` : '; nothing was saved (no --out)';
    io.err(`vlmix train: stopped by ${sig} after step ${r.steps} of ${opts.steps}${where}`);
    if (r.lastCheckpoint) io.err(`resume with: ${resumeCommand(argv)}`);
    return EXIT_CODE[sig];
  }
  const s = trainSummary(r);
  if (p.flags.has('json')) io.out(JSON.stringify(s));
  else {
    const acc = r.accuracy === null
      ? 'held-out accuracy not measured (no held-out samples: --held-out 0)'
      : `held-out accuracy ${(100 * r.accuracy).toFixed(1)}% (${Object.entries(r.accuracyByKind).map(([k, v]) => `${k} ${(100 * v).toFixed(0)}%`).join(', ')}, ${r.evaluated} samples)`;
    io.out(`${r.preset}: ${r.steps} steps, loss ${r.loss.toFixed(4)}, ${acc}, ${r.stepMs.toFixed(1)} ms/step, ${Math.round(r.tokensPerSec)} tokens/s`);
  }
  return 0;
}
