/**
 * CPU time of processes on this host, from /proc, for benches: on a shared machine the CPU
 * seconds a run cost compare better than its wall time.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user + system) a process has used so far; 0 when unreadable. */
export function cpuSeconds(pid: number | string | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The pid of a MariaDB server on this host, to read its CPU time; undefined if none. */
export function mariadbPid(): string | undefined {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm === 'mariadbd' || comm === 'mysqld') return pid;
    } catch {
      // gone between the listing and the read
    }
  }
  return undefined;
}
