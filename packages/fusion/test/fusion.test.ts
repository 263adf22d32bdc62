import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CLIP_MEAN, CLIP_STD, fromFloatCHW, makeShapesDataset } from '@vlmix/data';
import { assertNoLeak } from '@vlmix/core/testkit';
import { createVlm, pretrainTokenizer, presetTokenizer, buildTypeA, buildTypeC, buildTypeB, type Vlm } from '../src/index.js';

const data = makeShapesDataset({ seed: 9, train: 24, heldOut: 8 });
const batch = data.train.slice(0, 6);

function trainSteps(vlm: Vlm, n: number): number[] {
  const vars = vlm.model.params.trainable().map((p) => p.variable);
  const opt = tf.train.adam(3e-3);
  const b = vlm.encode(batch);
  const losses: number[] = [];
  for (let i = 0; i < n; i++) {
    const l = opt.minimize(() => vlm.loss(b), true, vars)!;
    losses.push(l.dataSync()[0]!);
    l.dispose();
  }
  tf.dispose(b.tensors);
  opt.dispose();
  return losses;
}

describe('fusion recipes', () => {
  it('each type reads as its recipe in the hook table', () => {
    const expect1 = (name: string, hook: string, layer: number | 'global', chain: string[]) => {
      const v = createVlm(name);
      const o = v.model.hookOrigins();
      const got = layer === 'global' ? (o.global as Record<string, string[]>)[hook] : (o.layers[layer]!.hooks as Record<string, string[]>)[hook];
      expect(got, `${name} ${hook}`).toEqual(chain);
      v.dispose();
    };
    expect1('typeA-tiny', 'crossAttentionForward', 1, ['xattn', 'base']);
    expect1('typeB-tiny', 'attentionForward', 0, ['expert', 'base']);
    expect1('typeB-tiny', 'mlpForward', 1, ['expert', 'base']);
    expect1('typeB-tiny', 'wordEmbedding', 'global', ['projector', 'base']);
    expect1('typeC-tiny', 'wordEmbedding', 'global', ['projector', 'base']);
    expect1('typeC-qformer-tiny', 'wordEmbedding', 'global', ['qformer', 'base']);
    expect1('typeD-tiny', 'finalForward', 'global', ['vq-tokens', 'base']);
  });

  it('every type trains: loss falls on a fixed batch, no tensor leak per step', () => {
    for (const name of ['typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeC-qformer-tiny', 'typeD-tiny']) {
      const v = createVlm(name, { seed: 1 });
      if (v.vq) pretrainTokenizer(v, data.train.map((s) => s.image), { steps: 2, batchSize: 8 });
      const losses = trainSteps(v, 8);
      expect(losses.every(Number.isFinite), name).toBe(true);
      expect(losses[7]!, `${name}: ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(losses[0]! * 0.8);
      const vars = v.model.params.trainable().map((p) => p.variable);
      assertNoLeak(() => {
        const b = v.encode(batch);
        const { value, grads } = tf.variableGrads(() => v.loss(b), vars);
        tf.dispose([value, ...Object.values(grads), ...b.tensors]);
      }, { label: name });
      v.dispose();
    }
  });

  it('teacher-forced correctness equals greedy decoding exact match', () => {
    const v = createVlm('typeC-tiny', { seed: 2 });
    trainSteps(v, 30);
    const samples = [...batch, ...data.heldOut];
    const fast = v.correct(samples);
    const slow = samples.map((s) => v.answer(s) === s.answer);
    expect(fast).toEqual(slow);
    expect(fast.some(Boolean)).toBe(true); // the fixed batch is partly memorised by now
    v.dispose();
  });

  it('type D: codes replace the image slots; the tokenizer trains on its own objective', () => {
    const v = createVlm('typeD-tiny');
    const hist = pretrainTokenizer(v, data.train.map((s) => s.image), { steps: 20, batchSize: 8, lr: 3e-3 });
    expect(hist[19]!.reconLoss).toBeLessThan(hist[0]!.reconLoss);
    const b = v.encode(batch.slice(0, 2));
    const ids = b.inputs.inputIds as tf.Tensor;
    const vocab = v.vq!.vocab;
    const row = Array.from(ids.dataSync().slice(0, ids.shape[1]!));
    const boi = row.indexOf(vocab.boiId);
    const codes = row.slice(boi + 1, boi + 1 + v.imageTokens);
    expect(codes.every((c) => c >= vocab.codeOffset && c < vocab.codeOffset + vocab.codebookSize)).toBe(true);
    expect(row[boi + 1 + v.imageTokens]).toBe(vocab.eoiId);
    // image loss: the code positions are targets
    const tgt = Array.from(b.targets.dataSync().slice(0, ids.shape[1]!));
    expect(tgt.slice(boi, boi + v.imageTokens)).toEqual(codes);
    expect(v.model.params.counts().byComponent.vq).toBeGreaterThan(0);
    expect(v.model.params.trainable().some((p) => p.component === 'vq')).toBe(false);
    tf.dispose(b.tensors);
    v.dispose();
  });

  it('type D: generateImage samples codes and decodes them; fitted to one image, greedy generation gives back its codes', () => {
    const v = createVlm('typeD-tiny');
    pretrainTokenizer(v, data.train.map((s) => s.image), { steps: 20, batchSize: 8, lr: 3e-3 });
    const vocab = v.vq!.vocab;
    const b = v.encode([data.train[0]!]);
    const row = Array.from((b.inputs.inputIds as tf.Tensor).dataSync());
    const codes = row.slice(row.indexOf(vocab.boiId) + 1, row.indexOf(vocab.boiId) + 1 + v.imageTokens);
    // Fit until every code and <eoi> is the argmax given the gold prefix (then greedy decoding must follow the
    // same path): a fixed step count made the test depend on the last bits of the kernels' rounding.
    const span = [...codes, vocab.eoiId];
    const start = row.indexOf(vocab.boiId);
    const memorised = () => tf.tidy(() => {
      const pred = tf.argMax(v.model.forward(b.inputs).logits, -1).dataSync();
      return span.every((c, i) => pred[start + i] === c);
    });
    const vars = v.model.params.trainable().map((p) => p.variable);
    const opt = tf.train.adam(1e-2);
    let steps = 0;
    while (steps < 600 && !(steps > 0 && memorised())) {
      for (let i = 0; i < 50; i++, steps++) opt.minimize(() => v.loss(b), true, vars)?.dispose();
    }
    opt.dispose();
    expect(memorised(), `not memorised after ${steps} steps`).toBe(true);
    tf.dispose(b.tensors);

    const before = tf.memory().numTensors;
    const greedy = v.generateImage({ temperature: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(greedy.tokens).toEqual([...codes, vocab.eoiId]);
    const px = tf.tidy(() => v.vq!.vae.decode(tf.tensor3d(codes.map((c) => c - vocab.codeOffset), [1, 8, 8], 'int32')));
    expect(greedy.image).toEqual(fromFloatCHW(px.dataSync(), 32, 32, CLIP_MEAN, CLIP_STD));
    px.dispose();
    // sampled: seeded, and always a full span of codes then <eoi>
    const s1 = v.generateImage({ seed: 1, temperature: 1.5 });
    expect(v.generateImage({ seed: 1, temperature: 1.5 }).tokens).toEqual(s1.tokens);
    expect(s1.tokens.slice(0, -1).every((t) => t >= vocab.codeOffset && t < vocab.codeOffset + vocab.codebookSize)).toBe(true);
    expect(s1.tokens).toHaveLength(v.imageTokens + 1);
    expect([s1.image.width, s1.image.height]).toEqual([32, 32]);
    v.dispose();
    const c = createVlm('typeC-tiny');
    expect(() => c.generateImage()).toThrow(/generateImage: a type C model has no image tokens \(only type D generates images\)/);
    c.dispose();
  });

  it('options compose: M-RoPE, LoRA, freezing policies', () => {
    const tok = presetTokenizer();
    const m = buildTypeC(tok, { mrope: true });
    expect(m.model.hookOrigins().layers[0]!.hooks.applyRotary).toEqual(['mrope', 'rope', 'base']);
    expect(trainSteps(m, 3).every(Number.isFinite)).toBe(true);
    m.dispose();

    const l = buildTypeC(tok, { lora: { r: 2 }, freeze: 'lora' });
    const comps = new Set(l.model.params.trainable().map((p) => p.component));
    expect([...comps].sort()).toEqual(['lora', 'projector']);
    l.dispose();

    const c = buildTypeB(tok, { freeze: 'expert' });
    expect(new Set(c.model.params.trainable().map((p) => p.component))).toEqual(new Set(['projector', 'expert']));
    c.dispose();

    const conn = createVlm('typeA-tiny', { freeze: 'connector' });
    expect(new Set(conn.model.params.trainable().map((p) => p.component))).toEqual(new Set(['perceiver', 'xattn']));
    conn.dispose();

    expect(() => buildTypeC(tok, { freeze: 'expert' })).toThrow(/freeze: 'expert' needs a model with a visual expert \(type B\)/);
    expect(() => buildTypeC(tok, { freeze: 'lora' })).toThrow(/freeze: 'lora' needs the lora option/);
    expect(() => buildTypeC(tok, { freeze: 'some' as 'all' })).toThrow(/freeze: expected one of all, connector, expert, lora, got "some"/);
  });

  it('type A: gates start at gateInit (0.5 by default); gateInit 0 gives exactly the base LM logits', () => {
    const tok = presetTokenizer();
    const gates = (v: Vlm) => v.model.params.list().filter((p) => /_gate$/.test(p.name)).map((p) => p.variable.dataSync()[0]);
    const a = createVlm('typeA-tiny', { seed: 3 });
    expect(gates(a)).toEqual([0.5, 0.5, 0.5, 0.5]);
    const closed = buildTypeA(tok, { seed: 3, gateInit: 0 });
    expect(gates(closed)).toEqual([0, 0, 0, 0]);
    const lm = createVlm('lm-tiny', { seed: 3 });
    const b = closed.encode(batch);
    const ids = b.inputs.inputIds as tf.Tensor;
    const base = lm.model.forward({ inputIds: ids, attentionMask: b.inputs.attentionMask }).logits;
    const withImage = closed.model.forward(b.inputs).logits;
    expect(tf.max(tf.abs(tf.sub(withImage, base))).dataSync()[0]).toBe(0);
    const opened = a.model.forward(b.inputs).logits;
    expect(tf.max(tf.abs(tf.sub(opened, base))).dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([base, withImage, opened, ...b.tensors]);
    [a, closed, lm].forEach((v) => v.dispose());
  });

  it('bad input: wrong image size, missing answers', () => {
    const v = createVlm('typeC-tiny');
    const big = makeShapesDataset({ seed: 1, size: 48, train: 1, heldOut: 0 }).train[0]!;
    expect(() => v.encode([big])).toThrow(/image 0: expected 32x32 pixels, got 48x48/);
    expect(() => v.encode([{ image: batch[0]!.image, question: 'what?' }])).toThrow(/every sample needs an answer/);
    v.dispose();
  });
});
