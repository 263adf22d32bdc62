/** The `vlmix` command: dispatch to subcommands. */
import { listPresets, VlmixError } from '@vlmix/core';
import { UsageError } from './args.js';
import { inspectHelp, runInspect } from './commands/inspect.js';

type Command = { summary: string; help: string; run: (argv: string[], out: (s: string) => void) => Promise<number> };

export const commands: Record<string, Command> = {
  inspect: { summary: 'show the hook table and parameter counts of a preset', help: inspectHelp, run: runInspect },
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

/** Runs the CLI; returns the exit code. Errors go to `err` as one clear line. */
export async function main(argv: string[], out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
  err = (s: string) => process.stderr.write(`${s}\n`)): Promise<number> {
  const [cmd, ...rest] = argv;
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
    return await c.run(rest, out);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`vlmix ${cmd}: ${e.message}\n\n${c.help}`);
      return 2;
    }
    if (e instanceof VlmixError) {
      err(`vlmix ${cmd}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
