// Child process of e2e-llava.test.ts: loads a saved folder with loadPretrained on the test's backend and
// writes its logits on a probe and its greedy answer to the chat-template prompt.   args: DIR IO.json
import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { generate } from '@vlmix/core';
import { loadPretrained, pixelValues } from '../src/index.js';

const [dir, ioPath] = process.argv.slice(2) as [string, string];
const want = process.env.VLMIX_BACKEND ?? 'auto';
if (want === 'cpu') await tf.setBackend('cpu');
else await (await import('@vlmix/backend-native')).useBackend(want as 'auto');
const io = JSON.parse(readFileSync(ioPath, 'utf8'));
const p = loadPretrained(dir);
if (p.kind !== 'llava') throw new Error(`kind ${p.kind}`);
const logits = p.model.forward({ inputIds: [io.ids], media: { pixels: tf.tensor4d(io.pixels, io.shape) } }).logits;
const image = { ...io.image, data: Uint8Array.from(io.image.data) };
const prompt = p.encodeChat([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: io.question }] }], { addGenerationPrompt: true });
const g = generate(p.model, [prompt], { maxNewTokens: 6, greedy: true, eosTokenId: p.tokenizer!.roleId('eos'), inputs: { media: { pixels: pixelValues(p.imageProcessor!, [image]) } } });
writeFileSync(`${ioPath}.out`, JSON.stringify({ backend: tf.getBackend(), logits: Array.from(logits.dataSync()), tokens: g.newTokens[0], text: p.tokenizer!.decode(g.newTokens[0]!) }));
