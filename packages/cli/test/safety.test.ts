// Issue 11 at the command line: run directories are never overwritten by accident, every flag error
// names the flag, run metadata is written only after validation, damaged runs are reported clearly;
// issue 12: third-party presets show up in train --help and inspect, --backend can ask for vlmix-cuda.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { encodePng, makeShapesDataset } from '@vlmix/data';
import { loadRun, trainVlm, buildTypeC, type VlmPreset } from '@vlmix/fusion';
import { loadPlugins } from '../src/index.js';
import { run, tempDirs } from './helpers.js';

const tmpDir = tempDirs();
const tmp = (p = 'vlmix-cli-safety-') => tmpDir(p);

const small = ['--train-size', '48', '--held-out', '12', '--batch-size', '8', '--log', 'silent'];
const lossesOf = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
const firstLine = (s: string) => s.split('\n').find((l) => l.startsWith('vlmix '))!;

/** Inverts bytes in the middle of a file. */
function damage(path: string): void {
  const b = readFileSync(path);
  for (let i = 0; i < 2; i++) b[(b.length >> 1) + i] ^= 0xff;
  writeFileSync(path, b);
}

describe('flag errors name the flag', () => {
  it.each([
    [['--batch-size', '0'], '--batch-size: expected a positive integer, got 0'],
    [['--lr', 'Infinity'], '--lr: expected a positive finite number, got "Infinity"'],
    [['--lr', '-1e-3'], '--lr: expected a positive finite number, got "-1e-3"'],
    [['--held-out', '-1'], '--held-out: expected an integer >= 0, got -1'],
    [['--train-size', '0'], '--train-size: expected a positive integer, got 0'],
    [['--keep-checkpoints', '0', '--out', 'x'], '--keep-checkpoints: expected a positive integer, got 0'],
    [['--checkpoint-every', '0', '--out', 'x'], '--checkpoint-every: expected a positive integer, got 0'],
    [['--checkpoint-minutes', 'soon', '--out', 'x'], '--checkpoint-minutes: expected a positive finite number, got "soon"'],
    [['--overwrite'], '--overwrite needs --out DIR (the run directory)'],
    [['--out', 'x', '--resume', '--overwrite'], '--resume and --overwrite exclude each other: continue the run in --out, or replace it'],
    [['--held-out', '0', '--eval-every', '1'], '--eval-every needs held-out samples, but --held-out is 0'],
  ])('%j', async (flags, msg) => {
    const r = await run(['train', 'typeC-tiny', '--steps', '2', ...flags]);
    expect(r.code).toBe(2);
    expect(firstLine(r.err)).toBe(`vlmix train: ${msg}`);
  });

  it('--held-out 0 trains and says nothing was evaluated (accuracy null in --json)', async () => {
    const r = await run(['train', 'typeC-tiny', '--steps', '1', ...small, '--held-out', '0']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^typeC-tiny: 1 steps, loss \d\.\d{4}, held-out accuracy not measured \(no held-out samples: --held-out 0\), /);
    const j = await run(['train', 'typeC-tiny', '--steps', '1', ...small, '--held-out', '0', '--json']);
    expect(JSON.parse(j.out.trim().split('\n').pop()!).accuracy).toBeNull();
  });

  it('a training set smaller than one batch names --batch-size', async () => {
    const r = await run(['train', 'typeC-tiny', '--steps', '1', ...small, '--batch-size', '64']);
    expect(firstLine(r.err)).toBe('vlmix train: --batch-size 64 exceeds the training set (48 samples)');
  });
});

describe('run directories', () => {
  it('a non-empty --out is refused without --resume or --overwrite; --overwrite starts over', async () => {
    const dir = tmp();
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--out', dir, ...small])).code).toBe(0);
    const before = readdirSync(join(dir, 'checkpoint')).map((f) => [f, readFileSync(join(dir, 'checkpoint', f)).toString('base64')]);
    const r = await run(['train', 'typeC-tiny', '--steps', '3', '--seed', '1', '--out', dir, ...small]);
    expect(r.code).toBe(1);
    expect(firstLine(r.err)).toBe(`vlmix train: --out ${dir} is not empty (it holds a run with a checkpoint); pass --resume to continue that run or --overwrite to replace it`);
    expect(readdirSync(join(dir, 'checkpoint')).map((f) => [f, readFileSync(join(dir, 'checkpoint', f)).toString('base64')])).toEqual(before);
    // Other files in the directory count too, and survive an overwrite.
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const o = await run(['train', 'typeC-tiny', '--steps', '3', '--seed', '1', '--out', dir, '--overwrite', ...small]);
    expect(o.code, o.err).toBe(0);
    expect(lossesOf(dir)).toHaveLength(3);
    expect(JSON.parse(readFileSync(join(dir, 'vlmix-run.json'), 'utf8')).seed).toBe(1);
    expect(readdirSync(join(dir, 'checkpoint')).filter((f) => f.startsWith('model-'))).toEqual(['model-00000003.safetensors']);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
    const other = tmp();
    writeFileSync(join(other, 'x'), '1');
    expect(firstLine((await run(['train', 'typeC-tiny', '--steps', '1', '--out', other, ...small])).err)).toBe(`vlmix train: --out ${other} is not empty (it holds x); pass --resume to continue that run or --overwrite to replace it`);
  });

  it('--resume checks preset, steps, seed, data and lr before writing anything; vlmix-run.json stays as it was', async () => {
    const dir = tmp();
    expect((await run(['train', 'typeC-tiny', '--steps', '3', '--out', dir, ...small])).code).toBe(0);
    const meta = readFileSync(join(dir, 'vlmix-run.json'), 'utf8');
    const state = readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8');
    const cases: [string[], string][] = [
      [['typeA-tiny', '--steps', '4'], `--resume: the run in ${dir} is preset 'typeC-tiny', not 'typeA-tiny'; pass 'typeC-tiny' to resume it`],
      [['typeC-tiny', '--steps', '2'], `--steps 2 is below the checkpoint's step 3 in ${join(dir, 'checkpoint')}; pass --steps 3 or more to continue the run`],
      [['typeC-tiny', '--steps', '4', '--seed', '1'], `--seed 1 differs from the run's 0 (recorded in ${join(dir, 'checkpoint')}); a resumed run must see the same data: pass the original value`],
      [['typeC-tiny', '--steps', '4', '--batch-size', '4'], `--batch-size 4 differs from the run's 8`],
      [['typeC-tiny', '--steps', '4', '--train-size', '40'], `--train-size 40 differs from the run's 48`],
      [['typeC-tiny', '--steps', '4', '--lr', '0.002'], `--lr 0.002 differs from the run's peak lr 0.001 (stored in its checkpoint); omit --lr when resuming`],
    ];
    for (const [args, msg] of cases) {
      const flags = args.includes('--batch-size') ? small.filter((x, i, a) => x !== '--batch-size' && a[i - 1] !== '--batch-size') : args.includes('--train-size') ? small.slice(2) : small;
      const r = await run(['train', ...args, '--out', dir, '--resume', ...flags]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(`vlmix train: ${msg}`);
    }
    expect(readFileSync(join(dir, 'vlmix-run.json'), 'utf8')).toBe(meta);
    expect(readFileSync(join(dir, 'checkpoint', 'state.json'), 'utf8')).toBe(state);
    expect(existsSync(join(dir, 'vlmix.lock'))).toBe(false);
    // ... and the run still loads.
    const vlm = await loadRun(dir);
    expect(vlm.type).toBe('C');
    vlm.dispose();
  });

  it('a corrupt vlmix-run.json is named in the error (train --resume and generate)', async () => {
    const dir = tmp();
    expect((await run(['train', 'typeC-tiny', '--steps', '1', '--out', dir, ...small])).code).toBe(0);
    const p = join(dir, 'vlmix-run.json');
    writeFileSync(p, readFileSync(p, 'utf8').slice(0, 40));
    const t = await run(['train', 'typeC-tiny', '--steps', '2', '--out', dir, '--resume', ...small]);
    expect(firstLine(t.err)).toMatch(new RegExp(`^vlmix train: ${p}: invalid JSON \\(.*\\); the run's metadata is damaged$`));
    const g = await run(['generate', dir, '--prompt', 'x']);
    expect(firstLine(g.err)).toMatch(new RegExp(`^vlmix generate: ${p}: invalid JSON`));
    writeFileSync(p, JSON.stringify({ preset: 7, seed: 0, tokenizer: {} }));
    expect(firstLine((await run(['generate', dir, '--prompt', 'x'])).err)).toBe(`vlmix generate: ${p}: field 'preset' should be a preset name, got 7`);
  });
});

describe('vlmix generate on damaged runs and bad inputs', () => {
  const runDir = tmp('vlmix-gen-safety-');
  const png = join(runDir, 'q.png');

  it('a damaged newest checkpoint: a warning naming it, then the previous one answers', async () => {
    expect((await run(['train', 'typeC-tiny', '--steps', '4', '--checkpoint-every', '2', '--out', runDir, ...small])).code).toBe(0);
    writeFileSync(png, encodePng(makeShapesDataset({ seed: 3, train: 1, heldOut: 0 }).train[0]!.image));
    const ok = await run(['generate', runDir, '--image', png, '--prompt', 'what color is the shape?', '--max-tokens', '2']);
    expect(ok.code).toBe(0);
    expect(ok.err).not.toContain('warning');
    damage(join(runDir, 'checkpoint', 'model-00000004.safetensors'));
    const r = await run(['generate', runDir, '--image', png, '--prompt', 'what color is the shape?', '--max-tokens', '2']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(new RegExp(`warning: checkpoint step 4 in ${join(runDir, 'checkpoint')} failed verification: model-00000004\\.safetensors: SHA-256 mismatch .*; loaded the checkpoint of step 2 instead`));
    damage(join(runDir, 'checkpoint', 'model-00000002.safetensors'));
    const bad = await run(['generate', runDir, '--image', png, '--prompt', 'x']);
    expect(bad.code).toBe(1);
    expect(firstLine(bad.err)).toMatch(/^vlmix generate: no checkpoint in .* passed verification: checkpoint step 4 .*; checkpoint step 2 .*SHA-256 mismatch/);
  });

  it('NaN weights are refused by name instead of printing garbage', async () => {
    const dir = tmp();
    const vlmDir = dir;
    // A run whose only checkpoint holds a NaN (a diverged or corrupted save with a valid checksum).
    await trainVlm('typeC-tiny', { steps: 1, outDir: vlmDir, trainSize: 16, heldOutSize: 4, batchSize: 8, log: 'silent', keepCheckpoints: 1 });
    const vlm = await loadRun(vlmDir);
    const name = 'transformer.final_layernorm.weight';
    const w = vlm.model.param(name);
    w.assign(tf.fill(w.shape, NaN));
    const { Trainer } = await import('@vlmix/train');
    const t = new Trainer({ model: vlm.model, data: { length: 1, get: () => 0 }, lossFn: () => tf.scalar(0), steps: 1, outDir: vlmDir, lock: false, log: 'silent' });
    await t.save(join(vlmDir, 'checkpoint'));
    t.dispose();
    vlm.dispose();
    const r = await run(['generate', vlmDir, '--image', png, '--prompt', 'x']);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`vlmix generate: ${vlmDir}: checkpoint step 0: loadStateDict: non-finite values (NaN or Infinity) in ${name} (64 of 64)`);
  });

  it('a directory or a missing file as --image, and --max-tokens past the context, name the flag', async () => {
    const dir = tmp();
    expect((await run(['train', 'typeC-tiny', '--steps', '1', '--out', dir, ...small])).code).toBe(0);
    const d = join(dir, 'adir');
    mkdirSync(d);
    expect(firstLine((await run(['generate', dir, '--image', d, '--prompt', 'x'])).err)).toBe(`vlmix generate: --image ${d}: is a directory; expected a PNG or JPEG file`);
    expect(firstLine((await run(['generate', dir, '--image', join(d, 'none.png'), '--prompt', 'x'])).err)).toBe(`vlmix generate: --image ${join(d, 'none.png')}: no such file`);
    const r = await run(['generate', dir, '--image', png, '--prompt', 'what color is the shape?', '--max-tokens', '500']);
    expect(r.code).toBe(2);
    expect(firstLine(r.err)).toMatch(/^vlmix generate: --max-tokens 500: the prompt takes (\d+) of the model's 128 tokens; use --max-tokens (\d+) or less$/);
    const [, used, room] = /takes (\d+) .* use --max-tokens (\d+)/.exec(r.err)!;
    expect(Number(used) + Number(room)).toBe(128);
    expect((await run(['generate', dir, '--image', png, '--prompt', 'x', '--max-tokens', '0'])).err).toMatch(/--max-tokens: expected a positive integer, got 0/);
  });
});

describe('presets and recipes from outside', () => {
  it('a plugin preset shows up in train --help and inspect, trains and reloads', async () => {
    await loadPlugins('./packages/cli/test/fixtures/plugin.ts');
    const help = await run(['train', '--help']);
    expect(help.out).toMatch(/^Presets: typeA-tiny, typeB-tiny, typeC-tiny, typeC-qformer-tiny, typeD-tiny, lm-tiny, .*plugin-typeC-narrow/m);
    expect(help.out).toContain('plugin-typeC-narrow 0.002');
    expect((await run(['--help'])).out).toContain('plugin-typeC-narrow');
    const ins = await run(['inspect', 'plugin-typeC-narrow', '--json']);
    expect(ins.code, ins.err).toBe(0);
    const j = JSON.parse(ins.out);
    expect(j.description).toBe('third-party test recipe: type C (LLaVA) with a 1-layer ViT');
    expect(j.mixins).toEqual(expect.arrayContaining(['vision', 'projector']));
    const stock = JSON.parse((await run(['inspect', 'typeC-tiny', '--json'])).out);
    expect(j.params.byComponent.vision).toBeLessThan(stock.params.byComponent.vision); // one ViT layer instead of two
    const dir = tmp();
    const r = await run(['train', 'plugin-typeC-narrow', '--steps', '1', '--out', dir, '--json', ...small]);
    expect(r.code, r.err).toBe(0);
    const vlm = await loadRun(dir);
    expect(vlm.model.params.has('vision.encoder.layers.1.mlp.fc1.weight')).toBe(false);
    vlm.dispose();
    expect((await run(['--help'])).code).toBe(0);
    expect(await loadPlugins('./no/such/plugin.ts').catch((e: Error) => e.message)).toMatch(/^VLMIX_PLUGINS: cannot load '.\/no\/such\/plugin.ts': /);
  });

  it('trainVlm takes an unregistered recipe; loadRun rebuilds it when given the same recipe', async () => {
    const recipe: VlmPreset = { name: 'my-recipe', description: 'local', build: (tok, o) => buildTypeC(tok, { ...o, connector: 'linear' }) };
    const dir = tmp();
    const r = await trainVlm(recipe, { steps: 2, outDir: dir, trainSize: 16, heldOutSize: 4, batchSize: 8, log: 'silent' });
    expect(r.preset).toBe('my-recipe');
    await expect(loadRun(dir)).rejects.toThrow(/unknown fusion preset 'my-recipe'/);
    const vlm = await loadRun(dir, { preset: recipe });
    expect(vlm.type).toBe('C');
    vlm.dispose();
  });
});

describe('--backend', () => {
  it('can ask for vlmix-cuda: where it cannot run, the error gives the backend\'s reason', async () => {
    const before = tf.getBackend();
    const r = await run(['train', 'typeC-tiny', '--steps', '1', '--backend', 'vlmix-cuda', ...small]);
    if (r.code === 0) {
      // A machine with a usable GPU: the run happened on vlmix-cuda.
      expect(r.err).toMatch(/^backend: vlmix-cuda /m);
    } else {
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^vlmix train: --backend vlmix-cuda: useBackend\('vlmix-cuda'\): backend 'vlmix-cuda' is unavailable: \S.+/);
    }
    await tf.setBackend(before);
  });
});
