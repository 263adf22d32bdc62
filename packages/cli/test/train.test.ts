import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage, encodePng, makeShapesDataset, qaToRecords, writeImageTextFolder } from '@vlmix/data';
import { run } from './helpers.js';
import { loadRun, trainVlm } from '@vlmix/fusion';

const small = ['--train-size', '48', '--held-out', '12', '--batch-size', '8', '--log', 'silent'];
const losses = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((r) => r.loss);

describe('vlmix train / generate / demo', () => {
  it('train --json prints the documented summary as its last stdout line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-train-'));
    const r = await run(['train', 'typeC-tiny', '--steps', '3', '--seed', '1', '--out', dir, '--json', ...small]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out.trim().split('\n').pop()!);
    expect(Object.keys(j).sort()).toEqual(['accuracy', 'loss', 'params', 'preset', 'replayedSteps', 'stepMs', 'steps', 'tokensPerSec', 'trainableParams'].sort());
    expect(j.preset).toBe('typeC-tiny');
    expect(j.steps).toBe(3);
    expect(j.accuracy).toBeGreaterThanOrEqual(0);
    expect(j.accuracy).toBeLessThanOrEqual(1);
    expect(j.trainableParams).toBe(j.params);
    expect(r.err).toMatch(/^backend: /m);
    expect(existsSync(join(dir, 'checkpoint', 'state.json'))).toBe(true);
  });

  it('--no-capture-steps: every step eager, the same losses as the replayed run', async () => {
    const args = ['train', 'typeC-tiny', '--steps', '5', '--seed', '2', '--held-out', '0', '--json', ...small];
    const replayed = JSON.parse((await run(args)).out.trim().split('\n').pop()!);
    const eager = JSON.parse((await run([...args, '--no-capture-steps'])).out.trim().split('\n').pop()!);
    expect(eager.replayedSteps).toBe(0);
    expect(replayed.loss).toBe(eager.loss);
    if (process.env.VLMIX_BACKEND !== 'cpu') expect(replayed.replayedSteps).toBeGreaterThan(0);
  });

  it('--resume continues to N steps with exactly the uninterrupted loss curve', async () => {
    const a = mkdtempSync(join(tmpdir(), 'vlmix-a-'));
    const b = mkdtempSync(join(tmpdir(), 'vlmix-b-'));
    await run(['train', 'typeA-tiny', '--steps', '4', '--out', a, ...small]);
    // The same 4-step run, stopped after step 2 (as Ctrl-C does; the real signal is tested in interrupt.test.ts).
    const ac = new AbortController();
    const stopped = await trainVlm('typeA-tiny', {
      steps: 4, outDir: b, trainSize: 48, heldOutSize: 12, batchSize: 8, log: 'silent', signal: ac.signal, onStep: (x) => (x.step === 2 ? ac.abort() : undefined),
    });
    expect([stopped.interrupted, stopped.lastCheckpoint?.step]).toEqual([true, 2]);
    const r = await run(['train', 'typeA-tiny', '--steps', '4', '--out', b, '--resume', ...small]);
    expect(r.code).toBe(0);
    expect(losses(b)).toEqual(losses(a));
    expect(losses(a)).toHaveLength(4);
  });

  it('--resume with a larger --steps extends the run on its own schedule (then the final lr), and says so', async () => {
    const a = mkdtempSync(join(tmpdir(), 'vlmix-ext-a-'));
    const b = mkdtempSync(join(tmpdir(), 'vlmix-ext-b-'));
    await run(['train', 'typeC-tiny', '--steps', '3', '--out', a, ...small]);
    await run(['train', 'typeC-tiny', '--steps', '3', '--out', b, ...small]);
    const r = await run(['train', 'typeC-tiny', '--steps', '5', '--out', b, '--resume', ...small]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('warning: extending the run from 3 to 5 steps: the learning-rate schedule stays the run\'s, warmup-cosine (peak lr 0.001, 1 warmup steps, down to 0.0001 at step 3, then held); steps 4-5 run at its final lr 0.0001');
    const rows = readFileSync(join(b, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.slice(0, 3).map((x) => x.loss)).toEqual(losses(a));
    // 0-based lr(step): warmup 0 -> peak, mid-cosine at step 3 of 3, then the final lr held.
    expect(rows.map((x) => x.lr)).toEqual([0, 0.001, expect.closeTo(0.00055, 12), 0.0001, 0.0001]);
  });

  it('generate answers about an image from a saved run; errors are clear', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-gen-'));
    await run(['train', 'typeC-tiny', '--steps', '2', '--out', dir, ...small]);
    const img = makeShapesDataset({ seed: 3, train: 1, heldOut: 0 }).train[0]!.image;
    const png = join(dir, 'q.png');
    writeFileSync(png, encodePng(img));
    const g = await run(['generate', dir, '--image', png, '--prompt', 'what color is the shape?', '--max-tokens', '3']);
    expect(g.code).toBe(0);
    expect((await run(['generate', dir, '--prompt', 'what color is the shape?'])).err).toMatch(/--image is required for a type C model/);
    expect((await run(['generate', tmpdir(), '--image', png, '--prompt', 'x'])).err).toMatch(/not a vlmix run directory \(no vlmix-run.json\)/);
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, 'GIF89a....');
    expect((await run(['generate', dir, '--image', bad, '--prompt', 'x'])).err).toMatch(/bad.png: unsupported image format GIF/);
  });

  it('generate --image-out samples an image from a type D run (seeded, same as Vlm.generateImage)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-genimg-'));
    await run(['train', 'typeD-tiny', '--steps', '2', '--vq-steps', '2', '--out', dir, ...small]);
    const a = join(dir, 'a.png');
    const g = await run(['generate', dir, '--image-out', a, '--seed', '3', '--temperature', '0.8']);
    expect(g.code).toBe(0);
    expect(g.out).toMatch(/wrote .*a.png \(32x32, 64 image tokens\)/);
    const vlm = await loadRun(dir);
    const ref = vlm.generateImage({ seed: 3, temperature: 0.8 }).image;
    vlm.dispose();
    expect(decodeImage(readFileSync(a), a)).toEqual(ref);
    const c = mkdtempSync(join(tmpdir(), 'vlmix-genimg-c-'));
    await run(['train', 'typeC-tiny', '--steps', '1', '--out', c, ...small]);
    expect((await run(['generate', c, '--image-out', join(c, 'x.png')])).err).toMatch(/--image-out: the run is a type C model; only type D generates images/);
    expect((await run(['generate', c])).err).toMatch(/--prompt is required \(or --image-out FILE/);
    expect((await run(['generate', dir, '--image-out', a, '--temperature', '-1'])).err).toMatch(/--temperature: expected a number >= 0, got "-1"/);
  });

  it('train --data reads the CogVLM-SFT folder format (conversations and captions)', async () => {
    const data = mkdtempSync(join(tmpdir(), 'vlmix-data-'));
    const ds = makeShapesDataset({ seed: 5, train: 20, heldOut: 0 });
    const recs = [...qaToRecords(ds.train), { id: '999', image: ds.train[0]!.image, turns: [{ role: 'caption' as const, content: 'a red square' }] }];
    await writeImageTextFolder(data, recs);
    const out = mkdtempSync(join(tmpdir(), 'vlmix-run-'));
    const r = await run(['train', 'typeC-tiny', '--steps', '2', '--data', data, '--out', out, '--batch-size', '4', '--log', 'silent', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out.trim().split('\n').pop()!).steps).toBe(2);
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--data', join(data, 'nope')])).err).toMatch(/nope/);
  });

  it('a run trained with recipe overrides reloads with the same architecture', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-recipe-'));
    await trainVlm('typeC-tiny', { steps: 1, outDir: dir, trainSize: 16, heldOutSize: 4, batchSize: 8, log: 'silent', recipe: { vision: { numLayers: 1 } } });
    const vlm = await loadRun(dir);
    expect(vlm.model.params.has('vision.encoder.layers.0.mlp.fc1.weight')).toBe(true);
    expect(vlm.model.params.has('vision.encoder.layers.1.mlp.fc1.weight')).toBe(false);
    vlm.dispose();
  });

  it('--eval-every N records held-out accuracy in metrics.jsonl; the last one equals the final accuracy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-eval-'));
    const r = await run(['train', 'typeC-tiny', '--steps', '4', '--eval-every', '2', '--out', dir, '--json', ...small]);
    expect(r.code).toBe(0);
    const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const evals = rows.filter((x) => 'eval_accuracy' in x);
    expect(evals.map((x) => x.step)).toEqual([2, 4]);
    for (const k of ['color', 'shape', 'position', 'count']) expect(evals[1][`eval_${k}`]).toBeGreaterThanOrEqual(0);
    expect(evals[1].eval_accuracy).toBe(JSON.parse(r.out.trim().split('\n').pop()!).accuracy);
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--eval-every', '0', ...small])).err).toMatch(/--eval-every: expected a positive integer, got 0/);
    expect((await run(['train', 'typeD-tiny', '--steps', '2', '--vq-steps', '-1', ...small])).err).toMatch(/--vq-steps: expected an integer >= 0, got -1/);
  });

  it('the peak lr is the preset\'s unless --lr is given (typeA-tiny 5e-4, others 1e-3)', async () => {
    const opts = { steps: 3, trainSize: 32, heldOutSize: 4, batchSize: 8, log: 'silent' as const };
    const lrs: number[] = [];
    const a = await trainVlm('typeA-tiny', { ...opts, onStep: (r) => lrs.push(r.lr) });
    expect(a.lr).toBe(5e-4);
    expect(Math.max(...lrs)).toBeCloseTo(5e-4, 12); // the schedule's peak
    expect((await trainVlm('typeC-tiny', opts)).lr).toBe(1e-3);
    expect((await trainVlm('typeA-tiny', { ...opts, lr: 2e-3 })).lr).toBe(2e-3);
  });

  it('train errors name the argument', async () => {
    expect((await run(['train', 'typeC-tiny'])).err).toMatch(/--steps is required/);
    expect((await run(['train', 'typeC-tiny', '--steps', 'x'])).err).toMatch(/--steps: expected an integer, got "x"/);
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--resume'])).err).toMatch(/--resume needs --out DIR/);
    expect((await run(['train', 'typeZ-tiny', '--steps', '2', ...small])).err).toMatch(/unknown fusion preset 'typeZ-tiny'; available: typeA-tiny/);
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--backend', 'tpu'])).err).toMatch(/--backend: expected one of auto, vlmix-cpu, vlmix-cuda, cpu, wasm, tensorflow, got "tpu"/);
    const empty = mkdtempSync(join(tmpdir(), 'vlmix-empty-'));
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--out', empty, '--resume', ...small])).err).toMatch(/--resume: no checkpoint in .*checkpoint to resume from/);
  });

  it('demo prints the comparison table and writes the report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-demo-'));
    const r = await run(['demo', '--steps', '2', '--presets', 'typeD-tiny,lm-tiny', '--out', dir, '--log', 'silent', '--train-size', '48', '--held-out', '12', '--batch-size', '8', '--vq-steps', '2']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\| type \| preset \| steps \| params \| trainable \| step ms \| tokens\/s \| final loss \| held-out acc/);
    expect(r.out).toMatch(/\| D \| typeD-tiny \| 2 \|/);
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toMatch(/\| LM \| lm-tiny \|/);
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toMatch(/batch 8, seed 0, peak lr typeD-tiny 0.001, lm-tiny 0.001;/);
    const svg = readFileSync(join(dir, 'loss.svg'), 'utf8');
    expect(svg).toMatch(/^<svg [^>]*viewBox/);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')).results).toHaveLength(2);
  });
});

describe('vlmix train --precision bf16', async () => {
  const native = await import('@vlmix/backend-native');
  const info = native.nativeInfo();
  const skip = !info.available ? `addon not built (${info.reason})` : !info.bf16Supported ? `this CPU has no AVX512-BF16` : '';
  it.skipIf(!!skip)(`follows the fp32 loss curve within 2e-3 relative over 30 steps, and restores fp32 after${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const curves: number[][] = [];
    for (const precision of ['fp32', 'bf16']) {
      const dir = mkdtempSync(join(tmpdir(), `vlmix-${precision}-`));
      const r = await run(['train', 'typeC-tiny', '--steps', '30', '--out', dir, '--precision', precision, '--backend', 'vlmix-cpu', ...small]);
      expect(r.code, r.err).toBe(0);
      curves.push(losses(dir));
    }
    expect(native.matmulPrecision()).toBe('fp32');
    const [fp32, bf16] = curves as [number[], number[]];
    // measured: 2.2e-4 at most over 60 steps (batch 16); the curves must differ (bf16 really ran)
    expect(bf16).not.toEqual(fp32);
    fp32.forEach((x, i) => expect(Math.abs(bf16[i]! - x) / x, `step ${i + 1}`).toBeLessThan(2e-3));
  });

  it('refuses an unknown precision and a backend without bf16 matmuls', async () => {
    expect((await run(['train', 'typeC-tiny', '--steps', '1', '--precision', 'fp16'])).err).toMatch(/--precision: expected fp32 or bf16, got "fp16"/);
    const r = await run(['train', 'typeC-tiny', '--steps', '1', '--precision', 'bf16', '--backend', 'cpu', ...small]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--precision bf16 needs the vlmix-cpu backend, but cpu is in use/);
  });
});
