/**
 * The vendor side of month end for one ISP and period: close the billing period (rate and
 * freeze), then write the vendor's documents from the frozen lines. The documents hang on the
 * close's `afterFreeze` hook, which runs on every call that finds the period closed, so a
 * crash between the freeze and the invoice is repaired by running the close again, and a
 * rerun rewrites byte-identical files.
 */
import type { LicensingDeps } from '../context.js';
import { type CloseOptions, type CloseResult, closeBillingPeriod } from './close.js';
import { readRatedLines } from './lines.js';
import { produceVendorDocuments, type VendorDocumentsResult } from './vendor-documents.js';

export interface MonthEndResult extends CloseResult {
  documents: VendorDocumentsResult;
}

/** The close hook that writes the vendor documents of the period closed. */
export function vendorDocumentsHook(
  deps: LicensingDeps,
  written: (documents: VendorDocumentsResult) => void = () => undefined,
): NonNullable<CloseOptions['afterFreeze']> {
  return async (close) => {
    const documents = await produceVendorDocuments(deps, {
      ispId: close.ispId,
      period: close.period,
      readLines: () => readRatedLines(deps.db, close.ispId, close.period),
    });
    written(documents);
  };
}

export async function closeAndInvoice(
  deps: LicensingDeps,
  ispId: string,
  period: string,
  options: Omit<CloseOptions, 'afterFreeze'> = {},
): Promise<MonthEndResult> {
  let documents: VendorDocumentsResult | undefined;
  const result = await closeBillingPeriod(deps, ispId, period, {
    ...options,
    afterFreeze: vendorDocumentsHook(deps, (d) => {
      documents = d;
    }),
  });
  return { ...result, documents: documents as VendorDocumentsResult };
}
