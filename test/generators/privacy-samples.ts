/**
 * The demo month (`relais demo --samples`) with a personal value nobody could write by chance in
 * every personal field: the same story as the shipped samples (`samples.ts`: a bad row, a held
 * snapshot, a mid-month option and cancel, deltas out of order, demo-fai's own billing export
 * with its planted discrepancies), but each customer's ref, first name, last name and e-mail is a
 * probe (`PRVD00001`, `Hélène-Probefirstd001`, `helene.probemaild001@privacy-probe.example`).
 * `test/chaos/privacy-month.chaos.test.ts` plays it and then searches everything on the server
 * side for those values.
 *
 * Customer `i` of the shipped samples (ref `10000000 + i`) becomes probe `i` of the ISP's
 * letter, so the activations of the shipped demo map over one to one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { packageRoot } from '../../platform/package-root.js';
import {
  type Customer,
  encode,
  type FixedOperation,
  generateCustomers,
  nextDay,
  renderCsv,
  renderFixedWidth,
  renderXml,
} from './isp-exports.js';
import { ALPHA_LEAVE, DEMO_FAI_ADDS_BACKUP, DEMO_FAI_CANCELS, type SampleFile } from './samples.js';

/** The letter in every probe value of an ISP. */
export const PROBE_LETTERS = {
  'demo-fai': 'D',
  'alpha-telecom': 'A',
  'bretagne-net': 'B',
} as const;
export type ProbeIsp = keyof typeof PROBE_LETTERS;
type Letter = (typeof PROBE_LETTERS)[ProbeIsp];

/** The refs of the probe ISPs: their configs take this pattern instead of 8 digits. */
export const PROBE_REF_PATTERN = '^PRV[DAB][0-9]{5}$';
export const PROBE_DOMAIN = 'privacy-probe.example';

export interface Probe {
  ref: string;
  firstName: string;
  lastName: string;
  email: string;
}

/** Probe `i` of an ISP: ASCII tokens inside accented names, so a mangled encoding still shows. */
export function probeOf(letter: Letter, i: number): Probe {
  const n = `${letter}${String(i).padStart(3, '0')}`;
  return {
    ref: `PRV${letter}${String(i).padStart(5, '0')}`,
    firstName: `Hélène-Probefirst${n}`,
    lastName: `Lefèvre-Probelast${n}`,
    email: `helene.probemail${n.toLowerCase()}@${PROBE_DOMAIN}`,
  };
}

/**
 * The customer demo-fai bills without ever having sent it (`99999999` in the shipped export,
 * the reconciliation's UNKNOWN_REF): the largest probe number.
 */
export const UNKNOWN_PROBE = 99_999;

/** The number of a shipped sample customer (`10000007` → 7). */
const numberOf = (ref: string) => Number(ref) - 10_000_000;

/** The probe ref standing for a shipped sample ref (`demo-fai`, `10000001` → `PRVD00001`). */
export function probeRef(ispId: ProbeIsp, shippedRef: string): string {
  return probeOf(PROBE_LETTERS[ispId], numberOf(shippedRef)).ref;
}

function probed(letter: Letter) {
  return (c: Customer): Customer => ({ ...c, ...probeOf(letter, numberOf(c.ref)) });
}

const CUSTOMERS = 40;

/**
 * Rows the intake must reject, whose values must not escape through a reject reason: a new
 * demo-fai customer whose e-mail is not an address (in the export of the 2nd), and an
 * alpha-telecom customer whose ref breaks the pattern (in the export of the 1st).
 */
export const BAD_EMAIL_PROBE = 50;
export const BAD_REF = 'PRVA0005X';
const MID_MONTH = { y: 2026, m: 12, d: 15 };

/** The shipped demo-fai story (`samples.ts`), every customer a probe. */
function demoFai(): SampleFile[] {
  const toProbe = probed('D');
  const day1 = [...generateCustomers(CUSTOMERS, 11)];
  const day2 = [...nextDay(day1, CUSTOMERS, 0.15, 12)];
  const badEmail = toProbe({ ...(day1[0] as Customer), ref: String(10_000_000 + BAD_EMAIL_PROBE) });
  const day2Text = [...renderCsv([...day2.map(toProbe), badEmail])].map((line) =>
    line.startsWith(`${badEmail.ref};`) ? line.replace('@', '@@') : line,
  );
  const row = day2Text[3] as string;
  day2Text[3] = row.replace(/;(Actif|Suspendu|Résilié);/, ';En attente;');
  const day15 = day2.map((c): Customer => {
    if (c.ref === DEMO_FAI_ADDS_BACKUP)
      return { ...c, options: [...c.options, 'backup'], since: MID_MONTH };
    if (c.ref === DEMO_FAI_CANCELS) return { ...c, status: 'cancelled', since: MID_MONTH };
    return c;
  });
  return [
    {
      path: 'demo-fai/abonnes_20261201.csv',
      bytes: encode(renderCsv(day1.map(toProbe)), 'windows-1252'),
    },
    { path: 'demo-fai/abonnes_20261202.csv', bytes: encode(day2Text, 'windows-1252') },
    {
      path: 'demo-fai/abonnes_20261215.csv',
      bytes: encode(renderCsv(day15.map(toProbe)), 'windows-1252'),
    },
    { path: 'demo-fai/facturation_202612.csv', bytes: demoFaiBillingExport() },
  ];
}

/**
 * demo-fai's own billing export of December: the shipped file (hand-written, with its planted
 * discrepancies) with the ref, last name and first name of every row made a probe.
 */
function demoFaiBillingExport(): Buffer {
  const shipped = readFileSync(
    join(packageRoot(), 'config/samples/demo-fai/facturation_202612.csv'),
  );
  const lines = iconv.decode(shipped, 'windows-1252').split('\r\n');
  const rows = lines.map((line, i) => {
    const cells = line.split(';');
    if (i === 0 || !/^\d{8}$/.test(cells[0] ?? '')) return line;
    const p = probeOf('D', Math.min(numberOf(cells[0] as string), UNKNOWN_PROBE));
    return [p.ref, p.lastName, p.firstName, ...cells.slice(3)].join(';');
  });
  return iconv.encode(rows.join('\r\n'), 'windows-1252');
}

function alphaTelecom(): SampleFile[] {
  const customers = [...generateCustomers(CUSTOMERS, 21)];
  const later = customers.filter((c) => !ALPHA_LEAVE.includes(c.ref));
  const toProbe = probed('A');
  const badRef = { ...toProbe(customers[4] as Customer), ref: BAD_REF };
  return [
    {
      path: 'alpha-telecom/clients-20261201.xml',
      bytes: encode(renderXml([...customers.map(toProbe), badRef])),
    },
    { path: 'alpha-telecom/clients-20261201.xml.done', bytes: Buffer.alloc(0) },
    { path: 'alpha-telecom/clients-20261216.xml', bytes: encode(renderXml(later.map(toProbe))) },
    { path: 'alpha-telecom/clients-20261216.xml.done', bytes: Buffer.alloc(0) },
  ];
}

function bretagneNet(): SampleFile[] {
  const customers = [...generateCustomers(CUSTOMERS / 2, 31)].map(probed('B'));
  const first = customers.map((customer) => ({ customer, op: 'SUB' as FixedOperation }));
  const at = (d: number) => ({ y: 2026, m: 12, d });
  const pick = (i: number) => customers[i] as Customer;
  const second: { customer: Customer; op: FixedOperation; date: Customer['since'] }[] = [
    { customer: pick(2), op: 'REP', date: at(3) },
    { customer: pick(2), op: 'SUS', date: at(2) },
    { customer: { ...pick(4), offer: 'SECU_INTEGRAL', options: [] }, op: 'CHG', date: at(2) },
    { customer: pick(6), op: 'RES', date: at(2) },
  ];
  return [
    {
      path: 'bretagne-net/MVT20261201.txt',
      bytes: encode(renderFixedWidth(first, '20261201'), 'iso-8859-1'),
    },
    {
      path: 'bretagne-net/MVT20261202.txt',
      bytes: encode(renderFixedWidth(second, '20261202'), 'iso-8859-1'),
    },
  ];
}

/** Every probe sample file, paths under the samples folder (`<isp>/<name>`). */
export function privacySampleFiles(): SampleFile[] {
  return [...demoFai(), ...alphaTelecom(), ...bretagneNet()];
}

/** Every probe of the month: customers 1 to `upTo` of each ISP (joiners included), the unknown one. */
export function everyProbe(upTo = 60): { ispId: ProbeIsp; probe: Probe }[] {
  const all: { ispId: ProbeIsp; probe: Probe }[] = [];
  for (const [ispId, letter] of Object.entries(PROBE_LETTERS) as [ProbeIsp, Letter][]) {
    for (let i = 1; i <= upTo; i++) all.push({ ispId, probe: probeOf(letter, i) });
    all.push({ ispId, probe: probeOf(letter, UNKNOWN_PROBE) });
  }
  return all;
}
