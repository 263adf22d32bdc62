import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, readSafetensorsFileSync, writeSafetensors } from '@vlmix/core';
import { assertClose, assertNoLeak, countHostReads } from '@vlmix/core/testkit';
import type { VisionEncoderMixin } from '@vlmix/mixins';
import { loadLlava, loadPretrained, loadPretrainedLM, loadVisionTower, pixelValues, type PretrainedLlava } from '../src/index.js';

const vlm = (n: string) => fileURLToPath(new URL(`./fixtures/vlm/${n}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vlmix-hub-llava-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function checkLogits(p: PretrainedLlava): void {
  const io = readSafetensorsFileSync(vlm('llava-tiny.io.safetensors'));
  const ids = io.toTensor('input_ids');
  const want = io.toTensor('logits');
  const logits = p.model.forward({ inputIds: ids, media: { pixels: io.toTensor('pixel_values') } }).logits;
  const scale = tf.max(tf.abs(want)).dataSync()[0]!;
  assertClose(logits, want, { rtol: 1e-4, atol: 1e-4 * scale, name: 'llava logits' });
}

describe('LLaVA folders (LlavaForConditionalGeneration) -> a vlmix type-C model from mixins', () => {
  it('loadPretrained gives kind "llava": LM + vision + projector, logits match the torch reference (image tokens included)', () => {
    const p = loadPretrained(vlm('llava-tiny'));
    if (p.kind !== 'llava') throw new Error(`kind ${p.kind}`);
    expect(p.model.mixinNames()).toEqual(['rope', 'vision', 'projector']);
    expect([p.arch, p.imageTokenId, p.imageTokens, p.vision.hiddenSize]).toEqual(['llama', 273, 16, 32]);
    expect(p.model.getMixin<VisionEncoderMixin>('vision').options.selectLayer).toBe(-2);
    expect(p.skipped).toEqual([]); // the fixture stores no buffers: every tensor maps to a parameter
    checkLogits(p);
    // the image features matter: another image changes the logits at the text after it
    const io = readSafetensorsFileSync(vlm('llava-tiny.io.safetensors'));
    const other = p.model.forward({ inputIds: io.toTensor('input_ids'), media: { pixels: tf.zeros([2, 3, 16, 16]) } }).logits;
    expect(tf.max(tf.abs(tf.sub(other, io.toTensor('logits')))).dataSync()[0]).toBeGreaterThan(1e-2);
    const ids = io.toInt32('input_ids');
    const inputIds = [Array.from(ids.slice(0, 24)), Array.from(ids.slice(24))];
    const pixels = io.toTensor('pixel_values');
    const prepared = p.model.prepareInputs({ inputIds, media: { pixels } });
    assertNoLeak(() => p.model.forward({ inputIds, media: { pixels }, prepared }).logits);
    tf.dispose(pixels);
    p.model.dispose();
  });

  it('the transformers >= 4.52 layout (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*, lm_head) loads the same', () => {
    const d = join(tmp, 'llava-new');
    cpSync(vlm('llava-tiny'), d, { recursive: true });
    const f = readSafetensorsFileSync(join(d, 'model.safetensors'));
    const renamed: Record<string, tf.Tensor> = {};
    for (const n of f.names()) {
      const m = n.startsWith('language_model.model.') ? `model.language_model.${n.slice('language_model.model.'.length)}`
        : n === 'language_model.lm_head.weight' ? 'lm_head.weight' : `model.${n}`;
      renamed[m] = f.toTensor(n);
    }
    renamed['model.vision_tower.vision_model.embeddings.position_ids'] = tf.range(0, 17, 1, 'int32').reshape([1, 17]); // a buffer older towers keep
    writeFileSync(join(d, 'model.safetensors'), writeSafetensors(renamed));
    const p = loadLlava(d);
    expect(p.skipped).toEqual(['model.vision_tower.vision_model.embeddings.position_ids']); // reported under the checkpoint's own name
    checkLogits(p);
    p.model.dispose();
  });

  it('a SigLIP tower (strategy "full", no class token): the vision mixin gives the tower\'s hidden_states[-2]; "default" is refused', () => {
    const d = join(tmp, 'llava-siglip');
    cpSync(vlm('llava-tiny'), d, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
    const sig = JSON.parse(readFileSync(join(vlm('siglip-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
    delete sig.architectures;
    cfg.vision_config = sig;
    cfg.vision_feature_select_strategy = 'full';
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    const own = readSafetensorsFileSync(join(d, 'model.safetensors'));
    const tower = readSafetensorsFileSync(join(vlm('siglip-tiny'), 'model.safetensors'));
    const tensors: Record<string, tf.Tensor> = {};
    for (const n of own.names()) if (!n.startsWith('vision_tower.')) tensors[n] = own.toTensor(n);
    for (const n of tower.names()) tensors[`vision_tower.${n}`] = tower.toTensor(n);
    writeFileSync(join(d, 'model.safetensors'), writeSafetensors(tensors));
    const p = loadLlava(d);
    expect([p.vision.classToken, p.vision.pooling, p.imageTokens]).toEqual([false, 'map', 16]);
    const t = loadVisionTower(vlm('siglip-tiny'));
    const px = readSafetensorsFileSync(vlm('siglip-tiny.io.safetensors')).toTensor('pixel_values');
    const feats = p.model.getMixin<VisionEncoderMixin>('vision').encode(px);
    assertClose(feats, t.forward(px, { outputHiddenStates: true }).hiddenStates![1]!, { rtol: 0, atol: 0, name: 'siglip features' });
    const io = readSafetensorsFileSync(vlm('llava-tiny.io.safetensors'));
    const logits = p.model.forward({ inputIds: io.toTensor('input_ids'), media: { pixels: px } }).logits;
    expect(tf.all(tf.isFinite(logits)).dataSync()[0]).toBe(1);
    cfg.vision_feature_select_strategy = 'default';
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
    expect(() => loadLlava(d)).toThrow(/"vision_feature_select_strategy" = "default" drops the first token, but a siglip tower has no class token \(use "full"\)/);
    t.dispose();
    p.model.dispose();
  });

  it('the chat template renders structured content; encodeChat expands <image> to the image tokens', () => {
    const p = loadLlava(vlm('llava-tiny'));
    const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'hello world' }] }];
    expect(p.chatTemplate!.render(messages, { addGenerationPrompt: true })).toBe('USER: <image>\nhello world\nASSISTANT:');
    const ids = p.encodeChat(messages, { addGenerationPrompt: true });
    expect(ids.filter((i) => i === 273)).toHaveLength(16);
    expect(p.tokenizer!.decode(ids.filter((i) => i !== 273))).toBe('USER: \nhello world\nASSISTANT:');
    // a generation step on the prompt: prepared inputs, one image, no reads in the forward
    const px = pixelValues(p.imageProcessor!, [{ width: 20, height: 16, data: new Uint8Array(20 * 16 * 3).fill(128) }]);
    expect(px.shape).toEqual([1, 3, 16, 16]);
    expect(() => pixelValues(p.imageProcessor!, [])).toThrow(/pixelValues: images: expected a non-empty array of RGB images, got an empty array/);
    const prepared = p.model.prepareInputs({ inputIds: [ids], media: { pixels: px } });
    const reads = countHostReads(() => p.model.forward({ inputIds: [ids], media: { pixels: px }, prepared }).logits);
    expect(reads.reads).toBe(0);
    // generate as docs/pretrained.md shows it: the KV-cached run equals the uncached one
    const opts = { maxNewTokens: 4, greedy: true, eosTokenId: p.tokenizer!.roleId('eos'), inputs: { media: { pixels: px } } };
    const cached = generate(p.model, [ids], { ...opts, useCache: true });
    expect(cached.newTokens[0]).toHaveLength(4);
    expect(cached.sequences).toEqual(generate(p.model, [ids], { ...opts, useCache: false }).sequences);
    expect(() => p.chatTemplate!.render([{ role: 'user', content: [{ type: 'video' } as never] }])).toThrow(/messages\[0\] must be \{role: string, content: string \| \(\{type: 'image'\}/);
    p.model.dispose();
  });

  it('stage-1 training of the projector: loss + gradients read nothing back, only the projector gets gradients, the loss falls', () => {
    const p = loadLlava(vlm('llava-tiny'));
    const io = readSafetensorsFileSync(vlm('llava-tiny.io.safetensors'));
    const ids = io.toInt32('input_ids');
    const inputIds = [Array.from(ids.slice(0, 24)), Array.from(ids.slice(24))];
    // next-token targets on the text after the image; image positions and the last token ignored
    const labels = tf.tensor2d(inputIds.map((r) => r.map((_, j) => (j + 1 < r.length && r[j + 1] !== 273 && r[j] !== 273 ? r[j + 1]! : -100))), undefined, 'int32');
    const pixels = io.toTensor('pixel_values');
    p.model.params.freeze('**');
    p.model.params.unfreeze('projector.**');
    const vars = p.model.params.trainable().map((q) => q.variable);
    expect(vars).toHaveLength(4);
    const inputs = { inputIds, media: { pixels }, prepared: p.model.prepareInputs({ inputIds, media: { pixels } }) };
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      const r = countHostReads(() => tf.variableGrads(() => p.model.loss(inputs, labels), vars));
      expect(r.reads).toBe(0);
      const { value, grads } = r.result;
      expect(Object.keys(grads).sort()).toEqual(vars.map((v) => v.name).sort());
      losses.push(value.dataSync()[0]!);
      tf.tidy(() => vars.forEach((v) => v.assign(tf.sub(v, tf.mul(grads[v.name]!, 0.05)))));
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(losses[4]!).toBeLessThan(losses[0]!);
    p.model.dispose();
  });

  it("a processor's chat_template.json (as llava-hf folders hold it) is used, with selectattr over the content parts", () => {
    const d = join(tmp, 'llava-processor-template');
    cpSync(vlm('llava-tiny'), d, { recursive: true });
    const tpl = "{% for message in messages %}{{ message['role'].upper() + ': ' }}" +
      "{% for part in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}" +
      "{% for part in message['content'] | selectattr('type', 'equalto', 'text') %}{{ part['text'] + ' ' }}{% endfor %}{% endfor %}" +
      "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
    writeFileSync(join(d, 'chat_template.json'), JSON.stringify({ chat_template: tpl }));
    const p = loadLlava(d);
    const messages = [{ role: 'user', content: [{ type: 'text' as const, text: 'hello' }, { type: 'image' as const }] }];
    expect(p.chatTemplate!.render(messages, { addGenerationPrompt: true })).toBe('USER: <image>\nhello ASSISTANT:');
    expect(p.encodeChat(messages, { addGenerationPrompt: true }).filter((i) => i === 273)).toHaveLength(16);
    p.model.dispose();
  });

  it('loadPretrained dispatches by model_type; loadPretrainedLM refuses a LLaVA folder; config errors name the field', () => {
    expect(loadPretrained(vlm('clip-vision-tiny')).kind).toBe('vision-tower');
    expect(() => loadPretrainedLM(vlm('llava-tiny'))).toThrow(/"model_type" = "llava" is not a supported language model/);
    const bad = (name: string, edit: (c: Record<string, unknown>) => void) => {
      const d = join(tmp, name);
      cpSync(vlm('llava-tiny'), d, { recursive: true });
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
      edit(c);
      writeFileSync(join(d, 'config.json'), JSON.stringify(c));
      return d;
    };
    expect(() => loadLlava(bad('layers', (c) => (c.vision_feature_layer = [-2, -5])))).toThrow(/"vision_feature_layer" = \[-2,-5\] is not supported/);
    expect(() => loadLlava(bad('act', (c) => (c.projector_hidden_act = 'relu')))).toThrow(/"projector_hidden_act" = "relu" is not supported/);
    expect(() => loadLlava(bad('seq', (c) => (c.image_seq_length = 576)))).toThrow(/"image_seq_length" = 576 disagrees with vision_config \(16 image tokens/);
    expect(() => loadLlava(bad('strategy', (c) => (c.vision_feature_select_strategy = 'cls')))).toThrow(/"vision_feature_select_strategy": expected "default" or "full", got "cls"/);
    const noTok = bad('notok', () => {});
    unlinkSync(join(noTok, 'tokenizer.json'));
    const p = loadLlava(noTok);
    expect(() => p.encodeChat([{ role: 'user', content: 'x' }])).toThrow(/encodeChat needs tokenizer\.json/);
    p.model.dispose();
  });
});
