/** `vlmix generate <run-dir> --image file.png --prompt "..."` (and, for type D, `--image-out file.png`) */
import { readFile, stat } from 'node:fs/promises';
import { ContextLengthError, isModelFolder, writeFileAtomic } from '@vlmix/core';
import { decodeImage, encodePng, resize, type RgbImage } from '@vlmix/data';
import { loadRun, loadVlm } from '@vlmix/fusion';
import { boundedIntFlag, intFlag, parseArgs, positiveNumberFlag, strFlag, UsageError } from '../args.js';
import { chooseBackend } from '../backend.js';
import { generateFromFolder, isHfFolder } from './hf-folder.js';
import type { IO } from '../io.js';

export const generateHelp = `Usage: vlmix generate <run-dir> --image FILE --prompt TEXT [--max-tokens N] [--backend B]
       vlmix generate <run-dir> --image-out FILE [--seed S] [--temperature T] [--top-k K]   (type D)

Loads a run saved by 'vlmix train --out <run-dir>' (its newest checkpoint that passes verification)
and answers the prompt about the image (PNG or JPEG, resized to the model's input size unless the model takes any resolution), streaming
tokens to stdout. Greedy decoding with the KV cache; prompt + --max-tokens must fit the model's context.

<run-dir> may also be a Hugging Face folder (config.json + safetensors + tokenizer.json: a language model
or a LLaVA checkpoint, e.g. one written by savePretrained): the prompt goes through the folder's chat
template when it has one (--raw: as is), the image through its preprocessor_config.json; --temperature T samples.
It may also be a folder written by vlm.save(dir) (vlmix-model.json: the recipe of mixins, weights, tokenizer).

With --image-out, a type D model samples an image instead: it continues <bos> <boi> with code tokens
(temperature default 1, 0 = greedy; seeded) and writes the VQ decoder's pixels as a PNG.
`;

/** Reads and decodes --image; errors name the flag and the path. */
async function readImage(path: string): Promise<RgbImage> {
  let s;
  try {
    s = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`--image ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (s.isDirectory()) throw new UsageError(`--image ${path}: is a directory; expected a PNG or JPEG file`);
  return decodeImage(await readFile(path), path);
}

export async function runGenerate(argv: string[], io: IO): Promise<number> {
  const p = parseArgs(argv, { booleans: ['help', 'raw'], values: ['image', 'prompt', 'max-tokens', 'backend', 'image-out', 'seed', 'temperature', 'top-k'] });
  if (p.flags.has('help')) {
    io.out(generateHelp);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`generate takes one run directory, got ${p.positionals.length}`);
  const imagePath = strFlag(p, 'image');
  const prompt = strFlag(p, 'prompt');
  const imageOut = strFlag(p, 'image-out');
  if (!prompt && !imageOut) throw new UsageError(`--prompt is required (or --image-out FILE to sample an image from a type D model)`);
  const temperature = positiveNumberFlag(p, 'temperature', { allowZero: true });
  const maxTokens = boundedIntFlag(p, 'max-tokens', 1, 8);
  const topK = p.flags.has('top-k') ? boundedIntFlag(p, 'top-k', 1) : undefined;
  const seed = intFlag(p, 'seed', 0);
  await chooseBackend(strFlag(p, 'backend'), io.err);
  if (isHfFolder(p.positionals[0]!)) {
    if (imageOut) throw new UsageError(`--image-out: ${p.positionals[0]} is a Hugging Face folder; only type D runs generate images`);
    if (!prompt) throw new UsageError('--prompt is required');
    generateFromFolder(p.positionals[0]!, {
      prompt, image: imagePath ? await readImage(imagePath) : null, maxNewTokens: maxTokens, temperature, seed, raw: p.flags.has('raw'),
      onText: (t) => io.out(t),
    });
    return 0;
  }
  const dir = p.positionals[0]!;
  const vlm = isModelFolder(dir) ? loadVlm(dir) : await loadRun(dir, { onWarning: (m) => io.err(`warning: ${m}`) });
  try {
    if (imageOut) {
      if (!vlm.vq) throw new UsageError(`--image-out: the run is a type ${vlm.type} model; only type D generates images`);
      const g = vlm.generateImage({ seed, temperature: temperature ?? 1, topK });
      await writeFileAtomic(imageOut, encodePng(g.image));
      io.out(`wrote ${imageOut} (${g.image.width}x${g.image.height}, ${g.tokens.length - 1} image tokens)`);
      if (!prompt) return 0;
    }
    if (!imagePath && vlm.type !== 'LM') throw new UsageError(`--image is required for a type ${vlm.type} model`);
    const img = imagePath ? await readImage(imagePath) : { width: vlm.imageSize, height: vlm.imageSize, data: new Uint8Array(3 * vlm.imageSize ** 2) };
    // any-resolution models (llava-1.6, internvl) read the image at its own size
    const sized = vlm.anyResolution || (img.width === vlm.imageSize && img.height === vlm.imageSize) ? img : resize(img, vlm.imageSize, vlm.imageSize);
    let streamed = '';
    let answer: string;
    try {
      answer = vlm.answer({ image: sized, question: prompt! }, {
        maxNewTokens: maxTokens,
        onToken: (t) => {
          streamed += t;
          process.stdout.write(t);
        },
      });
    } catch (e) {
      if (streamed) process.stdout.write('\n');
      if (e instanceof ContextLengthError) {
        const room = e.maxSeqLen - e.promptLength;
        throw new UsageError(`--max-tokens ${maxTokens}: the prompt takes ${e.promptLength} of the model's ${e.maxSeqLen} tokens` +
          (room > 0 ? `; use --max-tokens ${room} or less` : '; shorten the prompt'));
      }
      throw e;
    }
    process.stdout.write('\n');
    if (streamed.trim() !== answer) io.err(`(decoded: ${answer})`);
  } finally {
    vlm.dispose();
  }
  return 0;
}
