/**
 * Named points where the crash tests kill the process with SIGKILL, the way an operator's
 * `kill -9` or a power cut would: no handler runs, no buffer is flushed. Inert unless
 * RELAIS_CRASH_POINT names the point (`batch-committed:3` kills at the third pass); the tests
 * then restart Relais and check it ends in the state of one clean run.
 *
 * @remarks Only the timing is chosen; the kill itself is real. A timer-based kill from outside
 * cannot hit the narrow windows (between a commit and the next step) that matter most.
 */
const wanted = parse(process.env.RELAIS_CRASH_POINT);
let passes = 0;

function parse(value: string | undefined): { name: string; pass: number } | undefined {
  if (!value) return undefined;
  const [name, pass] = value.split(':');
  return { name: name as string, pass: pass === undefined ? 1 : Number(pass) };
}

export const CRASH_POINTS = [
  'feed-received',
  'feed-read',
  'batch-committed',
  'feed-applied',
  'outbox-added',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export function crashPoint(name: CrashPoint): void {
  if (wanted?.name !== name) return;
  passes++;
  if (passes === wanted.pass) process.kill(process.pid, 'SIGKILL');
}
