/**
 * What the soak bench (bench/soak.ts) measures: every request's latency and outcome by kind,
 * and the resident set of each Relais process sampled every few seconds. Samples are kept
 * whole (a five-minute run makes tens of thousands), so percentiles are exact, and each one
 * carries its time, so a window (the period close) can be read apart.
 */
import { readFileSync } from 'node:fs';

/** One request kind's samples: latency in ms and when it was sent (ms since the load began). */
interface KindSamples {
  latencies: number[];
  sentAt: number[];
  failed: boolean[];
  /** HTTP status (or `network`) → count, expected or not. */
  statuses: Map<string, number>;
}

export interface KindFigures {
  kind: string;
  requests: number;
  ok: number;
  errors: number;
  perS: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  statuses: Record<string, number>;
}

/** The value at quantile `q` of ascending `sorted` (nearest rank); 0 when empty. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export class Recorder {
  private readonly kinds = new Map<string, KindSamples>();
  /** The first unexpected outcomes, word for word, to print; all are counted. */
  readonly errorSamples: string[] = [];
  private readonly startedAt = performance.now();

  /** Milliseconds since the recorder was made (the start of the timed load). */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  record(kind: string, sentAtMs: number, latencyMs: number, status: string, error?: string): void {
    let samples = this.kinds.get(kind);
    if (!samples) {
      samples = { latencies: [], sentAt: [], failed: [], statuses: new Map() };
      this.kinds.set(kind, samples);
    }
    samples.latencies.push(latencyMs);
    samples.sentAt.push(sentAtMs);
    samples.failed.push(error !== undefined);
    samples.statuses.set(status, (samples.statuses.get(status) ?? 0) + 1);
    if (error === undefined) return;
    if (this.errorSamples.length < 40) {
      this.errorSamples.push(`${(sentAtMs / 1000).toFixed(1)} s ${kind}: ${error}`);
    }
  }

  /** An error that belongs to no request (a process log line, an end-state check). */
  problem(kind: string, message: string): void {
    this.record(kind, this.elapsedMs(), 0, 'problem', message);
  }

  get errorCount(): number {
    let n = 0;
    for (const s of this.kinds.values()) n += s.failed.filter(Boolean).length;
    return n;
  }

  /** Figures per kind over the whole run, or over requests sent within [fromMs, toMs). */
  figures(durationS: number, window?: { fromMs: number; toMs: number }): KindFigures[] {
    const result: KindFigures[] = [];
    for (const [kind, s] of this.kinds) {
      const inWindow = (i: number) => {
        const at = s.sentAt[i] as number;
        return !window || (at >= window.fromMs && at < window.toMs);
      };
      const picked = s.latencies.filter((_, i) => inWindow(i));
      if (picked.length === 0) continue;
      const errors = s.failed.filter((failed, i) => failed && inWindow(i)).length;
      const sorted = picked.sort((a, b) => a - b);
      const seconds = window ? (window.toMs - window.fromMs) / 1000 : durationS;
      result.push({
        kind,
        requests: sorted.length,
        ok: sorted.length - errors,
        errors,
        perS: sorted.length / seconds,
        p50Ms: quantile(sorted, 0.5),
        p95Ms: quantile(sorted, 0.95),
        p99Ms: quantile(sorted, 0.99),
        maxMs: sorted[sorted.length - 1] as number,
        statuses: Object.fromEntries(s.statuses),
      });
    }
    return result.sort((a, b) => a.kind.localeCompare(b.kind));
  }
}

/** The resident set of a process now, in bytes (VmRSS); 0 when it is gone. */
export function residentBytes(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export interface MemoryFigures {
  role: string;
  startB: number;
  maxB: number;
  endB: number;
  /** Highest sample of the first and of the last window (a minute, or a quarter of a short run). */
  firstWindowMaxB: number;
  lastWindowMaxB: number;
  growthB: number;
}

/** Byte counts of named processes over time (RSS sampled here, heap read from /metrics). */
export class MemorySeries {
  private readonly samples = new Map<string, { atMs: number; bytes: number }[]>();

  add(role: string, atMs: number, bytes: number): void {
    const list = this.samples.get(role) ?? [];
    list.push({ atMs, bytes });
    this.samples.set(role, list);
  }

  /** A process's last sample at or before `atMs`; 0 when none. */
  at(role: string, atMs: number): number {
    const before = (this.samples.get(role) ?? []).filter((s) => s.atMs <= atMs);
    return before[before.length - 1]?.bytes ?? 0;
  }

  /** Per process; the windows are `windowMs` at each end of the series. */
  figures(windowMs: number): MemoryFigures[] {
    return [...this.samples].map(([role, list]) => {
      const lastAt = list[list.length - 1]?.atMs ?? 0;
      const firstAt = list[0]?.atMs ?? 0;
      const maxOf = (picked: { bytes: number }[]) => Math.max(0, ...picked.map((s) => s.bytes));
      const firstWindowMaxB = maxOf(list.filter((s) => s.atMs <= firstAt + windowMs));
      const lastWindowMaxB = maxOf(list.filter((s) => s.atMs >= lastAt - windowMs));
      return {
        role,
        startB: list[0]?.bytes ?? 0,
        maxB: maxOf(list),
        endB: list[list.length - 1]?.bytes ?? 0,
        firstWindowMaxB,
        lastWindowMaxB,
        growthB: lastWindowMaxB - firstWindowMaxB,
      };
    });
  }
}

/** RSS of named processes, sampled every `everyMs` from start() to stop(). */
export class RssSampler {
  readonly series = new MemorySeries();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly clock: () => number,
    private readonly everyMs = 2000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    const atMs = this.clock();
    for (const [role, pid] of Object.entries(this.pids)) {
      const bytes = residentBytes(pid);
      if (bytes > 0) this.series.add(role, atMs, bytes);
    }
  }
}
