/**
 * Pickup semantics shared by every polled transport. A file is picked up only when it is
 * complete: old enough and unchanged between the listing and a second look (`stable`), or
 * announced by a marker file (`done-marker`). Nothing here knows SFTP from a folder; the
 * ledger decides "already processed" through `isKnown`.
 */
import picomatch from 'picomatch';
import { InternalError } from '../../platform/errors.js';
import type { PickupOptions } from './pickup.options.js';
import type { InboxFile, PolledTransport } from './transport.js';

/** Why a candidate was not returned as ready. Only `zero bytes` asks the caller to act. */
export type SkipReason =
  | 'zero bytes'
  | 'already processed'
  | 'too recent'
  | 'still changing'
  | 'no done marker'
  | 'over poll limit';

/** A file passed over this poll, with its listing so the caller can refuse or log it. */
export interface SkippedFile extends InboxFile {
  reason: SkipReason;
}

export interface PickupSelection {
  /** Complete, non-empty, unknown files: oldest mtime first, then by name; at most the limit. */
  ready: InboxFile[];
  skipped: SkippedFile[];
}

export interface SelectContext {
  /** Whether the ledger already holds this name with this size and mtime. */
  isKnown(file: InboxFile): Promise<boolean>;
  /** Current time in ms since the epoch, for the age check; default `Date.now()`. */
  nowMs?: number;
}

export type SettleOutcome = { ok: true } | { ok: false; reason: string };

/** Suffixes of files still being written by someone (including our own temp names). */
const IN_PROGRESS_SUFFIX = /\.(tmp|part|writing)$/;
/** Attempts at a free name in processed/ or failed/ before giving up. */
const MAX_NAME_ATTEMPTS = 100;

function markerSuffix(pickup: PickupOptions): string | undefined {
  return pickup.completeness.type === 'done-marker' ? pickup.completeness.suffix : undefined;
}

/** Candidate names: match the pattern, are not hidden, temporary or a done marker. */
function candidateFilter(pickup: PickupOptions): (name: string) => boolean {
  const matches = picomatch(pickup.pattern, { dot: false });
  const suffix = markerSuffix(pickup);
  return (name) =>
    !name.startsWith('.') &&
    !IN_PROGRESS_SUFFIX.test(name) &&
    !(suffix !== undefined && name.endsWith(suffix)) &&
    matches(name);
}

function byMtimeThenName(a: InboxFile, b: InboxFile): number {
  if (a.mtimeMs !== b.mtimeMs) return a.mtimeMs - b.mtimeMs;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The second look of the `stable` check: same size and mtime as in the listing. */
async function isUnchanged(transport: PolledTransport, file: InboxFile): Promise<boolean> {
  const now = await transport.stat(file.name);
  return now !== undefined && now.sizeBytes === file.sizeBytes && now.mtimeMs === file.mtimeMs;
}

/**
 * Lists the inbox and sorts its candidates into ready and skipped.
 *
 * @remarks Checks run cheapest first: completeness from the listing (age or marker), then the
 * ledger, then (for `stable`) a fresh stat of the file. Candidates beyond `maxFilesPerPoll`
 * are skipped as `over poll limit` without asking the ledger; they come first next poll.
 * Zero-byte files are reported only once complete, so an export still being created is never
 * refused.
 */
export async function selectReadyFiles(
  transport: PolledTransport,
  pickup: PickupOptions,
  context: SelectContext,
): Promise<PickupSelection> {
  const listing = await transport.list();
  const names = new Set(listing.map((f) => f.name));
  const isCandidate = candidateFilter(pickup);
  const nowMs = context.nowMs ?? Date.now();
  const { completeness } = pickup;
  const selection: PickupSelection = { ready: [], skipped: [] };
  const skip = (file: InboxFile, reason: SkipReason) => selection.skipped.push({ ...file, reason });

  for (const file of listing.filter((f) => isCandidate(f.name)).sort(byMtimeThenName)) {
    if (completeness.type === 'done-marker' && !names.has(file.name + completeness.suffix)) {
      skip(file, 'no done marker');
    } else if (
      completeness.type === 'stable' &&
      nowMs - file.mtimeMs < completeness.minAgeS * 1000
    ) {
      skip(file, 'too recent');
    } else if (selection.ready.length >= pickup.maxFilesPerPoll) {
      skip(file, 'over poll limit');
    } else if (await context.isKnown(file)) {
      skip(file, 'already processed');
    } else if (completeness.type === 'stable' && !(await isUnchanged(transport, file))) {
      skip(file, 'still changing');
    } else if (file.sizeBytes === 0) {
      skip(file, 'zero bytes');
    } else {
      selection.ready.push(file);
    }
  }
  return selection;
}

/** `export.csv` + stamp → `export.<stamp>.csv`; a name without extension gets it at the end. */
export function withStamp(name: string, stamp: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}.${stamp}${name.slice(dot)}` : `${name}.${stamp}`;
}

/** `name` if free in `folder`, else the name with a UTC timestamp (and a counter if need be). */
async function freeName(
  transport: PolledTransport,
  folder: string,
  name: string,
  nowMs: number,
): Promise<string> {
  if ((await transport.stat(name, folder)) === undefined) return name;
  const stamp = new Date(nowMs).toISOString().replace(/[-:.]/g, '');
  for (let attempt = 1; attempt <= MAX_NAME_ATTEMPTS; attempt++) {
    const candidate = withStamp(name, attempt === 1 ? stamp : `${stamp}-${attempt}`);
    if ((await transport.stat(candidate, folder)) === undefined) return candidate;
  }
  throw new InternalError('INTERNAL', `no free name for ${name} in ${folder}`, { folder, name });
}

/** Moves a file, and its done marker when there is one, into `folder`; returns the new name. */
async function moveWithMarker(
  transport: PolledTransport,
  pickup: PickupOptions,
  name: string,
  folder: string,
  nowMs: number,
): Promise<string> {
  const target = await freeName(transport, folder, name, nowMs);
  await transport.moveTo(name, folder, target);
  const suffix = markerSuffix(pickup);
  if (suffix !== undefined && (await transport.stat(name + suffix)) !== undefined) {
    await transport.moveTo(name + suffix, folder, target + suffix);
  }
  return target;
}

async function removeWithMarker(
  transport: PolledTransport,
  pickup: PickupOptions,
  name: string,
): Promise<void> {
  await transport.remove(name);
  const suffix = markerSuffix(pickup);
  if (suffix !== undefined) await transport.remove(name + suffix);
}

function errorReport(name: string, reason: string, nowMs: number): string {
  return `file: ${name}\nrefused at: ${new Date(nowMs).toISOString()}\nreason: ${reason}\n`;
}

/**
 * Does what the ISP config says with a file Relais is done with. Success: move into
 * `processedDir`, delete, or leave. Failure: move into `failedDir` with `<name>.error.txt`
 * beside it holding the reason (which the ISP reads: no personal data), or leave. A done
 * marker shares its file's fate. An earlier file of the same name in the target folder is
 * kept: the newcomer gets a timestamp suffix.
 */
export async function settleFile(
  transport: PolledTransport,
  pickup: PickupOptions,
  file: Pick<InboxFile, 'name'>,
  outcome: SettleOutcome,
  nowMs: number = Date.now(),
): Promise<void> {
  if (outcome.ok) {
    if (pickup.afterSuccess === 'delete') await removeWithMarker(transport, pickup, file.name);
    if (pickup.afterSuccess === 'move') {
      await moveWithMarker(transport, pickup, file.name, pickup.processedDir, nowMs);
    }
    return;
  }
  if (pickup.afterFailure === 'leave') return;
  const target = await moveWithMarker(transport, pickup, file.name, pickup.failedDir, nowMs);
  const report = errorReport(file.name, outcome.reason, nowMs);
  await transport.writeText(pickup.failedDir, `${target}.error.txt`, report);
}
