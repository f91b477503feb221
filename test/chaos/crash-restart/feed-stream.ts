/**
 * The stream of feeds the crash-and-restart proof plays, the same bytes for the chaos run and
 * the clean run: for each of the three shipped ISPs, one export a "day", seeded. demo-fai and
 * alpha-telecom send whole snapshots (CSV in Windows-1252, namespaced XML with a `.done`
 * marker) where a few customers change offer or status, a few leave and a few join each day;
 * bretagne-net sends the day's changes as fixed-width deltas (SUB, CHG, SUS, REP, RES).
 *
 * A file is dropped the way an ISP should drop it: written under a `.part` name (never picked
 * up), given its fixed modification time, renamed into place, and only then announced by its
 * marker. The fixed times make the pick-up order (oldest first) and the ledger's
 * name-size-mtime identity the same in both runs, whatever the wall clock.
 */
import { renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Customer,
  encode,
  type FixedOperation,
  fixedDetail,
  generateCustomers,
  makeCustomer,
  nextDay,
  renderCsv,
  renderXml,
  seededRandom,
} from '../../generators/isp-exports.js';

export const STREAM_ISPS = ['demo-fai', 'alpha-telecom', 'bretagne-net'] as const;
export type StreamIsp = (typeof STREAM_ISPS)[number];

export interface StreamFile {
  isp: StreamIsp;
  name: string;
  bytes: Buffer;
  /** The done marker written once the file is in place (alpha-telecom). */
  marker?: string;
  /** Day number, 1-based: the order of this ISP's files. */
  day: number;
  /** Modification time given to the file, in ms since the epoch. */
  mtimeMs: number;
}

export interface StreamOptions {
  /** Customers of each ISP on day 1. */
  customers: number;
  /** Files per ISP. */
  days: number;
  /** Share of customers changing each day (snapshots and deltas alike). */
  changedShare: number;
}

/** 1 November 2026, 02:00 UTC: day d's files carry this plus d days (and the ISP's minutes). */
const MTIME_BASE_MS = Date.UTC(2026, 10, 1, 2, 0, 0);
const DAY_MS = 86_400_000;

const pad2 = (n: number) => String(n).padStart(2, '0');

/** The highest customer number in a list (refs are 8-digit numbers from 10,000,001). */
function highestRef(customers: readonly Customer[]): number {
  return customers.reduce((max, c) => Math.max(max, Number(c.ref) - 10_000_000), 0);
}

/** Day after day of whole lists, each derived from the one before. */
function snapshots(seed: number, options: StreamOptions): Customer[][] {
  const days = [[...generateCustomers(options.customers, seed)]];
  for (let d = 2; d <= options.days; d++) {
    const previous = days.at(-1) as Customer[];
    days.push([...nextDay(previous, highestRef(previous), options.changedShare, seed + d)]);
  }
  return days;
}

/** bretagne-net: day 1 subscribes everyone, later days change, suspend, resume, cancel, add. */
function deltaDays(
  seed: number,
  options: StreamOptions,
): { customer: Customer; op: FixedOperation }[][] {
  const random = seededRandom(seed);
  const live = new Map<string, Customer>();
  const first = [...generateCustomers(options.customers, seed)].map(
    (c): Customer => ({ ...c, status: 'active' }),
  );
  for (const c of first) live.set(c.ref, c);
  const days = [first.map((customer) => ({ customer, op: 'SUB' as FixedOperation }))];
  let next = options.customers;
  const offers = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'] as const;
  for (let d = 2; d <= options.days; d++) {
    const lines: { customer: Customer; op: FixedOperation }[] = [];
    for (const c of [...live.values()]) {
      if (random() >= options.changedShare) continue;
      const what = random();
      if (what < 0.1) {
        live.delete(c.ref);
        lines.push({ customer: c, op: 'RES' });
      } else if (what < 0.55) {
        const offer = offers[(offers.indexOf(c.offer) + 1) % offers.length] as Customer['offer'];
        const changed = { ...c, offer };
        live.set(c.ref, changed);
        lines.push({ customer: changed, op: 'CHG' });
      } else {
        const suspend = c.status === 'active';
        const changed = { ...c, status: suspend ? ('suspended' as const) : ('active' as const) };
        live.set(c.ref, changed);
        lines.push({ customer: changed, op: suspend ? 'SUS' : 'REP' });
      }
    }
    const joining = Math.max(1, Math.floor(options.customers * options.changedShare * 0.1));
    for (let i = 1; i <= joining; i++) {
      const customer = { ...makeCustomer(next + i, random), status: 'active' as const };
      live.set(customer.ref, customer);
      lines.push({ customer, op: 'SUB' });
    }
    next += joining;
    days.push(lines);
  }
  return days;
}

function renderDelta(lines: { customer: Customer; op: FixedOperation }[], day: number): string {
  const date = { y: 2026, m: 11, d: day };
  const stamp = `202611${pad2(day)}`;
  const details = lines.map(({ customer, op }) => `${fixedDetail(customer, op, date)}\n`);
  return `H${'BRETAGNE-NET'.padEnd(20)}${stamp}\n${details.join('')}T${String(lines.length).padStart(9, '0')}\n`;
}

/** Every file of the stream, in the order they are dropped: day by day, ISP by ISP. */
export function feedStream(seed: number, options: StreamOptions): StreamFile[] {
  const demo = snapshots(seed + 100, options);
  const alpha = snapshots(seed + 200, options);
  const bretagne = deltaDays(seed + 300, options);
  const files: StreamFile[] = [];
  for (let d = 1; d <= options.days; d++) {
    const mtime = (minutes: number) => MTIME_BASE_MS + (d - 1) * DAY_MS + minutes * 60_000;
    files.push({
      isp: 'demo-fai',
      name: `abonnes_202611${pad2(d)}.csv`,
      bytes: encode(renderCsv(demo[d - 1] as Customer[]), 'windows-1252'),
      day: d,
      mtimeMs: mtime(0),
    });
    const alphaName = `clients-202611${pad2(d)}.xml`;
    files.push({
      isp: 'alpha-telecom',
      name: alphaName,
      bytes: encode(renderXml(alpha[d - 1] as Customer[])),
      marker: `${alphaName}.done`,
      day: d,
      mtimeMs: mtime(5),
    });
    files.push({
      isp: 'bretagne-net',
      name: `MVT202611${pad2(d)}.txt`,
      bytes: encode([renderDelta(bretagne[d - 1] ?? [], d)], 'iso-8859-1'),
      day: d,
      mtimeMs: mtime(10),
    });
  }
  return files;
}

/** Drops `file` into `inbox`: whole, with its fixed mtime, then its marker. */
export function dropFile(inbox: string, file: StreamFile): void {
  const part = join(inbox, `${file.name}.part`);
  writeFileSync(part, file.bytes);
  const at = new Date(file.mtimeMs);
  utimesSync(part, at, at);
  renameSync(part, join(inbox, file.name));
  if (file.marker) {
    const marker = join(inbox, file.marker);
    writeFileSync(marker, '');
    utimesSync(marker, at, at);
  }
}
