import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { retryLockConflicts } from '../../platform/db.js';
import { packageRoot } from '../../platform/package-root.js';
import { useTestContext } from '../../test/harness/context.js';
import { licensingDepsOf } from '../../test/harness/licensing.js';
import type { LicensingDeps } from '../context.js';
import { assignDocumentNumber, findDocument } from './document-numbers.js';
import type { RatedLine } from './rated-line.js';
import { produceVendorDocuments, vendorOutputDir } from './vendor-documents.js';
import { ratedLine, streamOf } from './vendor-fixtures.test-helper.js';

const root = packageRoot();
const shipped = parse(readFileSync(join(root, 'config/isps/demo-fai.yaml'), 'utf8'));
const seller = parse(readFileSync(join(root, 'config/relais.yaml'), 'utf8')).billing;

const ctx = useTestContext({
  deployment: { billing: seller },
  isps: { 'demo-fai': stringify(shipped), 'race-isp': stringify(shipped) },
});

let clock = new Date('2026-12-04T10:00:00Z');
let deps: LicensingDeps;
beforeAll(() => {
  deps = licensingDepsOf(ctx(), { now: () => clock });
});

const lines = (period: string, extra: RatedLine[] = []) => [
  ...Array.from({ length: 5 }, () => ratedLine({ period })),
  ratedLine({ period, module: 'firewall', unitPrice: '0.80', amount: '0.80' }),
  ...extra,
];

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('produceVendorDocuments', () => {
  it('writes the invoice, its summary and the detail file, and reruns byte for byte', async () => {
    const november = lines('2026-11');
    const first = await produceVendorDocuments(deps, {
      ispId: 'demo-fai',
      period: '2026-11',
      readLines: () => streamOf(november),
    });
    expect(first.invoice).toMatchObject({
      number: 'SL-2026-000001',
      issueDate: '2026-12-04',
      lines: 2,
      payable: '8.16', // (6.00 + 0.80) × 1.2
      created: true,
    });
    expect(first.creditNote).toBeUndefined();
    expect(first.dir).toBe(join(vendorOutputDir(deps.config), 'demo-fai', '2026-11'));
    expect(readdirSync(first.dir).sort()).toEqual(['detail.csv', 'invoice.html', 'invoice.xml']);

    const xml = readFileSync(join(first.dir, 'invoice.xml'), 'utf8');
    expect(xml).toContain('<cbc:ID>SL-2026-000001</cbc:ID>');
    expect(xml).toContain('<cbc:DueDate>2027-01-03</cbc:DueDate>');
    expect(xml).toContain('<cbc:StreetName>4 place de la Bourse</cbc:StreetName>');

    const csv = readFileSync(join(first.dir, 'detail.csv'), 'utf8').trimEnd().split('\n');
    expect(csv).toHaveLength(7);
    expect(csv[0]).toMatch(/^document,document_line,line_id,kind,subscriber_id,/);
    expect(csv[1]).toMatch(
      /^SL-2026-000001,1,2026-11\/sub_\d+\/lic_\d+\/antivirus,charge,sub_\d+,/,
    );
    expect(csv.filter((r) => r.startsWith('SL-2026-000001,2,'))).toHaveLength(1);
    const detail = first.files.find((f) => f.name === 'detail.csv');
    expect(detail?.sha256).toBe(sha(join(first.dir, 'detail.csv')));

    const before = Object.fromEntries(
      readdirSync(first.dir).map((f) => [f, sha(join(first.dir, f))]),
    );
    clock = new Date('2026-12-20T10:00:00Z'); // a later rerun must not change the issue date
    const again = await produceVendorDocuments(deps, {
      ispId: 'demo-fai',
      period: '2026-11',
      readLines: () => streamOf(november),
    });
    expect(again.invoice).toMatchObject({ number: 'SL-2026-000001', created: false });
    const after = Object.fromEntries(
      readdirSync(again.dir).map((f) => [f, sha(join(again.dir, f))]),
    );
    expect(after).toEqual(before);
  });

  it('issues a credit note 381 that references the invoice of the adjusted period', async () => {
    clock = new Date('2027-01-04T10:00:00Z');
    const december = lines('2026-12', [
      ratedLine({
        period: '2026-12',
        kind: 'adjustment',
        servicePeriod: '2026-11',
        amount: '-1.20',
      }),
    ]);
    const result = await produceVendorDocuments(deps, {
      ispId: 'demo-fai',
      period: '2026-12',
      readLines: () => streamOf(december),
    });
    // A new year starts a new sequence; the invoice is numbered before the credit note.
    expect(result.invoice?.number).toBe('SL-2027-000001');
    expect(result.creditNote).toMatchObject({ number: 'SL-2027-000002', payable: '1.44' });
    const xml = readFileSync(join(result.dir, 'credit-note.xml'), 'utf8');
    expect(xml).toContain('<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>');
    expect(xml).toMatch(
      /<cac:InvoiceDocumentReference>\s*<cbc:ID>SL-2026-000001<\/cbc:ID>\s*<cbc:IssueDate>2026-12-04<\/cbc:IssueDate>/,
    );
    const csv = readFileSync(join(result.dir, 'detail.csv'), 'utf8');
    expect(csv).toMatch(
      /\nSL-2027-000002,1,2026-12\/adj\/2026-11\/sub_\d+\/lic_\d+\/antivirus,adjustment,/,
    );
    expect(readdirSync(result.dir).sort()).toEqual([
      'credit-note.html',
      'credit-note.xml',
      'detail.csv',
      'invoice.html',
      'invoice.xml',
    ]);
  });

  it('produces no invoice for a period without lines, and says why', async () => {
    const result = await produceVendorDocuments(deps, {
      ispId: 'demo-fai',
      period: '2027-01',
      readLines: () => streamOf([]),
    });
    expect(result.invoice).toBeUndefined();
    expect(result.noInvoiceReason).toMatch(/BR-16/);
    expect(readdirSync(result.dir)).toEqual(['detail.csv']);
    expect(
      await findDocument(deps.db, { ispId: 'demo-fai', period: '2027-01', type: 'invoice' }),
    ).toBeUndefined();
  });

  it("removes the temporary files of a writer killed mid-write, and leaves a live writer's", async () => {
    const dir = join(vendorOutputDir(deps.config), 'demo-fai', '2026-09');
    mkdirSync(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited, so no longer running
    const live = `.invoice.html.${process.ppid}.tmp`; // vitest's main process runs on
    for (const name of [`.invoice.xml.${dead}.tmp`, `.detail.csv.${dead}.tmp`, live]) {
      writeFileSync(join(dir, name), 'half a file');
    }
    await produceVendorDocuments(deps, {
      ispId: 'demo-fai',
      period: '2026-09',
      readLines: () => streamOf([]),
    });
    expect(readdirSync(dir).sort()).toEqual([live, 'detail.csv']);
  });

  it('refuses rated lines that changed after the invoice was issued', async () => {
    await expect(
      produceVendorDocuments(deps, {
        ispId: 'demo-fai',
        period: '2026-11',
        readLines: () => streamOf(lines('2026-11', [ratedLine({ period: '2026-11' })])),
      }),
    ).rejects.toThrow(/issued from other rated lines/);
  });
});

describe('assignDocumentNumber', () => {
  const build =
    (type: 'invoice' | 'credit-note', ispId: string, period: string) =>
    (number: string, issueDate: string) => ({
      model: {
        type,
        number,
        issueDate,
        ispId,
        period,
        invoicePeriod: { start: `${period}-01`, end: `${period}-28` },
        currency: 'EUR',
        seller: seller.seller,
        buyer: seller.seller,
        lines: [],
      },
      payment: { terms: 't' },
    });

  it('gives gapless numbers to racing runs and the same number to a repeat', async () => {
    const db = ctx().licensingDb;
    const periods = ['2030-01', '2030-02', '2030-03', '2030-04', '2030-05', '2030-06'];
    const take = (period: string) =>
      retryLockConflicts(
        () =>
          db.transaction((trx) =>
            assignDocumentNumber(trx, {
              ispId: 'race-isp',
              period,
              type: 'invoice',
              sellerKey: 'race-seller',
              prefix: 'R-',
              issueDate: '2030-07-01',
              build: build('invoice', 'race-isp', period),
              now: new Date(),
            }),
          ),
        { attempts: 10 },
      );
    // Every period twice, all at once: six numbers, each period keeps one.
    const results = await Promise.all([...periods, ...periods].map(take));
    const numbers = new Set(results.map((r) => r.number));
    expect([...numbers].sort()).toEqual([1, 2, 3, 4, 5, 6].map((n) => `R-2030-00000${n}`));
    for (const p of periods) {
      const mine = results.filter((r) => r.document.model.period === p);
      expect(new Set(mine.map((r) => r.number)).size).toBe(1);
      expect(mine.filter((r) => r.created)).toHaveLength(1);
    }
  });

  it('burns no number when the transaction rolls back, and never goes back in time', async () => {
    const db = ctx().licensingDb;
    const req = (period: string, issueDate: string) => ({
      ispId: 'race-isp',
      period,
      type: 'credit-note' as const,
      sellerKey: 'gap-seller',
      prefix: 'G-',
      issueDate,
      build: build('credit-note', 'race-isp', period),
      now: new Date(),
    });
    await expect(
      db.transaction(async (trx) => {
        await assignDocumentNumber(trx, req('2031-01', '2031-02-03'));
        throw new Error('crash after numbering');
      }),
    ).rejects.toThrow('crash after numbering');
    const a = await db.transaction((trx) =>
      assignDocumentNumber(trx, req('2031-02', '2031-03-05')),
    );
    const b = await db.transaction((trx) =>
      assignDocumentNumber(trx, req('2031-03', '2031-03-04')),
    );
    expect(a.number).toBe('G-2031-000001');
    expect(b.number).toBe('G-2031-000002');
    expect(b.issueDate).toBe('2031-03-05');
  });
});
