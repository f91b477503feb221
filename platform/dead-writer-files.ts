/**
 * Clean-up after writers killed between writing a temporary file and renaming it into place.
 * Writers that may run side by side name their temporary file after their pid
 * (`.<name>.<pid>.tmp`, or `.<name>.<pid>-<random>.tmp`), so two live writers never share one;
 * but a writer killed mid-write (kill -9, a power cut) leaves its file behind for good, since
 * nothing else would ever remove it. Such a file can hold what the final file holds (activation
 * keys in a return file, an invoice), so the next writer of the folder removes it.
 *
 * @remarks Liveness is this host's: on a folder shared by several hosts a writer running on
 * another host looks dead from here. Losing its temporary file fails its rename, and that run
 * is retried; a half file never takes a final name either way.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** `.<name>.<pid>.tmp` or `.<name>.<pid>-<hex>.tmp`; group 1 is the pid. */
const WRITER_TEMP = /^\..+\.(\d+)(?:-[0-9a-f]+)?\.tmp$/;

/** Whether a process with this pid runs on this host (EPERM: it runs, as another user). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temporary files in `dir` whose writer no longer runs; returns their names. */
export async function removeDeadWritersFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const pid = Number(WRITER_TEMP.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isRunning(pid)) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
