import { describe, expect, it } from 'vitest';
import { mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { assertClose, assertNoLeak, loadFixture, loadFixtureSync } from '../src/testkit/index.js';

const FIX = join(import.meta.dirname, 'fixtures');

describe('loadFixture', () => {
  it('loads weights, io and README; weights is null when absent', async () => {
    const llama = await loadFixture(join(FIX, 'llama2c_forward'));
    expect(llama.weights!.names()).toHaveLength(21);
    expect(llama.io.get('logits').shape).toEqual([2, 16, 64]);
    expect(llama.readme).toMatch(/llama2\.c/);
    const mrope = await loadFixture(join(FIX, 'mrope'));
    expect(mrope.weights).toBeNull();
    expect(mrope.io.names()).toContain('cos');
    const pr = loadFixtureSync(join(FIX, 'perceiver_resampler'));
    expect(pr.io.get('latents').shape).toEqual([2, 1, 8, 32]);
    expect(pr.weights!.get('latents').shape).toEqual([8, 32]);
  });

  it('errors clearly for a folder without io.safetensors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vlmix-fx-'));
    await mkdir(join(dir, 'empty'));
    await expect(loadFixture(join(dir, 'empty'))).rejects.toThrow(/io\.safetensors not found/);
    expect(() => loadFixtureSync(join(dir, 'empty'))).toThrow(/io\.safetensors not found/);
  });
});

// An independent tfjs implementation of the documented GPT-2 semantics, checked against the fixture.
describe('gpt2_forward fixture', () => {
  const fx = loadFixtureSync(join(FIX, 'gpt2_forward'));
  const W = fx.weights!;
  const w = (n: string) => W.toTensor(n);
  const C = 32;
  const H = 4;
  const hd = 8;

  function ln(x: tf.Tensor, p: string) {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), w(`${p}.weight`)), w(`${p}.bias`));
    });
  }
  const conv1d = (x: tf.Tensor, p: string) => tf.add(tf.matMul(x.reshape([-1, x.shape.at(-1)!]), w(`${p}.weight`)).reshape([...x.shape.slice(0, -1), -1]), w(`${p}.bias`));
  const gelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));

  function forward(ids: tf.Tensor, mask?: tf.Tensor) {
    return tf.tidy(() => {
      const [B, T] = ids.shape as [number, number];
      let x = tf.add(tf.gather(w('transformer.wte.weight'), ids), tf.slice(w('transformer.wpe.weight'), [0, 0], [T, C]));
      const hidden = [x];
      const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0).reshape([1, 1, T, T]);
      let allowed: tf.Tensor = causal;
      if (mask) allowed = tf.mul(causal, tf.cast(mask, 'float32').reshape([B, 1, 1, T]));
      const bias = tf.mul(tf.sub(1, allowed), -1e30);
      for (let i = 0; i < 2; i++) {
        const p = `transformer.h.${i}`;
        const a = conv1d(ln(x, `${p}.ln_1`), `${p}.attn.c_attn`);
        const [q, k, v] = tf.split(a, 3, -1).map((t) => t.reshape([B, T, H, hd]).transpose([0, 2, 1, 3]));
        const s = tf.add(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(hd)), bias);
        const o = tf.matMul(tf.softmax(s), v!).transpose([0, 2, 1, 3]).reshape([B, T, C]);
        x = tf.add(x, conv1d(o, `${p}.attn.c_proj`));
        x = tf.add(x, conv1d(gelu(conv1d(ln(x, `${p}.ln_2`), `${p}.mlp.c_fc`)), `${p}.mlp.c_proj`));
        hidden.push(x);
      }
      const final = ln(x, 'transformer.ln_f');
      const logits = tf.matMul(final.reshape([-1, C]), w('lm_head.weight'), false, true).reshape([B, T, -1]);
      return { hidden: tf.stack(hidden), final, logits };
    });
  }

  it('documented semantics reproduce hidden states, logits and loss', () => {
    expect(Array.from(W.toFloat32('lm_head.weight'))).toEqual(Array.from(W.toFloat32('transformer.wte.weight')));
    const ids = fx.io.toTensor('input_ids');
    const out = forward(ids);
    const exp = (n: string) => ({ shape: fx.io.get(n).shape, data: fx.io.toFloat32(n) });
    assertClose(out.hidden, exp('hidden_states'), { name: 'hidden_states', rtol: 1e-5, atol: 5e-4 });
    assertClose(out.final, exp('final_norm'), { name: 'final_norm', atol: 1e-4 });
    assertClose(out.logits, exp('logits'), { name: 'logits', atol: 1e-4 });
    const loss = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(fx.io.toTensor('targets').reshape([-1]), 64), out.logits.reshape([-1, 64])));
    assertClose(loss.reshape([1]), exp('loss'), { name: 'loss', atol: 1e-5 });
    tf.dispose([ids, out.hidden, out.final, out.logits, loss]);
  });

  it('padded case: positions with mask 1 match logits_masked', () => {
    const ids = fx.io.toTensor('input_ids');
    const mask = fx.io.toTensor('attention_mask');
    expect(Array.from(fx.io.toInt32('attention_mask')).filter((m) => m === 0)).toHaveLength(5);
    const out = forward(ids, mask);
    const got = out.logits.arraySync() as number[][][];
    const want = tf.tidy(() => fx.io.toTensor('logits_masked').arraySync()) as number[][][];
    const m = mask.arraySync() as number[][];
    const valid = { got: [] as number[], want: [] as number[] };
    for (let b = 0; b < 2; b++) for (let t = 0; t < 16; t++) if (m[b]![t]) { valid.got.push(...got[b]![t]!); valid.want.push(...want[b]![t]!); }
    expect(valid.got.length).toBe(27 * 64);
    assertClose(valid.got, valid.want, { name: 'logits_masked (valid positions)', atol: 1e-4 });
    tf.dispose([ids, mask, out.hidden, out.final, out.logits]);
  });

  it('forward is leak-free (sanity check of the helpers on real code)', () => {
    const ids = fx.io.toTensor('input_ids');
    assertNoLeak(() => { const o = forward(ids); return [o.hidden, o.final, o.logits]; }, { label: 'gpt2 forward' });
    ids.dispose();
  });
});
