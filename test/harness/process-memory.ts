/**
 * The peak resident memory of another process, for tests that bound a real relais process's
 * memory while it handles something huge. Linux keeps the peak itself (VmHWM in
 * /proc/<pid>/status); it is read every `intervalMs` so that the last value survives the
 * process's exit.
 */
import { readFileSync } from 'node:fs';

function peakKbOf(pid: number): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined; // gone
  }
}

export interface PeakRssWatch {
  /** The highest peak seen so far, in bytes. */
  peakBytes(): number;
  stop(): number;
}

export function watchPeakRss(pid: number, intervalMs = 100): PeakRssWatch {
  let peakKb = peakKbOf(pid) ?? 0;
  const timer = setInterval(() => {
    peakKb = Math.max(peakKb, peakKbOf(pid) ?? 0);
  }, intervalMs);
  const peakBytes = () => Math.max(peakKb, peakKbOf(pid) ?? 0) * 1024;
  return {
    peakBytes,
    stop() {
      const peak = peakBytes();
      clearInterval(timer);
      return peak;
    },
  };
}
