/**
 * A progress bar for long commands, on stderr and only on a terminal; logs keep their own
 * progress lines for everything else.
 */
import { Presets, SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number, label: string): void;
  stop(): void;
}

export function progressBar(enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar(
    {
      stream: process.stderr,
      format: '{label} [{bar}] {percentage}% | {value}/{total}',
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label) {
      if (!started) {
        bar.start(Math.max(total, 1), 0, { label });
        started = true;
      }
      bar.setTotal(Math.max(total, 1));
      bar.update(done, { label });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
