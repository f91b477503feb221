import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assert, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { z } from 'zod';
import { fieldsSchema, ispSchema } from '../config/isp-schema.js';
import { ConfigError } from '../platform/errors.js';
import { packageRoot } from '../platform/package-root.js';
import type { CustomerRecord, MappingReject, MappingResult } from './customer-record.js';
import { createRecordMapper, type RecordMapperSpec } from './record-mapper.js';

type FieldsInput = z.input<typeof fieldsSchema>;
type RowValues = Record<string, string | string[] | undefined>;
type SpecOverrides = Partial<Omit<RecordMapperSpec, 'fields'>>;

/** Frozen like a loaded config: the mapper must copy, never mutate, an offer's modules. */
const OFFERS = Object.freeze({
  SECU_ESSENTIEL: Object.freeze(['antivirus']),
  SECU_FAMILLE: Object.freeze(['parental-control', 'antivirus', 'firewall']),
  SECU_INTEGRAL: Object.freeze(['antivirus', 'firewall', 'parental-control', 'backup']),
});

/** The demo-fai mapping, plus a language column. */
const FIELDS: FieldsInput = {
  customerRef: { from: 'N° client', pattern: '^[0-9]{8}$' },
  offer: { from: 'Offre' },
  options: {
    from: 'Options',
    split: '+',
    map: { SAUV: 'backup', CTRL: 'parental-control', PARE: 'firewall' },
  },
  status: {
    from: 'Statut',
    case: 'upper',
    map: { ACTIF: 'active', SUSPENDU: 'suspended', RÉSILIÉ: 'cancelled' },
  },
  effectiveDate: { from: 'Date effet', date: 'dd/MM/yyyy' },
  email: { from: 'Courriel' },
  language: { from: 'Langue' },
};

const REF = '00012345';
const EMAIL = 'jean.dupont@exemple.fr';
const ROW: RowValues = {
  'N° client': REF,
  Offre: 'SECU_ESSENTIEL',
  Options: '',
  Statut: 'Actif',
  'Date effet': '29/03/2026',
  Courriel: EMAIL,
  Langue: 'fr',
};

const OPERATION_FIELD: FieldsInput['operation'] = {
  from: 'Action',
  map: { A: 'subscribe', M: 'change', S: 'suspend', R: 'resume', C: 'cancel' },
};
const DELTA: SpecOverrides = { mode: 'delta' };

const FAMILY = ['antivirus', 'firewall', 'parental-control'];
const NO_MODULE = 'no module: the record has neither an offer nor an option';
const OFFER_WORDS = '(known: SECU_ESSENTIEL, SECU_FAMILLE, SECU_INTEGRAL)';
const OPTION_WORDS = '(known: SAUV, CTRL, PARE)';
const NOT_BMP =
  'customer ref holds a character outside the basic multilingual plane (such as an emoji)';
const LANGUAGE = 'expected a two-letter lowercase language code such as fr';
const NO_REF = { customerRef: null };
const WITH_REF = { customerRef: REF };
const RAW_REF = { customerRef: { from: 'N° client' } };

function mapperFor(fields: Partial<FieldsInput> = {}, spec: SpecOverrides = {}) {
  return createRecordMapper({
    fields: fieldsSchema.parse({ ...FIELDS, ...fields }),
    offers: OFFERS,
    timeZone: 'Europe/Paris',
    mode: 'snapshot',
    ...spec,
  });
}

/** Maps ROW with `values` on top (undefined removes a column), as line 7 of a file. */
function mapRow(values: RowValues, fields: Partial<FieldsInput> = {}, spec: SpecOverrides = {}) {
  const merged: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries({ ...ROW, ...values })) {
    if (value !== undefined) merged[key] = value;
  }
  const withOperation = spec.mode === 'delta' ? { operation: OPERATION_FIELD, ...fields } : fields;
  return mapperFor(withOperation, spec).map({ line: 7, values: merged });
}

function recordOf(result: MappingResult): CustomerRecord {
  if (!result.ok) assert.fail(`rejected: ${result.reject.reason}`);
  return result.record;
}

function rejectOf(result: MappingResult): MappingReject {
  if (result.ok) assert.fail('expected a reject');
  return result.reject;
}

describe('createRecordMapper', () => {
  it('lists every source the fields read, once, in field order', () => {
    const mapper = mapperFor({ language: { from: 9 }, status: { from: 'Offre' } });
    expect(mapper.wanted).toEqual(['N° client', 'Offre', 'Options', 'Date effet', 'Courriel', 9]);
  });

  it('compiles the shipped demo-fai mapping and maps one of its rows', () => {
    const text = readFileSync(join(packageRoot(), 'config/isps/demo-fai.yaml'), 'utf8');
    const isp = ispSchema.parse(parse(text));
    const mapper = createRecordMapper({
      fields: isp.intake.fields,
      offers: isp.offers,
      timeZone: isp.timeZone,
      mode: isp.intake.mode,
    });
    const values = { ...ROW, Offre: 'SECU_FAMILLE', Options: 'SAUV+PARE', Statut: 'suspendu' };
    expect(
      recordOf(mapper.map({ line: 2, values: values as Record<string, string> })),
    ).toMatchObject({
      customerRef: REF,
      modules: ['antivirus', 'backup', 'firewall', 'parental-control'],
      status: 'suspended',
      effectiveAt: new Date('2026-03-28T23:00:00.000Z'),
    });
  });

  it('wants the operation column in delta mode only', () => {
    const fields = { operation: OPERATION_FIELD };
    expect(mapperFor(fields).wanted).not.toContain('Action');
    expect(mapperFor(fields, DELTA).wanted).toContain('Action');
  });

  it.each<[string, Partial<FieldsInput>, SpecOverrides, string]>([
    ['an unknown time zone', {}, { timeZone: 'Europe/Atlantis' }, 'unknown time zone'],
    ['delta mode without operation', {}, DELTA, 'delta mode needs an operation field'],
    ['neither offer nor options', { offer: undefined, options: undefined }, {}, 'offer or options'],
    [
      'a map key the case step hides',
      { status: { from: 'Statut', case: 'upper', map: { actif: 'active' } } },
      {},
      'intake.fields.status.map key "actif" can never match: values are upper-cased first',
    ],
    [
      'a default its map rejects',
      { status: { from: 'Statut', map: { ACTIF: 'active' }, default: 'EN PAUSE' } },
      {},
      'intake.fields.status.default is refused: unknown status "EN PAUSE" (known: ACTIF)',
    ],
    [
      'a default option its map rejects',
      { options: { from: 'Options', split: '+', map: { SAUV: 'backup' }, default: 'SAUV+XX' } },
      {},
      'intake.fields.options.default is refused: unknown option "XX"',
    ],
    [
      'a default date that is no date',
      { effectiveDate: { from: 'Date effet', date: 'dd/MM/yyyy', default: '31/02/2026' } },
      {},
      'no 31 February 2026',
    ],
    [
      'an unknown date field',
      { effectiveDate: { from: 'Date effet', date: 'dd/MM/yyyyy' } },
      {},
      'unknown field "yyyyy"',
    ],
  ])('refuses %s with a config error', (_title, fields, spec, message) => {
    expect(() => mapperFor(fields, spec)).toThrow(ConfigError);
    expect(() => mapperFor(fields, spec)).toThrow(message);
  });
});

describe('map', () => {
  it('maps a whole row to a canonical record', () => {
    expect(recordOf(mapRow({ Options: 'SAUV' }))).toEqual({
      line: 7,
      customerRef: REF,
      offer: 'SECU_ESSENTIEL',
      modules: ['antivirus', 'backup'],
      status: 'active',
      effectiveAt: new Date('2026-03-28T23:00:00.000Z'),
      operation: null,
      email: EMAIL,
      language: 'fr',
    });
  });

  it.each<[string, Partial<FieldsInput>, RowValues, Partial<CustomerRecord>]>([
    [
      'trims values by default',
      {},
      { 'N° client': `  ${REF}\t`, Offre: ' SECU_ESSENTIEL ' },
      { customerRef: REF, offer: 'SECU_ESSENTIEL' },
    ],
    [
      'upper-cases before the map (case: upper)',
      {},
      { Statut: 'suspendu' },
      { status: 'suspended' },
    ],
    ['upper-cases accented words', {}, { Statut: 'résilié' }, { status: 'cancelled' }],
    [
      'lower-cases (case: lower)',
      { language: { from: 'Langue', case: 'lower' } },
      { Langue: 'FR' },
      { language: 'fr' },
    ],
    [
      'uses the default when the column is absent',
      { status: { ...FIELDS.status, from: 'Statut', default: 'SUSPENDU' } },
      { Statut: undefined },
      { status: 'suspended' },
    ],
    [
      'uses the default when the value is blank',
      { status: { ...FIELDS.status, from: 'Statut', default: 'SUSPENDU' } },
      { Statut: '   ' },
      { status: 'suspended' },
    ],
    [
      'cleans the default like a value (trim, case, map)',
      { status: { ...FIELDS.status, from: 'Statut', default: ' suspendu ' } },
      { Statut: '' },
      { status: 'suspended' },
    ],
    [
      'uses mapDefault for words the map does not list',
      {
        status: {
          from: 'Statut',
          case: 'upper',
          map: { ACTIF: 'active' },
          mapDefault: 'suspended',
        },
      },
      { Statut: 'en attente' },
      { status: 'suspended' },
    ],
    [
      'translates an offer through its map',
      { offer: { from: 'Offre', map: { ESS: 'SECU_ESSENTIEL' } } },
      { Offre: 'ESS' },
      { offer: 'SECU_ESSENTIEL', modules: ['antivirus'] },
    ],
    [
      'matches the pattern on the cleaned value',
      { offer: { from: 'Offre', case: 'upper', pattern: '^SECU_[A-Z]+$' } },
      { Offre: 'secu_famille' },
      { offer: 'SECU_FAMILLE' },
    ],
    ['sorts the modules of an offer', {}, { Offre: 'SECU_FAMILLE' }, { modules: FAMILY }],
    [
      'splits options on "+" and maps each item',
      {},
      { Options: 'SAUV+CTRL' },
      { modules: ['antivirus', 'backup', 'parental-control'] },
    ],
    [
      'drops empty option items and trims each one',
      {},
      { Options: '+ SAUV ++CTRL+' },
      { modules: ['antivirus', 'backup', 'parental-control'] },
    ],
    [
      'reads an XML list of options as items, without splitting them',
      {},
      { Options: ['SAUV', ' CTRL ', ''] },
      { modules: ['antivirus', 'backup', 'parental-control'] },
    ],
    [
      'unions offer and option modules, sorted, without repeats',
      {},
      { Offre: 'SECU_FAMILLE', Options: 'PARE+SAUV+SAUV+CTRL' },
      { modules: ['antivirus', 'backup', 'firewall', 'parental-control'] },
    ],
    [
      'takes items as module codes when options has no map',
      { options: { from: 'Options', split: ',' } },
      { Options: 'firewall, backup' },
      { modules: ['antivirus', 'backup', 'firewall'] },
    ],
    [
      'uses default options when the cell is empty',
      { options: { ...FIELDS.options, from: 'Options', default: 'SAUV+PARE' } },
      { Options: ' + ' },
      { modules: ['antivirus', 'backup', 'firewall'] },
    ],
    [
      'reads a one-item XML list as a single value',
      {},
      { Offre: ['SECU_INTEGRAL'] },
      { offer: 'SECU_INTEGRAL', modules: ['antivirus', 'backup', 'firewall', 'parental-control'] },
    ],
    [
      'leaves the offer null when only options are mapped',
      { offer: undefined },
      { Options: 'SAUV' },
      { offer: null, modules: ['backup'] },
    ],
    ['reads an unmapped status field as active', { status: undefined }, {}, { status: 'active' }],
    ['reads an empty status as active', {}, { Statut: '' }, { status: 'active' }],
    [
      'reads a status written in canonical words when there is no map',
      { status: { from: 'Statut' } },
      { Statut: 'suspended' },
      { status: 'suspended' },
    ],
    [
      'reads a date as local midnight in the ISP zone (spring-forward day)',
      {},
      { 'Date effet': '29/03/2026' },
      { effectiveAt: new Date('2026-03-28T23:00:00.000Z') },
    ],
    [
      'reads a date on the fall-back day',
      {},
      { 'Date effet': '25/10/2026' },
      { effectiveAt: new Date('2026-10-24T22:00:00.000Z') },
    ],
    [
      'reads an ISO date with an offset whatever the zone',
      { effectiveDate: { from: 'Date effet' } },
      { 'Date effet': '2026-03-29T02:30:00+05:30' },
      { effectiveAt: new Date('2026-03-28T21:00:00.000Z') },
    ],
    ['leaves an empty date null', {}, { 'Date effet': ' ' }, { effectiveAt: null }],
    ['leaves an absent e-mail null', {}, { Courriel: undefined }, { email: null }],
    [
      'ignores the operation in snapshot mode',
      { operation: { from: 'Action' } },
      { Action: 'anything' },
      { operation: null },
    ],
  ])('%s', (_title, fields, values, expected) => {
    expect(recordOf(mapRow(values, fields))).toMatchObject(expected);
  });

  it('reads dates in the zone of the ISP', () => {
    const result = mapRow({ 'Date effet': '01/06/2026' }, {}, { timeZone: 'Asia/Kolkata' });
    expect(recordOf(result).effectiveAt).toEqual(new Date('2026-05-31T18:30:00.000Z'));
  });

  it.each<[string, RowValues]>([
    ['subscribe', { Action: 'A' }],
    ['change', { Action: 'm', Offre: 'SECU_FAMILLE' }],
  ])('reads the delta operation %s', (operation, values) => {
    const fields = { operation: { ...OPERATION_FIELD, case: 'upper' as const } };
    expect(recordOf(mapRow(values, fields, DELTA)).operation).toBe(operation);
  });

  it.each<[string, RowValues, SpecOverrides]>([
    ['a cancelled customer in a snapshot', { Statut: 'RÉSILIÉ' }, {}],
    ['a cancel in a delta', { Action: 'C' }, DELTA],
    ['a suspend in a delta', { Action: 'S' }, DELTA],
    ['a resume in a delta', { Action: 'R' }, DELTA],
  ])('accepts no module for %s', (_title, values, spec) => {
    const record = recordOf(mapRow({ Offre: '', Options: '', ...values }, {}, spec));
    expect(record.modules).toEqual([]);
  });

  it.each<[string, string, Partial<FieldsInput>]>([
    [` ${REF}`, `${REF} `, {}],
    ['ab-12', 'AB-12', { customerRef: { from: 'N° client', case: 'upper' } }],
  ])(
    'cleans look-alike refs %j and %j to one ref, for the diff to see',
    (first, second, fields) => {
      const refs = [first, second].map((ref) => recordOf(mapRow({ 'N° client': ref }, fields)));
      expect(refs[0]?.customerRef).toBe(refs[1]?.customerRef);
    },
  );
});

describe('map rejects', () => {
  it.each<[string, RowValues, Partial<FieldsInput>, SpecOverrides, Partial<MappingReject>]>([
    [
      'a missing ref',
      { 'N° client': undefined },
      {},
      {},
      { field: 'customerRef', value: null, reason: 'missing customer ref', ...NO_REF },
    ],
    [
      'a blank ref',
      { 'N° client': '   ' },
      {},
      {},
      { field: 'customerRef', value: null, reason: 'missing customer ref', ...NO_REF },
    ],
    [
      'a ref that its map turns into nothing',
      { 'N° client': '00012345' },
      { customerRef: { from: 'N° client', map: { X: 'Y' }, mapDefault: '' } },
      {},
      { field: 'customerRef', reason: 'missing customer ref', ...NO_REF },
    ],
    [
      'a ref that does not match its pattern',
      { 'N° client': '1234' },
      {},
      {},
      { value: '1234', reason: 'customer ref "1234" does not match ^[0-9]{8}$', ...NO_REF },
    ],
    [
      'a ref longer than 64 characters',
      { 'N° client': 'A'.repeat(65) },
      RAW_REF,
      {},
      { reason: 'customer ref is 65 characters long, at most 64 are allowed', ...NO_REF },
    ],
    [
      'a ref with a control character',
      { 'N° client': 'AB\u0007CD' },
      RAW_REF,
      {},
      { value: 'AB\u0007CD', reason: 'customer ref holds a control character', ...NO_REF },
    ],
    [
      'a ref with a C1 control character',
      { 'N° client': 'AB\u0085CD' },
      RAW_REF,
      {},
      { reason: 'customer ref holds a control character', ...NO_REF },
    ],
    [
      'a ref outside the BMP',
      { 'N° client': 'AB\u{1F600}' },
      RAW_REF,
      {},
      { field: 'customerRef', value: 'AB\u{1F600}', reason: NOT_BMP, ...NO_REF },
    ],
    ['a ref with a lone surrogate', { 'N° client': 'AB\ud800' }, RAW_REF, {}, { reason: NOT_BMP }],
    [
      'a ref ending with a space when trim is off',
      { 'N° client': 'AB12 ' },
      { customerRef: { from: 'N° client', trim: false } },
      {},
      { reason: 'customer ref ends with a space', ...NO_REF },
    ],
    [
      'a ref given as several values',
      { 'N° client': ['A1', 'B2'] },
      {},
      {},
      { value: 'A1, B2', reason: 'expected one value, found 2', ...NO_REF },
    ],
    [
      'an unknown offer',
      { Offre: 'SECU_MAX' },
      {},
      {},
      { field: 'offer', value: 'SECU_MAX', reason: `unknown offer "SECU_MAX" ${OFFER_WORDS}` },
    ],
    [
      'an offer with spaces when trim is off',
      { Offre: ' SECU_ESSENTIEL' },
      { offer: { from: 'Offre', trim: false } },
      {},
      { reason: `unknown offer " SECU_ESSENTIEL" ${OFFER_WORDS}`, ...WITH_REF },
    ],
    [
      'an offer given as three values',
      { Offre: ['SECU_ESSENTIEL', 'SECU_FAMILLE', 'SECU_FAMILLE'] },
      {},
      {},
      { field: 'offer', reason: 'expected one value, found 3', ...WITH_REF },
    ],
    [
      'an empty required offer',
      { Offre: '' },
      { offer: { from: 'Offre', required: true } },
      {},
      { field: 'offer', value: null, reason: 'missing offer', ...WITH_REF },
    ],
    [
      'an offer that does not match its pattern',
      { Offre: 'PROMO' },
      { offer: { from: 'Offre', pattern: '^SECU_' } },
      {},
      { value: 'PROMO', reason: 'offer "PROMO" does not match ^SECU_', ...WITH_REF },
    ],
    [
      'an unknown status word',
      { Statut: 'resilie' },
      {},
      {},
      {
        field: 'status',
        value: 'resilie',
        reason: 'unknown status "RESILIE" (known: ACTIF, SUSPENDU, RÉSILIÉ)',
        ...WITH_REF,
      },
    ],
    [
      'a status outside the canonical words when there is no map',
      { Statut: 'paused' },
      { status: { from: 'Statut' } },
      {},
      { reason: 'unknown status "paused" (known: active, suspended, cancelled)', ...WITH_REF },
    ],
    [
      'an unknown option',
      { Options: 'SAUV+XYZ' },
      {},
      {},
      { field: 'options', value: 'SAUV+XYZ', reason: `unknown option "XYZ" ${OPTION_WORDS}` },
    ],
    [
      'an XML option item holding the separator',
      { Options: ['SAUV+CTRL'] },
      {},
      {},
      { value: 'SAUV+CTRL', reason: `unknown option "SAUV+CTRL" ${OPTION_WORDS}`, ...WITH_REF },
    ],
    [
      'an unmapped option that is not a module code',
      { Options: 'Backup' },
      { options: { from: 'Options', split: ',' } },
      {},
      {
        reason: 'option "Backup" is not a module code (lowercase letters, digits and dashes)',
        ...WITH_REF,
      },
    ],
    [
      'required options with only separators',
      { Options: ' + ' },
      { options: { ...FIELDS.options, from: 'Options', required: true } },
      {},
      { field: 'options', value: ' + ', reason: 'missing option', ...WITH_REF },
    ],
    [
      'an impossible date',
      { 'Date effet': '31/02/2026' },
      {},
      {},
      { field: 'effectiveDate', value: '31/02/2026', reason: 'no 31 February 2026', ...WITH_REF },
    ],
    [
      '29 February outside a leap year',
      { 'Date effet': '29/02/2025' },
      {},
      {},
      { reason: 'no 29 February 2025', ...WITH_REF },
    ],
    [
      'a date in another layout',
      { 'Date effet': '2026-03-29' },
      {},
      {},
      { value: '2026-03-29', reason: 'not a date written dd/MM/yyyy', ...WITH_REF },
    ],
    [
      'an absent required language',
      { Langue: undefined },
      { language: { from: 'Langue', required: true } },
      {},
      { field: 'language', value: null, reason: 'missing language', ...WITH_REF },
    ],
    [
      'a three-letter language',
      { Langue: 'FRA' },
      {},
      {},
      { field: 'language', value: 'FRA', reason: LANGUAGE, ...WITH_REF },
    ],
    ['a capitalised language', { Langue: 'Fr' }, {}, {}, { value: 'Fr', reason: LANGUAGE }],
    [
      'a record without offer or option',
      { Offre: '', Options: '' },
      {},
      {},
      { field: 'offer', value: null, reason: NO_MODULE, ...WITH_REF },
    ],
    [
      'a record without option when only options are mapped',
      { Options: '' },
      { offer: undefined },
      {},
      { field: 'options', value: null, reason: NO_MODULE, ...WITH_REF },
    ],
    [
      'the first field at fault only',
      { Offre: 'SECU_MAX', Statut: 'X', Langue: 'XYZ' },
      {},
      {},
      { field: 'offer', ...WITH_REF },
    ],
    [
      'a delta record without operation',
      { Action: '' },
      {},
      DELTA,
      { field: 'operation', value: null, reason: 'missing operation', ...WITH_REF },
    ],
    [
      'a delta record without the operation column',
      {},
      {},
      DELTA,
      { field: 'operation', value: null, reason: 'missing operation', ...WITH_REF },
    ],
    [
      'an unknown operation word',
      { Action: 'X' },
      {},
      DELTA,
      { value: 'X', reason: 'unknown operation "X" (known: A, M, S, R, C)', ...WITH_REF },
    ],
    [
      'an operation outside the canonical words when there is no map',
      { Action: 'pause' },
      { operation: { from: 'Action' } },
      DELTA,
      {
        reason: 'unknown operation "pause" (known: subscribe, change, suspend, resume, cancel)',
        ...WITH_REF,
      },
    ],
    [
      'a delta subscribe without module',
      { Action: 'A', Offre: '' },
      {},
      DELTA,
      { field: 'offer', reason: NO_MODULE, ...WITH_REF },
    ],
    [
      'a delta change without module',
      { Action: 'M', Offre: '' },
      {},
      DELTA,
      { reason: NO_MODULE, ...WITH_REF },
    ],
  ])('rejects %s', (_title, values, fields, spec, expected) => {
    const reject = rejectOf(mapRow(values, fields, spec));
    expect(reject).toMatchObject({ line: 7, ...expected });
    expect(reject.reason).toMatch(/^[a-z]/);
  });

  it('cuts a long word in a reason but keeps it whole in the value', () => {
    const offer = `X${'Y'.repeat(99)}`;
    const reject = rejectOf(mapRow({ Offre: offer }));
    expect(reject.value).toBe(offer);
    expect(reject.reason).toMatch(/^unknown offer "XY{39}…" \(known: /);
  });

  it.each([
    'jean.dupont@exemple',
    'jean dupont@exemple.fr',
    'jean@@exemple.fr',
    'jean@dupont@exemple.fr',
    '@exemple.fr',
    'jean.dupont@',
    'jean.dupont.exemple.fr',
  ])('rejects the e-mail %j without repeating it', (email) => {
    const result = mapRow({ Courriel: email });
    expect(rejectOf(result)).toEqual({
      line: 7,
      field: 'email',
      value: null,
      reason: 'not an e-mail address',
      customerRef: REF,
    });
    expect(JSON.stringify(result)).not.toContain(JSON.stringify(email).slice(1, -1));
  });

  it.each<[string, Partial<FieldsInput>, string]>([
    ['its pattern', { email: { from: 'Courriel', pattern: '@exemple\\.fr$' } }, 'does not match'],
    [
      'its map',
      { email: { from: 'Courriel', map: { 'contact@exemple.fr': 'contact@exemple.fr' } } },
      'unknown e-mail',
    ],
  ])('keeps a refused e-mail out of a reject made by %s', (_title, fields, reason) => {
    const result = mapRow({ Courriel: 'jean@autre.fr' }, fields);
    const reject = rejectOf(result);
    expect(reject).toMatchObject({ field: 'email', value: null });
    expect(reject.reason).toContain(reason);
    expect(JSON.stringify(result)).not.toMatch(/jean|autre/);
  });
});
