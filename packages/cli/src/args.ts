/** A small argument parser: positionals, --flag, --key value, --key=value. */
export interface Parsed {
  positionals: string[];
  flags: Map<string, string | true>;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseArgs(argv: string[], spec: { booleans?: string[]; values?: string[] }): Parsed {
  const booleans = new Set(spec.booleans ?? []);
  const values = new Set(spec.values ?? []);
  const out: Parsed = { positionals: [], flags: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--')) {
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = a.slice(2, eq < 0 ? undefined : eq);
    if (booleans.has(key)) {
      if (eq >= 0) throw new UsageError(`--${key} takes no value`);
      out.flags.set(key, true);
    } else if (values.has(key)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v == null || (eq < 0 && v.startsWith('--'))) throw new UsageError(`--${key} needs a value`);
      out.flags.set(key, v);
    } else {
      throw new UsageError(`unknown option --${key}`);
    }
  }
  return out;
}

export function intFlag(p: Parsed, key: string, fallback?: number): number {
  const v = p.flags.get(key);
  if (v == null || v === true) {
    if (fallback == null) throw new UsageError(`--${key} is required`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${key}: expected an integer, got ${JSON.stringify(v)}`);
  return n;
}

export function strFlag(p: Parsed, key: string): string | undefined {
  const v = p.flags.get(key);
  return typeof v === 'string' ? v : undefined;
}

/** An integer flag >= min (default 1); the error names the flag and the value. */
export function boundedIntFlag(p: Parsed, key: string, min: number, fallback?: number): number {
  const n = intFlag(p, key, fallback);
  if (n < min) throw new UsageError(`--${key}: expected ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${n}`);
  return n;
}

/** A finite number flag > 0 (or >= 0 with allowZero). */
export function positiveNumberFlag(p: Parsed, key: string, opts: { allowZero?: boolean } = {}): number | undefined {
  const v = strFlag(p, key);
  if (v == null) return undefined;
  const n = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(n) && (opts.allowZero ? n >= 0 : n > 0);
  if (!ok) throw new UsageError(`--${key}: expected ${opts.allowZero ? 'a number >= 0' : 'a positive finite number'}, got ${JSON.stringify(v)}`);
  return n;
}

/** Quotes an argument for a POSIX shell when needed (for printed commands). */
export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
