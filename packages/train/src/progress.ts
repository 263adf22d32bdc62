/**
 * Progress output: a single redrawn line on a TTY (\r, throttled), plain log lines otherwise.
 */
export type LogMode = 'auto' | 'tty' | 'plain' | 'silent';

export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  mode?: LogMode;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Plain mode: a line every N steps (and on the first and last). Default 10. */
  logEvery?: number;
  /** TTY mode: minimum ms between redraws. Default 100. */
  throttleMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

export interface ProgressUpdate {
  step: number;
  loss: number;
  lr?: number;
  tokensPerSec?: number | null;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

function formatRate(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
}

export class Progress {
  readonly mode: Exclude<LogMode, 'auto'>;
  private readonly stream: ProgressStream;
  private readonly logEvery: number;
  private readonly throttleMs: number;
  private readonly now: () => number;
  private total = 0;
  private startStep = 0;
  private startTime = 0;
  private lastDraw = -Infinity;
  private drawn = false;
  private last: ProgressUpdate | null = null;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    const mode = opts.mode ?? 'auto';
    this.mode = mode === 'auto' ? (this.stream.isTTY ? 'tty' : 'plain') : mode;
    this.logEvery = Math.max(1, opts.logEvery ?? 10);
    this.throttleMs = opts.throttleMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
  }

  start(total: number, startStep = 0): void {
    this.total = total;
    this.startStep = startStep;
    this.startTime = this.now();
    this.lastDraw = -Infinity;
  }

  /** ETA from the average step time of this session. */
  private eta(step: number): number {
    const done = step - this.startStep;
    if (done <= 0) return NaN;
    return (((this.now() - this.startTime) / done) * (this.total - step)) / 1000;
  }

  private describe(u: ProgressUpdate): string {
    const parts = [`loss ${u.loss.toFixed(4)}`];
    if (u.lr !== undefined) parts.push(`lr ${u.lr.toExponential(2)}`);
    if (u.tokensPerSec != null) parts.push(`${formatRate(u.tokensPerSec)} tok/s`);
    parts.push(`ETA ${formatDuration(this.eta(u.step))}`);
    return parts.join(' | ');
  }

  update(u: ProgressUpdate): void {
    this.last = u;
    if (this.mode === 'silent') return;
    if (this.mode === 'plain') {
      if (u.step % this.logEvery === 0 || u.step === this.startStep + 1 || u.step === this.total) {
        this.stream.write(`step ${u.step}/${this.total} | ${this.describe(u)}\n`);
      }
      return;
    }
    const t = this.now();
    if (t - this.lastDraw < this.throttleMs && u.step !== this.total) return;
    this.lastDraw = t;
    this.draw(u);
  }

  private draw(u: ProgressUpdate): void {
    const width = 20;
    const frac = this.total > 0 ? Math.min(1, u.step / this.total) : 0;
    const fill = Math.round(frac * width);
    const bar = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
    let line = `${bar} ${u.step}/${this.total} | ${this.describe(u)}`;
    const cols = this.stream.columns;
    if (cols && line.length > cols - 1) line = line.slice(0, cols - 1);
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }

  /** A message on its own line (eval results, checkpoints), keeping the bar below it. */
  log(message: string): void {
    if (this.mode === 'silent') return;
    if (this.mode === 'tty' && this.drawn) {
      this.stream.write(`\r\x1b[K${message}\n`);
      if (this.last) this.draw(this.last);
    } else this.stream.write(`${message}\n`);
  }

  finish(): void {
    if (this.mode === 'tty' && this.drawn) {
      if (this.last) this.draw(this.last);
      this.stream.write('\n');
      this.drawn = false;
    }
  }
}
