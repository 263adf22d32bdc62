// A minimal stand-in for the parts of vitest the backend-native tests use (describe / it / skipIf /
// beforeAll / afterAll / expect), so the test files can be bundled and run on the device machine,
// which has Node but no node_modules. Tests are collected on import and run in order by runAll().
type Fn = () => unknown | Promise<unknown>;

interface Suite {
  name: string;
  skip: boolean;
  beforeAll: Fn[];
  afterAll: Fn[];
  items: Array<Suite | Test>;
}
interface Test {
  name: string;
  fn: Fn;
  skip: boolean;
}

const root: Suite = { name: '', skip: false, beforeAll: [], afterAll: [], items: [] };
let current = root;

function addSuite(name: string, fn: () => void, skip: boolean) {
  const s: Suite = { name, skip: skip || current.skip, beforeAll: [], afterAll: [], items: [] };
  current.items.push(s);
  const parent = current;
  current = s;
  try {
    fn();
  } finally {
    current = parent;
  }
}

export const describe = Object.assign((name: string, fn: () => void) => addSuite(name, fn, false), {
  skip: (name: string, fn: () => void) => addSuite(name, fn, true),
  skipIf: (cond: unknown) => (name: string, fn: () => void) => addSuite(name, fn, !!cond),
});

const addTest = (name: string, fn: Fn, skip: boolean) => current.items.push({ name, fn, skip: skip || current.skip });
export const it = Object.assign((name: string, fn: Fn) => addTest(name, fn, false), {
  skip: (name: string, fn: Fn) => addTest(name, fn, true),
  skipIf: (cond: unknown) => (name: string, fn: Fn) => addTest(name, fn, !!cond),
});
export const test = it;
export const beforeAll = (fn: Fn) => current.beforeAll.push(fn);
export const afterAll = (fn: Fn) => current.afterAll.push(fn);

const show = (v: unknown) => {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object), kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function throwMatches(e: unknown, want?: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  if (want === undefined) return true;
  if (typeof want === 'string') return msg.includes(want);
  if (want instanceof RegExp) return want.test(msg);
  if (typeof want === 'function') return e instanceof (want as new () => unknown);
  return false;
}

function matchers(actual: unknown, negate: boolean) {
  const check = (ok: boolean, what: string) => {
    if (ok === negate) throw new Error(`expected ${show(actual)} ${negate ? 'not ' : ''}${what}`);
  };
  return {
    toBe: (e: unknown) => check(Object.is(actual, e), `to be ${show(e)}`),
    toEqual: (e: unknown) => check(deepEqual(actual, e), `to equal ${show(e)}`),
    toMatch: (e: RegExp | string) => check(typeof e === 'string' ? String(actual).includes(e) : e.test(String(actual)), `to match ${e}`),
    toContain: (e: unknown) => check((actual as unknown[] | string).includes(e as never), `to contain ${show(e)}`),
    toBeGreaterThan: (e: number) => check((actual as number) > e, `to be > ${e}`),
    toBeLessThan: (e: number) => check((actual as number) < e, `to be < ${e}`),
    toBeNull: () => check(actual === null, 'to be null'),
    toBeTruthy: () => check(!!actual, 'to be truthy'),
    toBeInstanceOf: (c: new (...a: never[]) => unknown) => check(actual instanceof c, `to be an instance of ${c.name}`),
    toThrow: (want?: unknown) => {
      let threw = false, err: unknown;
      try {
        (actual as () => unknown)();
      } catch (e) {
        threw = true;
        err = e;
      }
      check(threw && throwMatches(err, want), `to throw ${want ?? ''} (${threw ? `threw: ${(err as Error)?.message}` : 'did not throw'})`);
    },
  };
}

export function expect(actual: unknown) {
  return Object.assign(matchers(actual, false), {
    not: matchers(actual, true),
    rejects: {
      toThrow: async (want?: unknown) => {
        try {
          await actual;
        } catch (e) {
          if (!throwMatches(e, want)) throw new Error(`expected a rejection matching ${want}, got: ${(e as Error).message}`);
          return;
        }
        throw new Error(`expected a rejection matching ${want}, but it resolved`);
      },
    },
  });
}

export interface TestResult {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  ms: number;
  error?: string;
}

/** Runs every collected test (in collection order); `filter` selects by full name. */
export async function runAll(filter?: RegExp, log: (line: string) => void = console.log): Promise<TestResult[]> {
  const results: TestResult[] = [];
  async function runSuite(s: Suite, prefix: string) {
    const full = (n: string) => (prefix ? `${prefix} > ${n}` : n);
    const tests = (x: Suite): Test[] => x.items.flatMap((i) => ('fn' in i ? [i] : tests(i)));
    const wanted = tests(s).some((t) => !t.skip);
    let hooksOk = true;
    if (!s.skip && wanted) {
      for (const h of s.beforeAll) {
        try {
          await h();
        } catch (e) {
          hooksOk = false;
          log(`  beforeAll failed in '${s.name}': ${(e as Error).message}`);
        }
      }
    }
    for (const item of s.items) {
      if (!('fn' in item)) {
        await runSuite(item, full(item.name));
        continue;
      }
      const name = full(item.name);
      if (filter && !filter.test(name)) continue;
      if (item.skip) {
        results.push({ name, status: 'skip', ms: 0 });
        log(`  - ${name}`);
        continue;
      }
      const t0 = performance.now();
      try {
        if (!hooksOk) throw new Error('beforeAll hook failed');
        await item.fn();
        results.push({ name, status: 'pass', ms: performance.now() - t0 });
        log(`  ✓ ${name}`);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        results.push({ name, status: 'fail', ms: performance.now() - t0, error: msg });
        log(`  × ${name}\n      ${msg.split('\n')[0]}`);
      }
    }
    if (!s.skip && wanted) {
      for (const h of s.afterAll) {
        try {
          await h();
        } catch (e) {
          log(`  afterAll failed in '${s.name}': ${(e as Error).message}`);
        }
      }
    }
  }
  await runSuite(root, '');
  return results;
}
