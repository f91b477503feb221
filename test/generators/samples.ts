/**
 * The sample exports shipped in `config/samples/`, one folder per example ISP, which the demo
 * and docs/integrators.md use. Generated (seeded, so always the same bytes) by
 * `npm run generate`; a test fails when the checked-in files drift from this code.
 */
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

export interface SampleFile {
  /** Path under `config/samples/`. */
  path: string;
  bytes: Buffer;
}

const CUSTOMERS = 40;

/** The demo-fai customer who adds the backup option on the 15th, and the one who leaves. */
export const DEMO_FAI_ADDS_BACKUP = '10000001';
export const DEMO_FAI_CANCELS = '10000004';
/** The alpha-telecom customers missing from its export of the 16th. */
export const ALPHA_LEAVE = ['10000002', '10000003', '10000004'];

/** In the middle of the demo month (docs/demo.md): the day the ISP's next export is dated. */
const MID_MONTH = { y: 2026, m: 12, d: 15 };

/**
 * demo-fai: three nightly snapshots. The second changes a few customers and has one bad row;
 * the third, mid-month, adds the backup option for one customer and cancels another, both
 * dated that day, and corrects the bad row.
 */
function demoFai(): SampleFile[] {
  const day1 = [...generateCustomers(CUSTOMERS, 11)];
  const day2 = [...nextDay(day1, CUSTOMERS, 0.15, 12)];
  const day2Text = [...renderCsv(day2)];
  // An integrator's favourite: a status word the mapping does not know.
  const row = day2Text[3] as string;
  day2Text[3] = row.replace(/;(Actif|Suspendu|Résilié);/, ';En attente;');
  const day15 = day2.map((c): Customer => {
    if (c.ref === DEMO_FAI_ADDS_BACKUP)
      return { ...c, options: [...c.options, 'backup'], since: MID_MONTH };
    if (c.ref === DEMO_FAI_CANCELS) return { ...c, status: 'cancelled', since: MID_MONTH };
    return c;
  });
  return [
    { path: 'demo-fai/abonnes_20261201.csv', bytes: encode(renderCsv(day1), 'windows-1252') },
    { path: 'demo-fai/abonnes_20261202.csv', bytes: encode(day2Text, 'windows-1252') },
    { path: 'demo-fai/abonnes_20261215.csv', bytes: encode(renderCsv(day15), 'windows-1252') },
  ];
}

/**
 * alpha-telecom: a namespaced XML snapshot with its done-marker, then a mid-month one that no
 * longer lists three customers: more than the ISP's 5 % safety valve, so it is held until an
 * operator approves it.
 */
function alphaTelecom(): SampleFile[] {
  const customers = [...generateCustomers(CUSTOMERS, 21)];
  const later = customers.filter((c) => !ALPHA_LEAVE.includes(c.ref));
  return [
    { path: 'alpha-telecom/clients-20261201.xml', bytes: encode(renderXml(customers)) },
    { path: 'alpha-telecom/clients-20261201.xml.done', bytes: Buffer.alloc(0) },
    { path: 'alpha-telecom/clients-20261216.xml', bytes: encode(renderXml(later)) },
    { path: 'alpha-telecom/clients-20261216.xml.done', bytes: Buffer.alloc(0) },
  ];
}

/** bretagne-net: a first delta subscribing everyone, then a delta of changes out of order. */
function bretagneNet(): SampleFile[] {
  const customers = [...generateCustomers(CUSTOMERS / 2, 31)];
  const first = customers.map((customer) => ({ customer, op: 'SUB' as FixedOperation }));
  const at = (d: number) => ({ y: 2026, m: 12, d });
  const pick = (i: number) => customers[i] as Customer;
  const second: { customer: Customer; op: FixedOperation; date: Customer['since'] }[] = [
    // Resume written before the suspension it undoes: applied in effective-date order.
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

export function sampleFiles(): SampleFile[] {
  return [...demoFai(), ...alphaTelecom(), ...bretagneNet()];
}
