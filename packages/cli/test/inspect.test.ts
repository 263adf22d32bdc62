import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('vlmix inspect', () => {
  it('--json follows the public contract', async () => {
    const r = await run(['inspect', 'llama-tiny', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.preset).toBe('llama-tiny');
    expect(Number.isInteger(j.params.total)).toBe(true);
    expect(j.params.trainable).toBe(j.params.total);
    expect(Object.values(j.params.byComponent as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(j.params.total);
    expect(j.layers).toHaveLength(2);
    expect(j.layers[1].layer).toBe(1);
    expect(j.layers[0].hooks.applyRotary).toEqual(['rope', 'base']);
    expect(j.layers[0].hooks.mlpForward).toEqual(['base']);
    expect(j.global.wordEmbedding).toEqual(['base']);
  });

  it('--json shows the whole pass: host and media stages per model, plain/chain kinds (typeB-tiny)', async () => {
    const r = await run(['inspect', 'typeB-tiny', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    for (const k of ['preset', 'description', 'params', 'layers', 'global', 'mixins']) expect(j).toHaveProperty(k); // existing keys kept
    expect(j.global.tokenTypes).toEqual(['projector', 'base']);
    expect(j.global.positionIds).toEqual(['expert', 'rope', 'base']); // CogVLM positions override RoPE's
    expect(j.global.hostInputs).toEqual(['expert', 'projector', 'base']);
    expect(j.global.encodeMedia).toEqual(['projector', 'vision', 'base']); // ViT first, then the projector
    expect(j.global.wordEmbedding).toEqual(['projector', 'base']);
    expect(j.layers[1].hooks.attentionForward).toEqual(['expert', 'base']);
    expect(j.layers[0].hooks).not.toHaveProperty('encodeMedia'); // once-per-pass hooks are not per layer
    expect(j.stages.map((s: { stage: string }) => s.stage)).toEqual(['host', 'media', 'embed', 'layer', 'final']);
    expect(j.stages[0].hooks).toEqual(['tokenTypes', 'positionIds', 'hostInputs']);
    expect(j.kinds.positionIds).toBe('plain');
    expect(j.kinds.encodeMedia).toBe('chain');
    const a = JSON.parse((await run(['inspect', 'typeA-tiny', '--json'])).out);
    expect(a.global.encodeMedia).toEqual(['perceiver', 'vision', 'base']);
    expect(a.global.hostInputs).toEqual(['xattn', 'base']);
    expect(a.layers[0].hooks.crossAttentionForward).toEqual(['xattn', 'base']);
    const d = JSON.parse((await run(['inspect', 'typeD-tiny', '--json'])).out);
    expect(d.global.encodeMedia).toEqual(['vq', 'base']);
    const text = (await run(['inspect', 'typeB-tiny'])).out;
    expect(text).toMatch(/tokenTypes\s+projector -> base\s+\(host, once per batch\)/);
    expect(text).toMatch(/encodeMedia\s+projector -> vision -> base\s+\(once per pass\)/);
  });

  it('text output lists counts and chains', async () => {
    const r = await run(['inspect', 'gpt2-tiny']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/parameters: 141,056 total, 141,056 trainable/);
    expect(r.out).toMatch(/applyRotary\s+layers 0-1: base/);
  });

  it('help and errors', async () => {
    expect((await run(['--help'])).out).toMatch(/Commands:\n\s+inspect/);
    expect((await run(['inspect', '--help'])).out).toMatch(/Usage: vlmix inspect <preset \| folder> \[--json\]/);
    const bad = await run(['inspect', 'gpt5-tiny']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/unknown preset 'gpt5-tiny'; available presets: .*gpt2-tiny/);
    const usage = await run(['inspect']);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/inspect takes one preset name, got 0/);
    expect((await run(['inspect', 'gpt2-tiny', '--jsn'])).err).toMatch(/unknown option --jsn/);
    expect((await run(['frobnicate'])).err).toMatch(/unknown command 'frobnicate'/);
  });

  it('runs as `pnpm vlmix` from the repository root', () => {
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    const r = spawnSync('pnpm', ['-s', 'vlmix', 'inspect', 'typeA-tiny', '--json'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!).preset).toBe('typeA-tiny');
    // tfjs 'cpu' advertises tfjs-node on its first tensor; vlmix silences it (the engine makes a fresh instance)
    expect(r.stderr).not.toMatch(/tfjs-node|looks like you are running TensorFlow.js/);
  });
});
