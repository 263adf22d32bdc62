import * as tf from '@tensorflow/tfjs';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, readSafetensorsFileSync, writeSafetensors } from '@vlmix/core';
import { assertClose } from '@vlmix/core/testkit';
import { loadPretrained, loadPretrainedLM } from '../src/index.js';

const lm = (n: string) => fileURLToPath(new URL(`./fixtures/lm/${n}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Loads the folder, runs the reference ids, compares with the reference logits (1e-4). */
function checkLogits(dir: string, ioName: string) {
  const io = readSafetensorsFileSync(lm(`${ioName}.io.safetensors`));
  const before = tf.memory().numTensors;
  const p = loadPretrainedLM(dir);
  const ids = io.toTensor('input_ids');
  const logits = p.model.forward({ inputIds: ids }).logits;
  const expected = io.toTensor('logits');
  assertClose(logits, expected, { rtol: 1e-4, atol: 1e-4, name: `${ioName} logits` });
  tf.dispose([ids, logits, expected]);
  p.model.dispose();
  expect(tf.memory().numTensors).toBe(before); // loading leaves nothing behind
  return p;
}

describe('loadPretrained: one call per Hugging Face folder gives the reference logits', () => {
  it('SmolLM-style LLaMA (tied, GQA 4/2, BF16 weights) with its tokenizer and chat template', () => {
    const p = checkLogits(lm('smollm-tiny'), 'smollm-tiny');
    expect(p.arch).toBe('llama');
    expect(p.config).toMatchObject({ vocabSize: 288, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, tieEmbeddings: true, normEps: 1e-5, maxSeqLen: 32 });
    expect(p.tokenizer?.encode('hello world!')).toEqual([259, 264, 0]);
    expect(p.chatTemplate?.render([{ role: 'user', content: 'hi' }])).toBe('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n');
  });

  it('TinyLlama-style LLaMA (untied head, GQA 4/1, rope_theta 5e5) skipping the rotary_emb.inv_freq buffers', () => {
    const p = checkLogits(lm('tinyllama-tiny'), 'tinyllama-tiny');
    expect(p.skipped).toEqual(['model.layers.0.self_attn.rotary_emb.inv_freq', 'model.layers.1.self_attn.rotary_emb.inv_freq']);
    expect(p.config).toMatchObject({ numKvHeads: 1, tieEmbeddings: false, normEps: 1e-6 });
    expect(p.tokenizer).toBeNull();
    expect(p.chatTemplate).toBeNull();
  });

  it('Qwen2 (q/k/v bias only, tied, rope_theta 1e6, F16 weights in two shards)', () => {
    const p = checkLogits(lm('qwen2-tiny'), 'qwen2-tiny');
    expect(p.arch).toBe('qwen2');
    expect(p.config).toMatchObject({ bias: false, qkvBias: true, tieEmbeddings: true });
  });

  it("GPT-2 as the hub's gpt2 files store it (no transformer. prefix, attn.bias/masked_bias buffers skipped)", () => {
    const p = checkLogits(lm('gpt2-hub-tiny'), 'gpt2-hub-tiny');
    expect(p.config).toMatchObject({ activation: 'gelu_tanh', maxSeqLen: 32, intermediateSize: 128 });
    expect(p.skipped.sort()).toEqual(['h.0.attn.bias', 'h.0.attn.masked_bias', 'h.1.attn.bias', 'h.1.attn.masked_bias']);
  });

  it('GPT-2 as GPT2LMHeadModel saves it (transformer. prefix) loads the same', () => {
    const dir = join(tmp, 'gpt2-prefixed');
    const src = readSafetensorsFileSync(join(lm('gpt2-hub-tiny'), 'model.safetensors'));
    const renamed = Object.fromEntries(src.names().map((n) => {
      const e = src.get(n);
      return [`transformer.${n}`, { dtype: e.dtype, shape: e.shape, data: src.toFloat32(n) }];
    }));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(renamed));
    copyFileSync(join(lm('gpt2-hub-tiny'), 'config.json'), join(dir, 'config.json'));
    checkLogits(dir, 'gpt2-hub-tiny');
  });

  it("nanoGPT saved from a torch.compile'd model (_orig_mod. prefix) loads the same", () => {
    const dir = join(tmp, 'nanogpt-compiled');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const src = readSafetensorsFileSync(join(lm('nanogpt-tiny'), 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(Object.fromEntries(src.names().map((n) => {
      const e = src.get(n);
      return [`_orig_mod.${n}`, { dtype: e.dtype, shape: e.shape, data: src.toFloat32(n) }];
    }))));
    copyFileSync(join(lm('nanogpt-tiny'), 'config.json'), join(dir, 'config.json'));
    expect(checkLogits(dir, 'nanogpt-tiny').skipped).toContain('_orig_mod.lm_head.weight');
  });

  it('nanoGPT (nn.Linear [out, in], exact GELU, bias=False) from its model_args and state_dict', () => {
    const p = checkLogits(lm('nanogpt-tiny'), 'nanogpt-tiny');
    expect(p.arch).toBe('nanogpt');
    expect(p.config).toMatchObject({ activation: 'gelu', bias: false, tieEmbeddings: true });
    expect(p.skipped.sort()).toEqual(['lm_head.weight', 'transformer.h.0.attn.bias', 'transformer.h.1.attn.bias']);
  });
});

describe('loadPretrained: the path of docs/pretrained.md on a generated folder', () => {
  it('chat template -> ids -> greedy generate -> decode; the first new token is the argmax of the prompt logits', () => {
    const { model, tokenizer, chatTemplate } = loadPretrainedLM(lm('smollm-tiny'));
    const prompt = chatTemplate!.encode(tokenizer!, [{ role: 'user', content: 'hello world' }], { addGenerationPrompt: true });
    expect(prompt.slice(-11)).toEqual([271, 64, 82, 82, 72, 82, 83, 64, 77, 83, 198]); // <|im_start|> a s s i s t a n t Ċ
    // The tiny folder declares a 32-token context; this 58-token prompt runs past it on purpose (RoPE).
    const out = generate(model, prompt, { maxNewTokens: 3, greedy: true, eosTokenId: tokenizer!.roleId('eos'), allowPastContext: true });
    const logits = model.forward({ inputIds: [prompt] }).logits;
    const last = tf.tidy(() => tf.argMax(tf.squeeze(tf.slice(logits, [0, prompt.length - 1, 0], [1, 1, -1])), -1).dataSync()[0]);
    expect(out.newTokens[0]![0]).toBe(last);
    expect(typeof tokenizer!.decode(out.newTokens[0]!)).toBe('string');
    logits.dispose();
    model.dispose();
  });
});

describe('loadPretrained: errors name what is wrong', () => {
  const copyFolder = (name: string, to: string) => {
    const dir = join(tmp, to);
    rmSync(dir, { recursive: true, force: true });
    cpSync(lm(name), dir, { recursive: true });
    return dir;
  };

  it('a missing shard is named before anything is read', () => {
    const dir = copyFolder('qwen2-tiny', 'qwen2-missing');
    unlinkSync(join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => loadPretrained(dir)).toThrow(/model-00002-of-00002\.safetensors \(holds e\.g\. "[^"]+"\)/);
  });

  it('a tensor that maps to nothing is listed (nothing is loaded)', () => {
    const dir = copyFolder('gpt2-hub-tiny', 'gpt2-extra');
    const src = readSafetensorsFileSync(join(dir, 'model.safetensors'));
    const all: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const n of src.names()) all[n] = { dtype: 'F32', shape: src.get(n).shape, data: src.toFloat32(n) };
    all['h.0.attn.rotary.freq'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(all));
    expect(() => loadPretrained(dir)).toThrow(/unmapped \(1\) — tensors with no vlmix counterpart: h\.0\.attn\.rotary\.freq/);
  });

  it('a missing tensor is listed with the parameter it was for', () => {
    const dir = copyFolder('tinyllama-tiny', 'llama-missing');
    const src = readSafetensorsFileSync(join(dir, 'model.safetensors'));
    const all: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const n of src.names()) if (n !== 'lm_head.weight') all[n] = { dtype: 'F32', shape: src.get(n).shape, data: src.toFloat32(n) };
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(all));
    expect(() => loadPretrained(dir)).toThrow(/missing \(1\): lm_head\.weight \(for lm_head\.weight\)/);
  });

  it('sizes come from config.json: a config that disagrees with the weights is a shape error', () => {
    const dir = copyFolder('tinyllama-tiny', 'llama-badcfg');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 48 }));
    expect(() => loadPretrained(dir)).toThrow(/mlp\.dense_h_to_4h\.weight: expected \[48, 32\], the checkpoint gives \[64, 32\]/);
  });

  it('unsupported settings and model types name the field', () => {
    const dir = copyFolder('tinyllama-tiny', 'llama-rope-scaling');
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'llama3', factor: 8 } }));
    expect(() => loadPretrained(dir)).toThrow(/RoPE scaling "llama3" is not supported/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'mamba' }));
    expect(() => loadPretrained(dir)).toThrow(/"model_type" = "mamba" is not a supported language model \(supported: llama, qwen2, gpt2, nanogpt/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 0 }));
    expect(() => loadPretrained(dir)).toThrow(/"num_hidden_layers": expected a positive integer, got 0/);
  });

  it('a folder without safetensors says what it has', () => {
    const dir = join(tmp, 'pickles');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(lm('tinyllama-tiny'), 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expect(() => loadPretrained(dir)).toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json .*PyTorch pickles \(pytorch_model\.bin\)/);
  });
});
