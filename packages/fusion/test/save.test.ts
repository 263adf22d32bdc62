// A whole composed Vlm saved (recipe of mixins + weights + tokenizer) and loaded gives identical logits:
// every registered preset in-process, and one composed model (LoRA added after the preset, a frozen
// tower) in another process. Plus the errors a user meets.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Mixin, RECIPE_FILE, Rng, WEIGHTS_FILE, loadModel, modelRecipe, saveModel } from '@vlmix/core';
import { makeShapesDataset, resize } from '@vlmix/data';
import { LoraMixin } from '@vlmix/mixins';
import { afterAll, describe, expect, it } from 'vitest';
import { createVlm, listVlmPresets, loadVlm, saveVlm, type QASample, type Vlm } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmix-save-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const data = makeShapesDataset({ seed: 3, size: 32, train: 3, heldOut: 0 });
const samples: QASample[] = data.train.map((x) => ({ image: x.image, question: x.question, answer: x.answer }));

/** Moves every parameter off its seeded init, so only loaded weights can reproduce the logits. */
function perturb(vlm: Vlm, seed: string): void {
  const rng = new Rng(seed);
  for (const p of vlm.model.params.list()) {
    const n = p.variable.size;
    tf.tidy(() => p.variable.assign(tf.add(p.variable, tf.tensor(Float32Array.from({ length: n }, () => 0.02 * rng.normal()), p.variable.shape))));
  }
}

function logits(vlm: Vlm): Float32Array {
  const b = vlm.encode(samples.map((s) => ({ ...s, image: vlm.anyResolution || s.image.width === vlm.imageSize ? s.image : resize(s.image, vlm.imageSize, vlm.imageSize) })));
  try {
    return tf.tidy(() => vlm.model.forward(b.inputs).logits.dataSync() as Float32Array);
  } finally {
    tf.dispose(b.tensors);
  }
}

describe('vlm.save(dir) / loadVlm(dir)', () => {
  for (const p of listVlmPresets()) {
    it(`${p.name}: the loaded model has the same recipe, frozen flags and logits`, async () => {
      const vlm = createVlm(p.name, { seed: 1 });
      perturb(vlm, p.name);
      const dir = join(tmp, p.name);
      await vlm.save(dir);
      const back = loadVlm(dir);
      try {
        expect(modelRecipe(back.model)).toEqual(modelRecipe(vlm.model));
        expect(back.model.mixinNames()).toEqual(vlm.model.mixinNames());
        expect([back.type, back.imageSize, back.imageTokens]).toEqual([vlm.type, vlm.imageSize, vlm.imageTokens]);
        expect(JSON.stringify(back.tokenizer.toJSON())).toBe(JSON.stringify(vlm.tokenizer.toJSON()));
        expect(Array.from(logits(back))).toEqual(Array.from(logits(vlm)));
      } finally {
        vlm.dispose();
        back.dispose();
      }
    }, 240_000); // the small tier: 20-60 M parameters to perturb, save, hash and load
  }

  it('a model composed after the preset (LoRA added, vision frozen) reloads in another process with identical logits and answer', async () => {
    const vlm = createVlm('typeC-tiny', { seed: 2 });
    vlm.model.addMixin('lora', new LoraMixin({ r: 4, alpha: 8, targets: ['transformer.layers.*.attention.query_key_value', 'transformer.layers.*.attention.dense'] }));
    vlm.model.params.setTrainable('vision.**', false);
    perturb(vlm, 'composed');
    const dir = join(tmp, 'composed');
    await vlm.save(dir);
    const io = join(tmp, 'composed-io.json');
    writeFileSync(io, JSON.stringify({ image: { ...samples[0]!.image, data: Array.from(samples[0]!.image.data) }, question: samples[0]!.question }));
    execFileSync(process.execPath, ['--conditions=@vlmix/source', '--import', 'tsx', fileURLToPath(new URL('./save-worker.ts', import.meta.url)), dir, io], { stdio: 'pipe' });
    const theirs = JSON.parse(readFileSync(`${io}.out`, 'utf8')) as { backend: string; logits: number[]; answer: string; frozen: string[]; mixins: string[] };
    expect(theirs.backend).toBe(tf.getBackend());
    expect(theirs.mixins).toEqual(vlm.model.mixinNames());
    expect(theirs.mixins).toContain('lora');
    expect(theirs.frozen).toEqual(vlm.model.params.list().filter((p) => !p.trainable).map((p) => p.name));
    expect(theirs.frozen.length).toBeGreaterThan(0);
    expect(theirs.logits).toEqual(Array.from(logits(vlm)));
    expect(theirs.answer).toBe(vlm.answer({ image: samples[0]!.image, question: samples[0]!.question }, { maxNewTokens: 4 }));
    vlm.dispose();
  }, 120_000);
});

describe('saved folders: errors', () => {
  it('a corrupted or truncated weights file is refused by its checksum; an existing folder needs overwrite', async () => {
    const vlm = createVlm('lm-tiny', { seed: 0 });
    const dir = join(tmp, 'corrupt');
    await vlm.save(dir);
    await expect(vlm.save(dir)).rejects.toThrow(/already holds a model \(vlmix-model.json\); pass \{ overwrite: true \}/);
    await vlm.save(dir, { overwrite: true });
    const w = join(dir, WEIGHTS_FILE);
    const bytes = readFileSync(w);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(w, bytes);
    expect(() => loadVlm(dir)).toThrow(/model.safetensors: sha256 .* differs from vlmix-model.json's/);
    writeFileSync(w, bytes.subarray(0, bytes.length - 8));
    expect(() => loadVlm(dir)).toThrow(/bytes, vlmix-model.json says \d+ \(truncated or replaced\)/);
    expect(() => loadVlm(join(tmp, 'nothing-here'))).toThrow(/no vlmix-model.json \(the folder does not exist\)/);
    vlm.dispose();
  });

  it('an unregistered mixin, non-JSON options, an unknown type in the recipe are named', async () => {
    class Custom extends Mixin {
      constructor(opts: unknown) {
        super();
        this.recordOptions(opts);
      }
      hooks() {
        return {};
      }
    }
    const vlm = createVlm('lm-tiny', { seed: 0 });
    vlm.model.addMixin('mine', new Custom({ k: 1 }));
    await expect(saveModel(vlm.model, join(tmp, 'x'))).rejects.toThrow(/mixin 'mine' \(Custom\) is not a registered mixin type.*registerMixinType\('Custom', Custom\)/);
    vlm.model.removeMixin('mine');
    const lora = new LoraMixin({ r: 2, targets: ['transformer.layers.*.attention.dense'] });
    (lora as unknown as { recordOptions(o: unknown): void }).recordOptions({ r: 2, targets: ['transformer.layers.*.attention.dense'], init: () => 0 });
    vlm.model.addMixin('lora', lora);
    await expect(saveModel(vlm.model, join(tmp, 'y'))).rejects.toThrow(/mixin 'lora' \(LoraMixin\) options.init: a function is not plain JSON/);
    vlm.model.removeMixin('lora');
    const dir = join(tmp, 'unknown-type');
    await saveVlm(vlm, dir);
    const f = join(dir, RECIPE_FILE);
    writeFileSync(f, readFileSync(f, 'utf8').replace('"type": "RotaryMixin"', '"type": "WarpMixin"'));
    expect(() => loadModel(dir)).toThrow(/mixins\[0\] 'rope' has type 'WarpMixin', which is not registered here/);
    vlm.dispose();
  });
});
