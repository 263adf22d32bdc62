/** The `vlmix` command: dispatch to subcommands. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { listPresets } from '@vlmix/core';
import { UsageError } from './args.js';
import { inspectHelp, runInspect } from './commands/inspect.js';
import { runTrain, trainHelp } from './commands/train.js';
import { generateHelp, runGenerate } from './commands/generate.js';
import { demoHelp, runDemo } from './commands/demo.js';
import type { IO } from './io.js';
import '@vlmix/fusion';

type Command = { summary: string; help: string; run: (argv: string[], io: IO) => Promise<number> };

export const commands: Record<string, Command> = {
  inspect: { summary: 'show the hook table and parameter counts of a preset', help: inspectHelp, run: runInspect },
  train: { summary: 'train a preset on the synthetic visual-QA set (checkpoints, --resume, --json)', get help() { return trainHelp(); }, run: runTrain },
  generate: { summary: 'answer a prompt about an image with a trained run', help: generateHelp, run: runGenerate },
  demo: { summary: 'train types A, B, C and D, compare them, write a report', help: demoHelp, run: runDemo },
};

export function mainHelp(): string {
  const w = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'vlmix: compose, train and benchmark vision-language models on TensorFlow.js',
    '',
    'Usage: vlmix <command> [options]      (vlmix <command> --help for details)',
    '',
    'Commands:',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(w)}  ${c.summary}`),
    '',
    `Presets: ${listPresets().map((p) => p.name).join(', ')}`,
    '',
  ].join('\n');
}

const loaded = new Map<string, Promise<void>>();

/**
 * Imports the modules listed in VLMIX_PLUGINS (comma-separated paths or package names), each once, so
 * the presets and recipes they register (registerVlmPreset, registerPreset) are known to every command.
 */
export async function loadPlugins(list = process.env.VLMIX_PLUGINS ?? ''): Promise<void> {
  for (const spec of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const url = /^[./]/.test(spec) ? pathToFileURL(resolve(spec)).href : spec;
    if (!loaded.has(url)) {
      loaded.set(url, import(url).then(() => undefined, (e: Error) => {
        loaded.delete(url);
        throw new Error(`VLMIX_PLUGINS: cannot load '${spec}': ${e.message}`);
      }));
    }
    await loaded.get(url);
  }
}

/** Runs the CLI; returns the exit code. Errors go to `err` as one clear line. */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err: (s: string) => void = (s) => void process.stderr.write(`${s}\n`),
): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    await loadPlugins();
  } catch (e) {
    err(`vlmix: ${(e as Error).message}`);
    return 1;
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(mainHelp());
    return cmd ? 0 : 1;
  }
  const c = commands[cmd];
  if (!c) {
    err(`vlmix: unknown command '${cmd}'. Commands: ${Object.keys(commands).join(', ')}. See vlmix --help.`);
    return 2;
  }
  try {
    return await c.run(rest, { out, err });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`vlmix ${cmd}: ${e.message}\n\n${c.help}`);
      return 2;
    }
    // Bad input (shapes, files, configs) surfaces as an error message; VLMIX_DEBUG=1 adds the stack.
    if (e instanceof Error) {
      err(`vlmix ${cmd}: ${e.message}${process.env.VLMIX_DEBUG ? `\n${e.stack}` : ''}`);
      return 1;
    }
    throw e;
  }
}
