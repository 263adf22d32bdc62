// StepReplayer: a recorded step replays bit for bit the eager one, or stays eager with the reason.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { StepReplayer, createGpt2, createLlama, tensorsIn, variableGrads, type Model } from '../src/index.js';

const bits = (t: tf.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));

function batch(model: Model, seed: number, b = 3, t = 12) {
  const v = model.config.vocabSize;
  const ids = tf.tensor2d(Array.from({ length: b * t }, (_, i) => (i * 7 + seed * 13) % v), [b, t], 'int32');
  const labels = tf.tensor2d(Array.from({ length: b * t }, (_, i) => (i * 5 + seed * 3) % v), [b, t], 'int32');
  return [ids, labels] as const;
}

function gradStep(model: Model) {
  const vars = model.params.list().map((p) => p.variable);
  return (ids: tf.Tensor, labels: tf.Tensor) => () => {
    const { value, grads } = variableGrads(() => model.loss({ inputIds: ids as tf.Tensor2D }, labels as tf.Tensor2D), vars);
    return [value, ...vars.map((v) => grads[v.name] ?? null)];
  };
}

describe('StepReplayer on whole models', () => {
  for (const [name, make] of [
    ['llama (RoPE, GQA, SwiGLU)', () => createLlama({ vocabSize: 53, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxSeqLen: 32, seed: 3 })],
    ['gpt2 (tied embeddings)', () => createGpt2({ vocabSize: 53, hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 32, seed: 4 })],
  ] as const) {
    it(`${name}: loss and gradients bit-identical to the eager step on new batches and new weights, no leak`, () => {
      const model = make();
      const step = gradStep(model);
      const rep = new StepReplayer();
      const batches = [1, 2, 3, 4, 5].map((s) => batch(model, s));
      try {
        for (const [k, [ids, labels]] of batches.entries()) {
          if (k === 4) for (const p of model.params.list()) p.variable.assign(tf.tidy(() => tf.mul(p.variable, 0.9))); // weights changed
          const want = step(ids, labels)();
          const got = rep.run([ids, labels], step(ids, labels));
          expect(got.length).toBe(want.length);
          got.forEach((g, i) => {
            expect(g === null).toBe(want[i] === null);
            if (g) expect(bits(g), `call ${k} output ${i}`).toEqual(bits(want[i]!));
          });
          tf.dispose([...want, ...got].filter((t): t is tf.Tensor => t !== null));
        }
        // (on tfjs 'cpu' the fused kernels are composites of tfjs ops: replayed as well)
        const [st] = rep.status();
        expect(st).toMatchObject({ state: 'replaying', replays: 3 });
        expect(st!.kernels).toBeGreaterThan(20);
        const [ids, labels] = batches[0]!;
        const before = tf.memory().numTensors;
        const ids0 = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
        for (let i = 0; i < 5; i++) tf.dispose(rep.run([ids, labels], step(ids, labels)) as tf.Tensor[]);
        expect(tf.memory().numTensors).toBe(before);
        expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBe(ids0);
      } finally {
        rep.dispose();
        tf.dispose(batches.flat());
        model.dispose();
      }
    });
  }

  it('a new input shape is recorded on its own; each shape replays its own recording', () => {
    const model = createLlama({ vocabSize: 41, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, maxSeqLen: 32, seed: 7 });
    const step = gradStep(model);
    const rep = new StepReplayer();
    try {
      for (let k = 0; k < 4; k++) {
        for (const t of [8, 11]) {
          const [ids, labels] = batch(model, k, 2, t);
          const want = step(ids, labels)();
          const got = rep.run([ids, labels], step(ids, labels));
          expect(bits(got[0]!)).toEqual(bits(want[0]!));
          expect(bits(got[1]!)).toEqual(bits(want[1]!));
          tf.dispose([ids, labels, ...want, ...got].filter((x): x is tf.Tensor => x !== null));
        }
      }
      expect(rep.status().map((s) => [s.state, s.replays])).toEqual([['replaying', 2], ['replaying', 2]]);
      expect(rep.status()[0]!.signature).toMatch(/int32\[2x8\] int32\[2x8\]$/);
    } finally {
      rep.dispose();
      model.dispose();
    }
  });
});

describe('StepReplayer on plain ops (any backend)', () => {
  const w = tf.variable(tf.tensor2d([[0.5, -1, 2], [1.5, 0.25, -0.75]]), true, 'capture_test_w');

  // concat (an array-input kernel), reshape (an alias), matMul, a constant from the host, gradients, a null
  const step = (x: tf.Tensor) => () => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
      const y = tf.matMul(tf.reshape(tf.concat([x, tf.mul(x, 2)], 0), [-1, 2]), w);
      return tf.sum(tf.mul(tf.tanh(y), tf.tensor1d([1, 2, 3])));
    }), [w]);
    return [value, grads[w.name]!, null];
  };

  it('replays concat / reshape / host constants / gradients bit for bit; null outputs stay null', () => {
    const rep = new StepReplayer();
    for (let k = 0; k < 5; k++) {
      const x = tf.tensor2d([[k, 1, -k], [0.5 * k, 2, 3]]).reshape([3, 2]);
      const want = step(x)();
      const got = rep.run([x], step(x));
      expect(got[2]).toBeNull();
      expect(bits(got[0]!)).toEqual(bits(want[0]!));
      expect(bits(got[1]!)).toEqual(bits(want[1]!));
      tf.dispose([x, ...want, ...got].filter((t): t is tf.Tensor => t !== null));
    }
    expect(rep.status()[0]).toMatchObject({ state: 'replaying', replays: 3 });
    rep.dispose();
  });

  it('stays eager, saying why, when the step reads values back to the host', () => {
    const reasons: string[] = [];
    const rep = new StepReplayer({ onEager: (r) => reasons.push(r) });
    const x = tf.tensor1d([1, 2, 3]);
    let calls = 0;
    for (let k = 0; k < 3; k++) {
      const out = rep.run([x], () => {
        calls++;
        const s = tf.sum(x);
        return [s.dataSync()[0]! > 0 ? tf.mul(x, 2) : tf.neg(x)];
      });
      expect(Array.from(out[0]!.dataSync())).toEqual([2, 4, 6]);
      tf.dispose(out as tf.Tensor[]);
    }
    expect(calls).toBe(3);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/reads tensor values back to the host/);
    expect(rep.status()[0]!.state).toBe('eager');
    x.dispose();
  });

  it('stays eager when the step changes between calls (random numbers) or assigns a variable', () => {
    const reasons: string[] = [];
    const rep = new StepReplayer({ onEager: (r) => reasons.push(r) });
    const x = tf.ones([4]);
    let seed = 0;
    for (let k = 0; k < 3; k++) tf.dispose(rep.run([x], () => [tf.mul(x, tf.randomUniform([4], 0, 1, 'float32', seed++))]) as tf.Tensor[]);
    expect(reasons[0]).toMatch(/changed between two calls with the same input shapes at operation 1: 'write float32\[4\]/);
    const v = tf.variable(tf.zeros([4]), false, 'capture_test_assigned');
    const y = tf.ones([2, 2]);
    for (let k = 0; k < 2; k++) tf.dispose(rep.run([y], () => { v.assign(tf.add(v, 1)); return [tf.add(y, 1)]; }) as tf.Tensor[]);
    expect(reasons[1]).toMatch(/assigns variable 'capture_test_assigned'/);
    expect(Array.from(v.dataSync())).toEqual([2, 2, 2, 2]); // both calls ran eagerly
    rep.dispose();
    tf.dispose([x, v, y]);
  });

  it('variables that share a buffer (an expert copied from the text weights): right after they diverge', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'capture_test_a');
    const b = tf.variable(a, true, 'capture_test_b'); // same buffer as a until one is assigned
    const rep = new StepReplayer();
    const step = (x: tf.Tensor) => () => [tf.add(tf.mul(x, a), tf.mul(b, 2))];
    const x = tf.tensor1d([0.5, -1, 4]);
    const check = (k: number) => {
      const want = step(x)();
      const got = rep.run([x], step(x));
      expect(bits(got[0]!), `call ${k}`).toEqual(bits(want[0]!));
      tf.dispose([...want, ...got] as tf.Tensor[]);
    };
    for (let k = 0; k < 4; k++) check(k); // recorded while shared: replays while they still share
    expect(rep.status()[0]).toMatchObject({ state: 'replaying', replays: 2 });
    b.assign(tf.tensor1d([10, 20, 30])); // diverged: the recording is stale, recorded anew
    for (let k = 4; k < 9; k++) check(k); // 4: recorded anew, 5: recorded again and checked, 6-8: replayed
    expect(rep.status()[0]).toMatchObject({ state: 'replaying', replays: 2 + 3 });
    const c = tf.variable(tf.tensor1d([7, 8, 9]), true, 'capture_test_c');
    const d = tf.variable(c, true, 'capture_test_d');
    const rep2 = new StepReplayer();
    for (let k = 0; k < 4; k++) { // diverge after the first recording (as an optimizer step would)
      const want = [tf.add(tf.mul(x, c), d)];
      const got = rep2.run([x], () => [tf.add(tf.mul(x, c), d)]);
      expect(bits(got[0]!), `call ${k}`).toEqual(bits(want[0]!));
      tf.dispose([...want, ...got] as tf.Tensor[]);
      d.assign(tf.add(d, k + 1));
    }
    expect(rep2.status()[0]!.state).toBe('replaying');
    rep.dispose();
    rep2.dispose();
    tf.dispose([a, b, c, d, x]);
  });

  it('records anew when a variable or an outside tensor it reads is disposed and replaced', () => {
    let w = tf.variable(tf.tensor1d([1, 2]), true, 'capture_test_w1');
    let c = tf.tensor1d([10, 20]); // e.g. a cached mask, rebuilt by its owner
    const rep = new StepReplayer();
    const x = tf.tensor1d([3, 4]);
    const step = () => [tf.add(tf.mul(x, w), c)];
    const check = (k: number) => {
      const want = step();
      const got = rep.run([x], step);
      expect(bits(got[0]!), `call ${k}`).toEqual(bits(want[0]!));
      tf.dispose([...want, ...got] as tf.Tensor[]);
    };
    for (let k = 0; k < 4; k++) check(k);
    w.dispose();
    w = tf.variable(tf.tensor1d([5, 6]), true, 'capture_test_w2'); // weights loaded into new variables
    for (let k = 4; k < 8; k++) check(k);
    c.dispose();
    c = tf.tensor1d([100, 200]);
    for (let k = 8; k < 12; k++) check(k);
    // 2 replays per recording (calls 2-3, 6-7, 10-11): the count runs on across the recordings made anew
    expect(rep.status()[0]).toMatchObject({ state: 'replaying', replays: 6 });
    rep.dispose();
    // replaced between the first and the second call (before the recording was checked)
    const rep2 = new StepReplayer();
    const check2 = (k: number) => {
      const want = step();
      const got = rep2.run([x], step);
      expect(bits(got[0]!), `call ${k}`).toEqual(bits(want[0]!));
      tf.dispose([...want, ...got] as tf.Tensor[]);
    };
    check2(0);
    w.dispose();
    w = tf.variable(tf.tensor1d([7, 8]), true, 'capture_test_w3');
    for (let k = 1; k < 5; k++) check2(k);
    expect(rep2.status()[0]).toMatchObject({ state: 'replaying', replays: 2 });
    rep2.dispose();
    tf.dispose([w, c, x]);
  });

  it('checks its arguments', () => {
    const rep = new StepReplayer();
    const x = tf.ones([2]);
    x.dispose();
    expect(() => rep.run([x], () => [])).toThrow(/inputs\[0\] must be a live tensor/);
    expect(() => new StepReplayer({ maxSignatures: 0 })).toThrow(/maxSignatures must be an integer >= 1, got 0/);
    const y = tf.ones([2]);
    expect(() => rep.run([y], () => [1 as unknown as tf.Tensor])).toThrow(/must return an array of tensors/);
    y.dispose();
  });

  it('tensorsIn: the tensors of a nested batch, once each, in order', () => {
    const a = tf.ones([1]), b = tf.zeros([2]), c = tf.ones([3]);
    const found = tensorsIn({ inputs: { ids: a, media: [b, null], n: 3 }, targets: c, again: [a], bytes: new Uint8Array(4), m: new Map([['k', b]]) });
    expect(found).toEqual([a, b, c]);
    tf.dispose([a, b, c]);
  });
});
