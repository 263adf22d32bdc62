// The path docs/pretrained.md describes, end to end at toy size: a LLaVA-style model from a Hugging Face
// folder, stage 1 (projector) then stage 2 (LoRA) on a CogVLM-SFT-format folder, LoRA folded in, saved in
// the reference format, reloaded in another process (identical logits), answering with the chat template.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { generate } from '@vlmix/core';
import { countHostReads } from '@vlmix/core/testkit';
import { loadImageTextFolder, makeShapesDataset, qaToRecords, writeImageTextFolder } from '@vlmix/data';
import { LoraMixin } from '@vlmix/mixins';
import { loadLlava, pixelValues, savePretrained, type PretrainedLlava } from '../src/index.js';

const fixture = fileURLToPath(new URL('./fixtures/vlm/llava-tiny', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-e2e-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Example { ids: number[]; labels: number[]; pixels: tf.Tensor4D }

/** A record -> chat-template prompt ids with the image expanded, the answer and EOS; loss on the answer only. */
function encode(p: PretrainedLlava, question: string, answer: string, image: Parameters<typeof pixelValues>[1][number]): Example {
  const prompt = p.encodeChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }], { addGenerationPrompt: true });
  const ans = [...p.tokenizer!.encode(` ${answer}`), p.tokenizer!.roleId('eos')];
  const ids = [...prompt, ...ans];
  const labels = ids.map((_, j) => (j + 1 < ids.length && j + 1 >= prompt.length ? ids[j + 1]! : -100));
  return { ids, labels, pixels: pixelValues(p.imageProcessor!, [image]) };
}

function sgdSteps(p: PretrainedLlava, data: Example[], steps: number, lr: number): number[] {
  const vars = p.model.params.trainable().map((q) => q.variable);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const ex = data[s % data.length]!;
    const inputs = { inputIds: [ex.ids], media: { pixels: ex.pixels } };
    const labels = tf.tensor2d([ex.labels], undefined, 'int32');
    const r = countHostReads(() => tf.variableGrads(() => p.model.loss(inputs, labels, { ignoreIndex: -100 }), vars));
    expect(r.reads).toBe(0); // the forward and backward stay on the device
    losses.push(r.result.value.dataSync()[0]!);
    tf.tidy(() => vars.forEach((v) => v.assign(tf.sub(v, tf.mul(r.result.grads[v.name]!, lr)))));
    tf.dispose([r.result.value, labels, ...Object.values(r.result.grads)]);
  }
  return losses;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('from pretrained parts to a trained LLaVA-style model', () => {
  it('load, stage 1 (projector), stage 2 (LoRA), merge, save, reload in another process, generate with the chat template', async () => {
    // a CogVLM-SFT-format folder: images/ + labels/ with user/assistant conversations
    const dataDir = join(tmp, 'sft');
    const qa = makeShapesDataset({ seed: 3, size: 16, train: 6, heldOut: 0, kinds: ['color'] }).train;
    await writeImageTextFolder(dataDir, qaToRecords(qa));
    const records = await loadImageTextFolder(dataDir);
    expect(records).toHaveLength(6);

    const p = loadLlava(fixture);
    const data = records.map((r) => encode(p, r.turns[0]!.content, r.turns[1]!.content, r.image));

    // stage 1: only the projector trains
    p.model.params.freeze('**');
    p.model.params.unfreeze('projector.**');
    const s1 = sgdSteps(p, data, 24, 0.05);
    expect(mean(s1.slice(-6))).toBeLessThan(mean(s1.slice(0, 6)));

    // stage 2: LoRA on the attention projections (and the projector keeps training)
    p.model.addMixin('lora', new LoraMixin({ r: 4, alpha: 8, targets: ['transformer.layers.*.attention.query_key_value'] }));
    p.model.params.freeze('**');
    p.model.params.unfreeze(['projector.**', 'transformer.**.lora_*.weight']);
    const s2 = sgdSteps(p, data, 24, 0.05);
    expect(mean(s2.slice(-6))).toBeLessThan(mean(s2.slice(0, 6)));
    await expect(savePretrained(p, join(tmp, 'not-merged'))).rejects.toThrow(/fold adapters in first \(LoraMixin\.mergeAndUnload\(\)\)/);

    // fold LoRA in, save in the reference format, reload elsewhere
    const probe = data[0]!;
    const before = p.model.forward({ inputIds: [probe.ids], media: { pixels: probe.pixels } }).logits;
    p.model.getMixin<LoraMixin>('lora').mergeAndUnload();
    const merged = p.model.forward({ inputIds: [probe.ids], media: { pixels: probe.pixels } }).logits;
    expect(tf.max(tf.abs(tf.sub(merged, before))).dataSync()[0]).toBeLessThan(1e-4);
    const out = join(tmp, 'trained');
    await savePretrained(p, out);
    await expect(savePretrained(p, out)).rejects.toThrow(/already holds a model \(.*config\.json.*\); pass \{ overwrite: true \}/);
    const question = records[1]!.turns[0]!.content;
    const prompt = p.encodeChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }], { addGenerationPrompt: true });
    const px = pixelValues(p.imageProcessor!, [records[1]!.image]);
    const mine = generate(p.model, [prompt], { maxNewTokens: 6, greedy: true, eosTokenId: p.tokenizer!.roleId('eos'), inputs: { media: { pixels: px } } });

    const io = join(tmp, 'io.json');
    writeFileSync(io, JSON.stringify({ ids: probe.ids, pixels: Array.from(probe.pixels.dataSync()), shape: probe.pixels.shape, question, image: { ...records[1]!.image, data: Array.from(records[1]!.image.data) } }));
    execFileSync(process.execPath, ['--conditions=@vlmix/source', '--import', 'tsx', fileURLToPath(new URL('./reload-worker.ts', import.meta.url)), out, io], { stdio: 'pipe' });
    const theirs = JSON.parse(readFileSync(io + '.out', 'utf8')) as { backend: string; logits: number[]; tokens: number[]; text: string };
    expect(theirs.backend).toBe(tf.getBackend());
    expect(theirs.logits).toEqual(Array.from(merged.dataSync())); // identical logits in another process
    expect(theirs.tokens).toEqual(mine.newTokens[0]);
    expect(theirs.text).toBe(p.tokenizer!.decode(mine.newTokens[0]!));
    tf.dispose([before, merged, px, ...data.map((d) => d.pixels)]);
    p.model.dispose();
  }, 120_000);
});
