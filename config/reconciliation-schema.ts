/**
 * How the ISP's own billing export (what it charged each customer for a period) is found, read
 * and compared with what Relais knows and what the vendor billed. The export is read with the
 * same format plug-ins as the intake (csv, xml, fixed width), so an integrator writes it the
 * same way; where it arrives is a polled transport (a local folder or an SFTP server), by
 * default the ISP's intake inbox with a file-name pattern of its own.
 *
 * Amounts are decimal strings; a YAML number is read through its shortest decimal spelling.
 */
import { z } from 'zod';
import { formatOptionsSchema } from '../connectors/formats/registry.js';
import { localFolderOptionsSchema } from '../connectors/transports/local-folder.options.js';
import { sftpOptionsSchema } from '../connectors/transports/sftp.options.js';
import { moduleCode } from './fields.js';

/**
 * A non-negative decimal with at most 6 decimals, as a string. Written here rather than taken
 * from billing-schema.ts, which imports this file: a cycle would leave it undefined at load.
 */
const decimal = z
  .union([z.string(), z.number().transform((n) => String(n))])
  .pipe(
    z
      .string()
      .regex(/^\d{1,12}(\.\d{1,6})?$/, 'expected a decimal such as 1.50 (point, no sign, no unit)'),
  );

const from = z
  .union([z.string().min(1), z.int().min(1)])
  .describe(
    'CSV column name (or 1-based position), XML path below the record (Invoice/Amount, @ref), or fixed-width field name.',
  );

/** Period layouts: yyyy and MM, optionally dd (a billing date), and separators. */
const periodFormat = z
  .string()
  .regex(/^[yMd/.\- ]+$/, 'expected a pattern of yyyy, MM, dd and separators, e.g. MM/yyyy')
  .refine(
    (f) => (f.match(/yyyy/g) ?? []).length === 1 && (f.match(/MM/g) ?? []).length === 1,
    'a period pattern needs yyyy and MM, once each',
  )
  .refine(
    (f) => f.replace(/yyyy|MM|dd/g, '').replace(/[/.\- ]/g, '') === '',
    'only yyyy, MM, dd and the separators / . - and space are allowed',
  );

export const reconciliationFieldsSchema = z
  .strictObject({
    customerRef: z
      .strictObject({
        from,
        pattern: z
          .string()
          .optional()
          .describe('The trimmed ref must match this regular expression (anchor with ^ and $).'),
      })
      .describe("The ISP's customer number, as in its intake feeds."),
    code: z
      .strictObject({
        from,
        case: z
          .enum(['upper', 'lower'])
          .optional()
          .describe('Change the letter case before looking the code up in `codes`.'),
      })
      .describe('The offer or module code the ISP billed on this line, translated by `codes`.'),
    amount: z
      .strictObject({
        from,
        decimalSeparator: z
          .enum(['.', ','])
          .default('.')
          .describe('Decimal point or decimal comma; a leading minus marks a credit.'),
      })
      .describe('What the ISP charged its customer on this line, in the billing currency.'),
    period: z
      .strictObject({
        from,
        format: periodFormat
          .default('yyyy-MM')
          .describe('How the period is written: yyyy-MM, MM/yyyy, yyyyMM, or a date dd/MM/yyyy.'),
      })
      .optional()
      .describe(
        'The period the line bills; a line of another period is rejected. Absent: not checked.',
      ),
  })
  .describe('Where each value of an export line comes from.');

export const reconciliationSourceSchema = z
  .strictObject({
    transport: z
      .discriminatedUnion('type', [localFolderOptionsSchema, sftpOptionsSchema])
      .optional()
      .describe(
        'Where exports arrive. Absent: the intake transport (its inbox), which must then be local or sftp. A local inbox left out here is <dataDir>/isps/<isp-id>/billing-exports.',
      ),
    pattern: z
      .string()
      .min(1)
      .default('*')
      .describe(
        'Glob of export file names, e.g. facturation_*.csv; the newest match (by modification time, then name) is reconciled when no file is given.',
      ),
  })
  .describe("Where the ISP's billing exports arrive.");

export const reconciliationSchema = z
  .strictObject({
    source: reconciliationSourceSchema.prefault({}),
    format: formatOptionsSchema.describe('How the export is read: csv, xml or fixed-width.'),
    fields: reconciliationFieldsSchema,
    codes: z
      .record(z.string().min(1), z.array(moduleCode).min(1))
      .optional()
      .describe(
        'Code as the export writes it, mapped to the modules it bills. Absent: the ISP offers, plus every module code standing for itself.',
      ),
    amountTolerance: decimal
      .default('0.01')
      .describe(
        'Largest difference between the amount billed and the expected retail amount that still matches.',
      ),
    retailPrices: z
      .record(moduleCode, decimal)
      .optional()
      .describe(
        'What the ISP is expected to charge its customer for one month of each module, written as the export writes amounts (with or without VAT). Amounts are compared only when set.',
      ),
  })
  .describe("How the ISP's billing export is found, read and compared.");

export type ReconciliationSettings = z.output<typeof reconciliationSchema>;
export type ReconciliationFields = z.output<typeof reconciliationFieldsSchema>;
export type ReconciliationSource = z.output<typeof reconciliationSourceSchema>;
