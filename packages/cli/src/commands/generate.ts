/** `vlmix generate <run-dir> --image file.png --prompt "..."` (and, for type D, `--image-out file.png`) */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@vlmix/core';
import { decodeImage, encodePng, resize } from '@vlmix/data';
import { intFlag, parseArgs, strFlag, UsageError } from '../args.js';
import { chooseBackend } from '../backend.js';
import { loadRun } from '../experiment.js';
import type { IO } from '../io.js';

export const generateHelp = `Usage: vlmix generate <run-dir> --image FILE --prompt TEXT [--max-tokens N] [--backend B]
       vlmix generate <run-dir> --image-out FILE [--seed S] [--temperature T] [--top-k K]   (type D)

Loads a run saved by 'vlmix train --out <run-dir>' and answers the prompt about the image (PNG or
JPEG, resized to the model's input size), streaming tokens to stdout. Greedy decoding with the KV cache.

With --image-out, a type D model samples an image instead: it continues <bos> <boi> with code tokens
(temperature default 1, 0 = greedy; seeded) and writes the VQ decoder's pixels as a PNG.
`;

export async function runGenerate(argv: string[], io: IO): Promise<number> {
  const p = parseArgs(argv, { booleans: ['help'], values: ['image', 'prompt', 'max-tokens', 'backend', 'image-out', 'seed', 'temperature', 'top-k'] });
  if (p.flags.has('help')) {
    io.out(generateHelp);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`generate takes one run directory, got ${p.positionals.length}`);
  const imagePath = strFlag(p, 'image');
  const prompt = strFlag(p, 'prompt');
  const imageOut = strFlag(p, 'image-out');
  if (!prompt && !imageOut) throw new UsageError(`--prompt is required (or --image-out FILE to sample an image from a type D model)`);
  const temperature = strFlag(p, 'temperature');
  if (temperature != null && !(Number(temperature) >= 0)) throw new UsageError(`--temperature: expected a number >= 0, got ${JSON.stringify(temperature)}`);
  await chooseBackend(strFlag(p, 'backend'), io.err);
  const vlm = await loadRun(p.positionals[0]!);
  try {
    if (imageOut) {
      if (!vlm.vq) throw new UsageError(`--image-out: the run is a type ${vlm.type} model; only type D generates images`);
      const g = vlm.generateImage({
        seed: intFlag(p, 'seed', 0), temperature: temperature == null ? 1 : Number(temperature),
        topK: p.flags.has('top-k') ? intFlag(p, 'top-k') : undefined,
      });
      await writeFileAtomic(imageOut, encodePng(g.image));
      io.out(`wrote ${imageOut} (${g.image.width}x${g.image.height}, ${g.tokens.length - 1} image tokens)`);
      if (!prompt) return 0;
    }
    if (!imagePath && vlm.type !== 'LM') throw new UsageError(`--image is required for a type ${vlm.type} model`);
    const img = imagePath ? decodeImage(await readFile(imagePath), imagePath) : { width: vlm.imageSize, height: vlm.imageSize, data: new Uint8Array(3 * vlm.imageSize ** 2) };
    const sized = img.width === vlm.imageSize && img.height === vlm.imageSize ? img : resize(img, vlm.imageSize, vlm.imageSize);
    let streamed = '';
    const answer = vlm.answer({ image: sized, question: prompt! }, {
      maxNewTokens: intFlag(p, 'max-tokens', 8),
      onToken: (t) => {
        streamed += t;
        process.stdout.write(t);
      },
    });
    process.stdout.write('\n');
    if (streamed.trim() !== answer) io.err(`(decoded: ${answer})`);
  } finally {
    vlm.dispose();
  }
  return 0;
}
