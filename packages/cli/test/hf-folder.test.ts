// `vlmix inspect <dir>` and `vlmix generate <dir>` on Hugging Face folders (LLaVA, a language model).
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generate } from '@vlmix/core';
import { loadLlava, loadPretrainedLM, pixelValues } from '@vlmix/hub';
import { run, tempDirs } from './helpers.js';

const tmp = tempDirs();

const hubFixture = (p: string) => fileURLToPath(new URL(`../../hub/test/fixtures/${p}`, import.meta.url));
const llava = hubFixture('vlm/llava-tiny');
const image = hubFixture('../../../data/test/data/jpeg/s420.jpg');

describe('vlmix on a Hugging Face folder', () => {
  it('inspect <llava dir> --json: the hook table of the loaded model (vision, projector mixins)', async () => {
    const r = await run(['inspect', llava, '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.mixins).toEqual(['rope', 'vision', 'projector']);
    expect(j.description).toBe('Hugging Face folder: llava (LlavaForConditionalGeneration)');
    expect(j.global.encodeMedia).toContain('vision');
  });

  it('generate <llava dir> --image --prompt answers through the chat template, as the library does', async () => {
    const r = await run(['generate', llava, '--image', image, '--prompt', 'what is it?', '--max-tokens', '4']);
    expect(r.code, r.err).toBe(0);
    const p = loadLlava(llava);
    const { decodeImage } = await import('@vlmix/data');
    const { readFileSync } = await import('node:fs');
    const ids = p.encodeChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'what is it?' }] }], { addGenerationPrompt: true });
    const px = pixelValues(p.imageProcessor!, [decodeImage(readFileSync(image), image)]);
    const eos = p.tokenizer!.roleId('eos');
    const g = generate(p.model, [ids], { maxNewTokens: 4, greedy: true, eosTokenId: eos, inputs: { media: { pixels: px } } });
    expect(r.out).toBe(p.tokenizer!.decode(g.newTokens[0]!.filter((t) => t !== eos)));
    px.dispose();
    p.model.dispose();
    const noImage = await run(['generate', llava, '--prompt', 'hi']);
    expect(noImage.code).toBe(2);
    expect(noImage.err).toContain('--image is required for a LLaVA folder');
  });

  it('generate <lm dir> --prompt equals the library; no tokenizer and a vision tower folder are refused with the way out', async () => {
    const dir = hubFixture('lm/smollm-tiny');
    const r = await run(['generate', dir, '--prompt', 'hello', '--max-tokens', '3', '--raw']);
    expect(r.code, r.err).toBe(0);
    const p = loadPretrainedLM(dir);
    const ids = p.tokenizer!.encode('hello');
    const templated = await run(['generate', dir, '--prompt', 'hello', '--max-tokens', '3']);
    expect(templated.err).toContain("the prompt takes 57 of the model's 32 tokens"); // SmolLM's template is longer than this toy context
    const g = generate(p.model, [ids], { maxNewTokens: 3, greedy: true, eosTokenId: p.tokenizer!.roleId('eos') });
    expect(r.out).toBe(p.tokenizer!.decode(g.newTokens[0]!.filter((t) => t !== p.tokenizer!.roleId('eos'))));
    p.model.dispose();
    const bare = await run(['generate', hubFixture('lm/tinyllama-tiny'), '--prompt', 'hello']);
    expect(bare.code).toBe(2);
    expect(bare.err).toContain('no tokenizer.json in the folder; generate needs one');
    const tower = await run(['inspect', hubFixture('vlm/clip-vision-tiny')]);
    expect(tower.code).toBe(2);
    expect(tower.err).toMatch(/a vision tower \(CLIPVisionModel\) has no text to generate or hook table of its own; load it with loadVisionTower/);
  });
});

describe('vlmix inspect <run-dir>', () => {
  it('shows the trained model of a run directory (preset, seed, its hook table)', async () => {
    const dir = tmp('vlmix-inspect-run-');
    expect((await run(['train', 'typeC-tiny', '--steps', '2', '--held-out', '0', '--out', dir, '--log', 'silent', '--seed', '3'])).code).toBe(0);
    const r = await run(['inspect', dir, '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    const fresh = JSON.parse((await run(['inspect', 'typeC-tiny', '--json'])).out);
    expect(j.description).toMatch(/^run directory: preset typeC-tiny, seed 3 \(/);
    expect([j.mixins, j.params, j.layers]).toEqual([fresh.mixins, fresh.params, fresh.layers]);
  });
});
