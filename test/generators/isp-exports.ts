/**
 * Deterministic ISP exports for tests, benchmarks and the shipped samples. A seeded generator
 * makes customers (with personal data, as real exports have: names, e-mails), and renderers
 * write them the way the three example ISPs do: a semicolon CSV in Windows-1252 with French
 * headers (demo-fai), a namespaced XML (alpha-telecom), and a fixed-width delta file with a
 * header and a trailer (bretagne-net). Renderers stream, so a million customers cost no memory.
 */
import iconv from 'iconv-lite';

export interface Customer {
  ref: string;
  firstName: string;
  lastName: string;
  email: string;
  offer: 'SECU_ESSENTIEL' | 'SECU_FAMILLE' | 'SECU_INTEGRAL';
  options: ('backup' | 'parental-control' | 'firewall')[];
  status: 'active' | 'suspended' | 'cancelled';
  since: { y: number; m: number; d: number };
}

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same customers everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const FIRST = [
  'Émilie',
  'Jérôme',
  'François',
  'Zoé',
  'Anaïs',
  'Loïc',
  'Hélène',
  'Gaël',
  'Inès',
  'Benoît',
  'Chloé',
  'Noël',
];
const LAST = [
  'Lefèvre',
  'Mercier',
  'Garçon',
  'Dubœuf',
  'Bérard',
  'Rousseau',
  'Le Gall',
  'Faure',
  'Lemaître',
  'Perrin',
];
const OFFERS = ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_INTEGRAL'] as const;
const OPTIONS = ['backup', 'parental-control', 'firewall'] as const;

function ascii(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/œ/g, 'oe')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}

/** Customer number i (1-based) of a generated list: 8 digits, sortable, never reused. */
export function refOf(i: number): string {
  return String(10_000_000 + i);
}

export function makeCustomer(i: number, random: () => number): Customer {
  const firstName = FIRST[Math.floor(random() * FIRST.length)] as string;
  const lastName = LAST[Math.floor(random() * LAST.length)] as string;
  const roll = random();
  const options = OPTIONS.filter(() => random() < 0.2);
  return {
    ref: refOf(i),
    firstName,
    lastName,
    email: `${ascii(firstName)}.${ascii(lastName)}.${i}@exemple.fr`,
    offer: OFFERS[Math.floor(random() * OFFERS.length)] as Customer['offer'],
    options,
    status: roll < 0.9 ? 'active' : 'suspended',
    since: {
      y: 2025 + Math.floor(random() * 2),
      m: 1 + Math.floor(random() * 12),
      d: 1 + Math.floor(random() * 28),
    },
  };
}

export function* generateCustomers(count: number, seed = 1): Generator<Customer> {
  const random = seededRandom(seed);
  for (let i = 1; i <= count; i++) yield makeCustomer(i, random);
}

/**
 * The next day's list: `changedShare` of the customers change offer or status, a few leave
 * (cancelled by omission) and a few new ones join. Deterministic for a given seed.
 */
export function* nextDay(
  customers: Iterable<Customer>,
  count: number,
  changedShare: number,
  seed = 2,
): Generator<Customer> {
  const random = seededRandom(seed);
  for (const c of customers) {
    if (random() >= changedShare) {
      yield c;
      continue;
    }
    const what = random();
    if (what < 0.1) continue; // left: missing from the snapshot
    if (what < 0.55)
      yield {
        ...c,
        offer: OFFERS[(OFFERS.indexOf(c.offer) + 1) % OFFERS.length] as Customer['offer'],
      };
    else yield { ...c, status: c.status === 'active' ? 'suspended' : 'active' };
  }
  const joining = Math.max(1, Math.floor(count * changedShare * 0.1));
  for (let i = 1; i <= joining; i++) yield makeCustomer(count + i, random);
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** demo-fai: `;`-separated, French headers, Windows-1252, CRLF. */
export const CSV_STATUS = { active: 'Actif', suspended: 'Suspendu', cancelled: 'Résilié' } as const;
const CSV_OPTION = { backup: 'SAUV', 'parental-control': 'CTRL', firewall: 'PARE' } as const;
export const CSV_HEADER = 'N° client;Nom;Prénom;Courriel;Offre;Options;Statut;Date effet';

export function* renderCsv(customers: Iterable<Customer>): Generator<string> {
  yield `${CSV_HEADER}\r\n`;
  for (const c of customers) {
    const options = c.options.map((o) => CSV_OPTION[o]).join('+');
    const since = `${pad2(c.since.d)}/${pad2(c.since.m)}/${c.since.y}`;
    yield `${c.ref};${c.lastName};${c.firstName};${c.email};${c.offer};${options};${CSV_STATUS[c.status]};${since}\r\n`;
  }
}

/** alpha-telecom: namespaced XML, UTF-8, options as repeated elements, ref as an attribute. */
const XML_OPTION = {
  backup: 'BACKUP',
  'parental-control': 'PARENTAL',
  firewall: 'FIREWALL',
} as const;

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

export function* renderXml(customers: Iterable<Customer>): Generator<string> {
  yield '<?xml version="1.0" encoding="UTF-8"?>\n';
  yield '<at:Abonnes xmlns:at="urn:alpha-telecom:abonnes:2" xmlns="urn:alpha-telecom:abonnes:2">\n';
  for (const c of customers) {
    const options = c.options.map((o) => `<Option>${XML_OPTION[o]}</Option>`).join('');
    yield `  <at:Client id="${c.ref}"><Identite><Prenom>${xmlText(c.firstName)}</Prenom><Nom>${xmlText(c.lastName)}</Nom></Identite>`;
    yield `<Contact><Email>${c.email}</Email></Contact><Contrat etat="${c.status}"><Offre>${c.offer}</Offre>`;
    yield `<Options>${options}</Options><Debut>${c.since.y}-${pad2(c.since.m)}-${pad2(c.since.d)}</Debut></Contrat></at:Client>\n`;
  }
  yield '</at:Abonnes>\n';
}

/**
 * bretagne-net: fixed-width delta lines. `H` header with the export date, `D` details
 * (ref 2-11, operation 12-14, date 15-22, offer 23-37, options 38-57, e-mail 58-117), `T`
 * trailer with the detail count (2-10). Every customer is rendered as a subscription (SUB).
 */
const FIXED_OPTION = { backup: 'SAV', 'parental-control': 'CTL', firewall: 'PAR' } as const;
export type FixedOperation = 'SUB' | 'CHG' | 'SUS' | 'REP' | 'RES';

export function fixedDetail(c: Customer, op: FixedOperation, date = c.since): string {
  const d = `${date.y}${pad2(date.m)}${pad2(date.d)}`;
  const options = c.options.map((o) => FIXED_OPTION[o]).join(',');
  return `D${c.ref.padEnd(10)}${op}${d}${c.offer.padEnd(15)}${options.padEnd(20)}${c.email.padEnd(60)}`;
}

export function* renderFixedWidth(
  lines: Iterable<{ customer: Customer; op: FixedOperation; date?: Customer['since'] }>,
  exportDate = '20261201',
): Generator<string> {
  yield `H${'BRETAGNE-NET'.padEnd(20)}${exportDate}\n`;
  let count = 0;
  for (const { customer, op, date } of lines) {
    count++;
    yield `${fixedDetail(customer, op, date)}\n`;
  }
  yield `T${String(count).padStart(9, '0')}\n`;
}

/** Joins rendered text and encodes it; for small files (tests, samples). */
export function encode(
  chunks: Iterable<string>,
  encoding: 'utf-8' | 'windows-1252' | 'iso-8859-1' = 'utf-8',
): Buffer {
  return iconv.encode([...chunks].join(''), encoding);
}
