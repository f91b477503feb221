/**
 * Property tests of the mapping engine on hostile values (issue 7): whatever a format hands it,
 * the mapper never throws, accepts only records that obey every rule of the ISP's fields, and
 * gives every other record a reject with its line, field and reason that never repeats an
 * e-mail. The oracle is test/harness/mapping-oracle.ts, written from the config and the field
 * rules rather than from this engine. Run with the three shipped ISP mappings and with random
 * mappings: a mapping either compiles or is refused with a ConfigError, and then never throws.
 *
 * Fixed seed and run counts for `npm test`; RELAIS_CHAOS_SEED=<n> picks another seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DELTA_OPERATIONS, fieldsSchema, SUBSCRIPTION_STATUSES } from '../config/isp-schema.js';
import { ConfigError } from '../platform/errors.js';
import { type MappingRules, resultViolations } from '../test/harness/mapping-oracle.js';
import { loadShippedIsps, SHIPPED_ISPS } from '../test/harness/shipped-isps.js';
import { createRecordMapper, type MappableRecord, type RecordMapper } from './record-mapper.js';

const SEED = Number(process.env.RELAIS_CHAOS_SEED ?? 7_2026);
const isps = loadShippedIsps();

/** Text a record may hold: the ISP's own words in every case, dates, and hostile strings. */
function wordArb(known: readonly string[]): fc.Arbitrary<string> {
  const variants = known.flatMap((w) => [w, w.toLowerCase(), w.toUpperCase(), ` ${w} `, `${w}x`]);
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...variants) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '\t',
        '10000001',
        '1000000',
        '10000001 ',
        '１０００００００',
        '1000000\u0000',
        '1000000\u0085',
        '😀0000000',
        '\ud83d',
        '0'.repeat(65),
        'a@b.fr',
        'a@b',
        'a @b.fr',
        'fr',
        'FR',
        '01/02/2026',
        '31/02/2026',
        '29/02/2027',
        '2026-03-29',
        '2026-03-29T02:30:00',
        '2026-13-01',
        '20260229',
        '20261201',
        '99999999',
        'SAUV+CTRL',
        'SAUV++',
        '+',
        'SAV,CTL,',
        ',',
        'Ré\uFFFDsilié',
        'x'.repeat(300),
      ),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  );
}

/**
 * A source record: each wanted source holds a value its rules accept (when `valid` knows one),
 * or is absent, a hostile word, or (as repeated XML) several words.
 */
function sourceArb(
  mapper: RecordMapper,
  known: readonly string[],
  valid: ReadonlyMap<string, string> = new Map(),
): fc.Arbitrary<MappableRecord> {
  const word = wordArb(known);
  const hostile = fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: word },
    { weight: 1, arbitrary: fc.array(word, { maxLength: 3 }) },
  );
  const sourceValue = (key: string) => {
    const good = valid.get(key);
    if (good === undefined) return hostile;
    return fc.oneof({ weight: 4, arbitrary: fc.constant(good) }, { weight: 1, arbitrary: hostile });
  };
  const entries = mapper.wanted.map((source) =>
    fc.tuple(fc.constant(String(source)), sourceValue(String(source))),
  );
  return fc.record({
    line: fc.integer({ min: 1, max: 1_000_000 }),
    values: fc.tuple(...entries).map((pairs) => {
      const values: Record<string, string | string[]> = {};
      for (const [key, v] of pairs) if (v !== undefined) values[key] = v;
      return values;
    }),
  });
}

/** Every word an ISP config names: offer codes and the keys and results of its maps. */
function wordsOf(fields: MappingRules['fields'], offers: MappingRules['offers']): string[] {
  const words = new Set<string>(Object.keys(offers));
  for (const spec of Object.values(fields)) {
    if (spec === undefined || spec.map === undefined) continue;
    for (const [key, result] of Object.entries(spec.map)) words.add(key).add(result);
  }
  return [...words];
}

/** Dates the shipped ISPs write, in each of their date patterns. */
const VALID_DATES: Readonly<Record<string, string>> = {
  iso: '2026-03-01',
  'dd/MM/yyyy': '01/03/2026',
  yyyyMMdd: '20260301',
};

/** A value each field of a shipped ISP accepts, by source key: the start of most records. */
function validValues(rules: MappingRules): Map<string, string> {
  const { fields, offers } = rules;
  const valid = new Map<string, string>();
  const set = (spec: { from: string | number } | undefined, value: string | undefined) => {
    if (spec !== undefined && value !== undefined) valid.set(String(spec.from), value);
  };
  const firstKey = (spec: { map?: Record<string, string> } | undefined) =>
    spec?.map === undefined ? undefined : Object.keys(spec.map)[0];
  set(fields.customerRef, '10000001');
  set(fields.offer, Object.keys(offers)[0]);
  const options = Object.keys(fields.options?.map ?? {});
  const split = fields.options?.split;
  set(fields.options, split === undefined ? options[0] : options.slice(0, 2).join(split));
  set(fields.status, firstKey(fields.status));
  set(fields.operation, firstKey(fields.operation));
  set(fields.effectiveDate, VALID_DATES[fields.effectiveDate?.date ?? 'iso']);
  set(fields.email, 'zoe.lefevre.1@exemple.fr');
  set(fields.language, 'fr');
  return valid;
}

/** Maps `source` and returns what is wrong with the result; a throw is a crash. */
function mapViolations(
  rules: MappingRules,
  mapper: RecordMapper,
  source: MappableRecord,
): string[] {
  return resultViolations(rules, mapper.map(source), source);
}

describe.each(SHIPPED_ISPS)('the mapping of %s, on hostile values', (id) => {
  const isp = isps[id];
  const rules: MappingRules = {
    fields: isp.intake.fields,
    offers: isp.offers,
    mode: isp.intake.mode,
  };
  const mapper = createRecordMapper({ ...rules, timeZone: isp.timeZone });
  const known = wordsOf(rules.fields, rules.offers);
  const valid = validValues(rules);

  it('never throws; accepts only records that obey its rules; rejects with line, field and reason', () => {
    let accepted = 0;
    fc.assert(
      fc.property(sourceArb(mapper, known, valid), (source) => {
        expect(mapViolations(rules, mapper, source)).toEqual([]);
        if (mapper.map(source).ok) accepted++;
      }),
      { numRuns: 1_000, seed: SEED },
    );
    // Hostile values must not all be rejected, or the accepting side goes unchecked.
    expect(accepted).toBeGreaterThan(20);
  });
});

// Random mappings

const SOURCES = ['a', 'b', 'c', 'd', 'e'];
const WORDS = ['A', 'a', 'B', 'x y', ' ', '', 'ACTIF', 'actif', 'RÉSILIÉ', 'AV', 'PC', '1', '01'];
const MODULES = ['antivirus', 'backup', 'firewall', 'parental-control', 'vpn'];

/** Mostly absent: a mapping with every knob set on every field rarely compiles. */
function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
}

/** A field's settings, with `results` the words its map may give. */
function specArb<V extends string>(
  results: fc.Arbitrary<V>,
  extra: Record<string, fc.Arbitrary<unknown>> = {},
) {
  const word = fc.oneof(fc.constantFrom(...WORDS), fc.string({ maxLength: 4 }));
  const knobs: Record<string, fc.Arbitrary<unknown>> = {
    from: fc.oneof(fc.constantFrom(...SOURCES), fc.integer({ min: 1, max: 3 })),
    required: sometimes(fc.boolean()),
    default: sometimes(word),
    trim: sometimes(fc.boolean()),
    case: sometimes(fc.constantFrom('upper', 'lower')),
    pattern: sometimes(
      fc.constantFrom('^[0-9]+$', '^[A-Z]', '.', '^(a|b)$', '^\\p{L}+$', '(', '^.{0,3}$'),
    ),
    map: sometimes(fc.dictionary(word, results, { maxKeys: 4 })),
    mapDefault: sometimes(results),
  };
  for (const [key, arb] of Object.entries(extra)) knobs[key] = sometimes(arb);
  return fc
    .record(knobs)
    .map((spec) =>
      Object.fromEntries(Object.entries(spec).filter(([, value]) => value !== undefined)),
    );
}

const fieldsArb = fc.record(
  {
    customerRef: specArb(fc.string({ maxLength: 6 })),
    offer: specArb(fc.constantFrom(...WORDS)),
    options: specArb(fc.oneof(fc.constantFrom(...MODULES), fc.constantFrom('Bad', '', 'a b')), {
      split: fc.constantFrom('+', ',', ' '),
    }),
    status: specArb(fc.constantFrom(...SUBSCRIPTION_STATUSES)),
    effectiveDate: specArb(fc.string(), {
      date: fc.constantFrom('iso', 'dd/MM/yyyy', 'yyyyMMdd', 'yyyy-MM-dd HH:mm'),
    }),
    operation: specArb(fc.constantFrom(...DELTA_OPERATIONS)),
    email: specArb(fc.string({ maxLength: 6 })),
    language: specArb(fc.constantFrom('fr', 'en', 'FR', 'xyz')),
  },
  { requiredKeys: ['customerRef'] },
);

const mappingArb = fc.record({
  fields: fieldsArb,
  offers: fc.dictionary(
    fc.constantFrom(...WORDS),
    fc.array(fc.constantFrom(...MODULES), { minLength: 1, maxLength: 3 }),
    { maxKeys: 4 },
  ),
  mode: fc.constantFrom('snapshot' as const, 'delta' as const),
  timeZone: fc.constantFrom(
    'Europe/Paris',
    'UTC',
    'Pacific/Chatham',
    'Europe/Paris',
    'Mars/Olympus',
  ),
});

describe('a random mapping', () => {
  it('compiles or is refused with a ConfigError; compiled, it behaves on hostile values', () => {
    let compiled = 0;
    fc.assert(
      fc.property(mappingArb, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (raw, picks) => {
        const parsed = fieldsSchema.safeParse(raw.fields);
        fc.pre(parsed.success);
        if (!parsed.success) return;
        const rules: MappingRules = { fields: parsed.data, offers: raw.offers, mode: raw.mode };
        let mapper: RecordMapper;
        try {
          mapper = createRecordMapper({ ...rules, timeZone: raw.timeZone });
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          return;
        }
        compiled++;
        const sources = fc.sample(sourceArb(mapper, [...WORDS, ...Object.keys(raw.offers)]), {
          numRuns: picks.length,
          seed: picks[0] as number,
        });
        for (const source of sources) expect(mapViolations(rules, mapper, source)).toEqual([]);
      }),
      { numRuns: 400, seed: SEED + 1 },
    );
    expect(compiled).toBeGreaterThan(50);
  });
});
