/**
 * Produces the vendor's documents for one ISP and closed period: the invoice (UBL 2.1), the
 * credit note when adjustments are negative (UBL 2.1, referencing the invoice it corrects), an
 * HTML summary of each, and the per-subscriber detail CSV, in `<outputDir>/<isp>/<period>/`.
 *
 * Safe to rerun, byte for byte: a document is numbered and frozen (model JSON in
 * billing_documents) the first time, and every later run renders that frozen model, so neither
 * the clock nor a config edit changes a file once issued. Each file is written under a
 * temporary name and renamed into place, so a crash never leaves half a file under the final
 * name; the temporary files of a writer killed mid-write go at the next run. The rated lines
 * are read twice (totals, then the detail file), each time as a stream.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Party } from '../../config/vendor-billing-schema.js';
import { retryLockConflicts } from '../../platform/db.js';
import { removeDeadWritersFiles } from '../../platform/dead-writer-files.js';
import { ConfigError, InternalError } from '../../platform/errors.js';
import type { LicensingDeps } from '../context.js';
import { servedIsp } from '../context.js';
import { writeDetailFile } from './detail-file.js';
import { assignDocumentNumber, findDocument, sellerKeyOf } from './document-numbers.js';
import {
  type AggregatedPeriod,
  addDays,
  aggregateRatedLines,
  documentLines,
  documentTotals,
  groupKeyOf,
  groupKeyString,
  invoicePeriodOf,
  type LineGroup,
  type VendorDocument,
} from './invoice-documents.js';
import { renderInvoiceHtml } from './invoice-html.js';
import type { InvoiceDocument, VatTerms } from './invoice-model.js';
import type { RatedLine } from './rated-line.js';
import { renderUbl } from './ubl.js';

export type VendorDocumentsDeps = Pick<LicensingDeps, 'config' | 'db' | 'log' | 'now'>;

/** The invoice a credit note corrects: number and issue date (BT-25, BT-26). */
export type InvoiceLookup = (
  ispId: string,
  servicePeriod: string,
) => Promise<{ number: string; issueDate: string } | undefined>;

export interface VendorDocumentsRequest {
  ispId: string;
  period: string;
  /** Streams the period's frozen rated lines, in lineId order; called twice. */
  readLines: () => AsyncIterable<RatedLine>;
  /** Default: the invoice numbered for that ISP and service period in billing_documents. */
  findInvoice?: InvoiceLookup;
}

export interface WrittenFile {
  name: string;
  sizeBytes: number;
  sha256?: string;
}

export interface IssuedDocument {
  number: string;
  issueDate: string;
  lines: number;
  payable: string;
  /** False on a rerun: the document was numbered before. */
  created: boolean;
}

export interface VendorDocumentsResult {
  dir: string;
  ratedLines: number;
  invoice?: IssuedDocument;
  creditNote?: IssuedDocument;
  /** Why there is no invoice: EN 16931 needs at least one line (BR-16). */
  noInvoiceReason?: string;
  files: WrittenFile[];
}

/** Where the vendor's documents go: billing.outputDir, else <dataDir>/vendor-invoices. */
export function vendorOutputDir(config: VendorDocumentsDeps['config']): string {
  const { deployment } = config;
  const configured = deployment.billing.outputDir;
  return configured
    ? resolve(dirname(deployment.configFile), configured)
    : join(deployment.paths.dataDir, 'vendor-invoices');
}

export async function produceVendorDocuments(
  deps: VendorDocumentsDeps,
  req: VendorDocumentsRequest,
): Promise<VendorDocumentsResult> {
  const isp = servedIsp(deps, req.ispId);
  const settings = deps.config.deployment.billing;
  const billing = isp.billing;
  if (!billing) {
    throw new ConfigError('CONFIG_INVALID', `ISP ${isp.id} has no billing section`, {
      file: isp.file,
    });
  }
  const seller = settings.seller;
  if (!seller) {
    throw new ConfigError('CONFIG_INVALID', 'billing.seller is missing in relais.yaml', {
      file: deps.config.deployment.configFile,
      path: 'billing.seller',
    });
  }
  const buyer = billing.buyer;
  if (!buyer) {
    throw new ConfigError('CONFIG_INVALID', `billing.buyer is missing for ISP ${isp.id}`, {
      file: isp.file,
      path: 'billing.buyer',
    });
  }
  checkVatIds(billing.vat, seller, buyer, deps.config.deployment.configFile, isp.file);
  const log = deps.log.child({ isp: isp.id, period: req.period });

  const agg = await aggregateRatedLines(req.readLines(), {
    ispId: isp.id,
    period: req.period,
    currency: billing.currency,
  });

  const now = deps.now();
  const today = localDay(now, isp.timeZone);
  const findInvoice = req.findInvoice ?? defaultInvoiceLookup(deps);
  const precedingPeriod = latestServicePeriod(agg.creditNote);
  const preceding = precedingPeriod ? await findInvoice(isp.id, precedingPeriod) : undefined;
  if (precedingPeriod && !preceding) {
    log.warn({ servicePeriod: precedingPeriod }, 'credit note has no invoice to reference');
  }

  const base = {
    ispId: isp.id,
    period: req.period,
    currency: billing.currency,
    seller,
    buyer,
  };
  const sellerKey = sellerKeyOf(seller);
  const numbered = await retryLockConflicts(
    () =>
      deps.db.transaction(async (trx) => {
        const out: {
          invoice?: Awaited<ReturnType<typeof assignDocumentNumber>>;
          creditNote?: Awaited<ReturnType<typeof assignDocumentNumber>>;
        } = {};
        for (const type of ['invoice', 'credit-note'] as const) {
          const groups = type === 'invoice' ? agg.invoice : agg.creditNote;
          if (groups.length === 0) continue;
          const lines = documentLines(groups, billing.vat);
          const result = await assignDocumentNumber(trx, {
            ispId: isp.id,
            period: req.period,
            type,
            sellerKey,
            prefix: settings.invoiceNumberPrefix,
            issueDate: today,
            now,
            build: (number, issueDate): VendorDocument => {
              const model: InvoiceDocument = {
                type,
                number,
                issueDate,
                ...base,
                invoicePeriod: invoicePeriodOf(req.period, lines, type),
                ...(type === 'credit-note' && preceding ? { precedingInvoice: preceding } : {}),
                lines,
              };
              return {
                model,
                payment: {
                  ...(type === 'invoice' ? { dueDate: addDays(issueDate, settings.dueDays) } : {}),
                  terms: settings.paymentTerms,
                  ...(settings.paymentMeans ? { means: settings.paymentMeans } : {}),
                },
              };
            },
          });
          assertSameLines(result.document, lines, type);
          out[type === 'invoice' ? 'invoice' : 'creditNote'] = result;
        }
        return out;
      }),
    { attempts: 5 },
  );

  const dir = join(vendorOutputDir(deps.config), isp.id, req.period);
  await mkdir(dir, { recursive: true });
  await removeDeadWritersFiles(dir);
  const files: WrittenFile[] = [];
  const result: VendorDocumentsResult = { dir, ratedLines: agg.ratedLines, files };
  for (const [type, issued] of [
    ['invoice', numbered.invoice],
    ['credit-note', numbered.creditNote],
  ] as const) {
    if (!issued) continue;
    const doc = issued.document;
    files.push(await writeAtomically(dir, `${type}.xml`, renderUbl(doc)));
    files.push(await writeAtomically(dir, `${type}.html`, renderInvoiceHtml(doc)));
    const summary: IssuedDocument = {
      number: issued.number,
      issueDate: issued.issueDate,
      lines: doc.model.lines.length,
      payable: documentTotals(doc.model).payable,
      created: issued.created,
    };
    if (type === 'invoice') result.invoice = summary;
    else result.creditNote = summary;
  }
  if (!numbered.invoice) result.noInvoiceReason = 'no billable line in the period (BR-16)';

  const targets = detailTargets(agg, numbered.invoice?.number, numbered.creditNote?.number);
  const tmp = join(dir, `.detail.csv.${process.pid}.tmp`);
  try {
    const detail = await writeDetailFile(
      req.readLines(),
      (line) => {
        const target = targets.get(groupKeyOf(line).key);
        if (!target) {
          throw new InternalError('INTERNAL', `rated line ${line.lineId} changed between reads`);
        }
        return target;
      },
      tmp,
    );
    await rename(tmp, join(dir, 'detail.csv'));
    files.push({ name: 'detail.csv', sizeBytes: detail.sizeBytes, sha256: detail.sha256 });
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }

  log.info(
    {
      ratedLines: agg.ratedLines,
      invoice: result.invoice?.number,
      creditNote: result.creditNote?.number,
    },
    'vendor documents written',
  );
  return result;
}

/** Which document line each group of rated lines rolls up into. */
function detailTargets(
  agg: AggregatedPeriod,
  invoiceNumber: string | undefined,
  creditNoteNumber: string | undefined,
): Map<string, { document: string; lineId: string }> {
  const map = new Map<string, { document: string; lineId: string }>();
  const add = (
    groups: LineGroup[],
    number: string | undefined,
    document: LineGroup['document'],
  ) => {
    groups.forEach((g, i) => {
      map.set(groupKeyString(document, g), { document: number ?? '', lineId: String(i + 1) });
    });
  };
  add(agg.invoice, invoiceNumber, 'invoice');
  add(agg.creditNote, creditNoteNumber, 'credit-note');
  return map;
}

/**
 * A frozen document must describe the frozen lines it was built from; if a rerun rebuilds
 * different lines, the rated lines changed after the invoice was issued, which must not happen.
 */
function assertSameLines(
  doc: VendorDocument,
  lines: ReturnType<typeof documentLines>,
  type: string,
): void {
  const key = (l: { name: string; quantity: string; amount: string }[]) =>
    l.map((x) => `${x.name}|${x.quantity}|${x.amount}`).join('\n');
  if (key(doc.model.lines) !== key(lines)) {
    throw new InternalError(
      'INTERNAL',
      `the ${type} ${doc.model.number} was issued from other rated lines than the frozen ones`,
      { number: doc.model.number },
    );
  }
}

function latestServicePeriod(groups: LineGroup[]): string | undefined {
  return groups
    .map((g) => g.servicePeriod)
    .sort()
    .at(-1);
}

function defaultInvoiceLookup(deps: VendorDocumentsDeps): InvoiceLookup {
  return async (ispId, servicePeriod) => {
    const found = await findDocument(deps.db, { ispId, period: servicePeriod, type: 'invoice' });
    return found ? { number: found.number, issueDate: found.issueDate } : undefined;
  };
}

/**
 * EN 16931 wants VAT ids where the category needs them: the seller's for standard rated
 * invoices (BR-S-02), the buyer's and seller's for reverse charge (BR-AE-02, BR-AE-03).
 */
function checkVatIds(
  vat: VatTerms,
  seller: Party,
  buyer: Party,
  deploymentFile: string,
  ispFile: string,
): void {
  if (['S', 'Z', 'E', 'AE', 'K', 'G', 'L', 'M'].includes(vat.category) && !seller.vatId) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `billing.seller.vatId is required for VAT category ${vat.category}`,
      { file: deploymentFile, path: 'billing.seller.vatId' },
    );
  }
  if (['AE', 'K'].includes(vat.category) && !buyer.vatId) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `billing.buyer.vatId is required for VAT category ${vat.category}`,
      { file: ispFile, path: 'billing.buyer.vatId' },
    );
  }
}

/** The calendar day of an instant in a time zone, YYYY-MM-DD. */
export function localDay(instant: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(instant);
}

async function writeAtomically(dir: string, name: string, text: string): Promise<WrittenFile> {
  const bytes = Buffer.from(text, 'utf8');
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, join(dir, name));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { name, sizeBytes: bytes.length };
}
