/** `vlmix generate <run-dir> --image file.png --prompt "..."` */
import { readFile } from 'node:fs/promises';
import { decodeImage, resize } from '@vlmix/data';
import { intFlag, parseArgs, strFlag, UsageError } from '../args.js';
import { chooseBackend } from '../backend.js';
import { loadRun } from '../experiment.js';
import type { IO } from '../io.js';

export const generateHelp = `Usage: vlmix generate <run-dir> --image FILE --prompt TEXT [--max-tokens N] [--backend B]

Loads a run saved by 'vlmix train --out <run-dir>' and answers the prompt about the image (PNG or
JPEG, resized to the model's input size), streaming tokens to stdout. Greedy decoding with the KV cache.
`;

export async function runGenerate(argv: string[], io: IO): Promise<number> {
  const p = parseArgs(argv, { booleans: ['help'], values: ['image', 'prompt', 'max-tokens', 'backend'] });
  if (p.flags.has('help')) {
    io.out(generateHelp);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError(`generate takes one run directory, got ${p.positionals.length}`);
  const imagePath = strFlag(p, 'image');
  const prompt = strFlag(p, 'prompt');
  if (!prompt) throw new UsageError(`--prompt is required`);
  await chooseBackend(strFlag(p, 'backend'), io.err);
  const vlm = await loadRun(p.positionals[0]!);
  try {
    if (!imagePath && vlm.type !== 'LM') throw new UsageError(`--image is required for a type ${vlm.type} model`);
    const img = imagePath ? decodeImage(await readFile(imagePath), imagePath) : { width: vlm.imageSize, height: vlm.imageSize, data: new Uint8Array(3 * vlm.imageSize ** 2) };
    const sized = img.width === vlm.imageSize && img.height === vlm.imageSize ? img : resize(img, vlm.imageSize, vlm.imageSize);
    let streamed = '';
    const answer = vlm.answer({ image: sized, question: prompt }, {
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
