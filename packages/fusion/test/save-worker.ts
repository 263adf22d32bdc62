// Child process of save.test.ts: loads a folder written by vlm.save on the test's backend and writes the
// logits on the test's batch, the greedy answer, the mixins and the frozen parameters.   args: DIR IO.json
import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { makeShapesDataset } from '@vlmix/data';
import { loadVlm } from '../src/index.js';

const [dir, ioPath] = process.argv.slice(2) as [string, string];
const want = process.env.VLMIX_BACKEND ?? 'auto';
if (want === 'cpu') await tf.setBackend('cpu');
else await (await import('@vlmix/backend-native')).useBackend(want as 'auto');
const io = JSON.parse(readFileSync(ioPath, 'utf8'));
const vlm = loadVlm(dir);
const data = makeShapesDataset({ seed: 3, size: 32, train: 3, heldOut: 0 });
const b = vlm.encode(data.train.map((x) => ({ image: x.image, question: x.question, answer: x.answer })));
const logits = Array.from(vlm.model.forward(b.inputs).logits.dataSync());
const answer = vlm.answer({ image: { ...io.image, data: Uint8Array.from(io.image.data) }, question: io.question }, { maxNewTokens: 4 });
writeFileSync(`${ioPath}.out`, JSON.stringify({
  backend: tf.getBackend(), logits, answer, mixins: vlm.model.mixinNames(),
  frozen: vlm.model.params.list().filter((p) => !p.trainable).map((p) => p.name),
}));
