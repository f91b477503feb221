/**
 * Where the month-end files of an ISP are delivered: its outbox in a local folder (by default
 * `<workDir>/outbox`) or on its SFTP server. The SFTP connection options are the intake SFTP
 * transport's own fields (host, credentials, pinned host key, timeouts), so an ISP that drops
 * its exports on one server can receive its invoice lines there with the same block.
 *
 * Every file goes up under `<name><tempSuffix>`, is checked, then renamed to its final name;
 * the checksum file and the done marker follow. See docs/billing-outbox.md.
 */
import { z } from 'zod';
import { sftpOptionsSchema } from '../connectors/transports/sftp.options.js';

/** A file-name suffix such as `.part` or `.done`: a dot, then letters, digits, `._-`. */
const suffix = z
  .string()
  .regex(/^\.[A-Za-z0-9._-]{1,31}$/, 'expected a suffix starting with a dot, such as .done');

/** The options every outbox shares, whatever carries the files. */
const commonOptions = {
  tempSuffix: suffix
    .default('.part')
    .describe(
      'Suffix of the temporary name a file is uploaded under before it is renamed into place; pick one the ISP pick-up ignores.',
    ),
  doneMarker: suffix
    .optional()
    .describe(
      'When set, an empty file <name><doneMarker> (e.g. invoice.csv.done) is written once the file and its checksum file are in place.',
    ),
  checksumFile: z
    .boolean()
    .default(false)
    .describe(
      'Write <name>.sha256 beside each file, in the format of sha256sum ("<hex>  <name>"), before the done marker.',
    ),
};

/** The intake SFTP transport's connection fields, without its inbox and download options. */
const {
  type: _type,
  inbox: _inbox,
  fastGet: _fastGet,
  ...sftpConnection
} = sftpOptionsSchema.shape;

export const localOutboxSchema = z
  .strictObject({
    type: z.literal('local'),
    folder: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Outbox folder (often a share the ISP reads); default <dataDir>/isps/<isp-id>/outbox. Relative to the ISP file. A configured folder must exist; the default one is created.',
      ),
    ...commonOptions,
  })
  .describe('A local or mounted folder the ISP collects its files from.');

export const sftpOutboxSchema = z
  .strictObject({
    type: z.literal('sftp'),
    ...sftpConnection,
    folder: z
      .string()
      .regex(/^\//, 'expected an absolute remote path such as /outbox')
      .default('/outbox')
      .describe('Remote outbox folder; it must exist (Relais never creates it).'),
    fastPut: z
      .boolean()
      .default(false)
      .describe(
        'Parallel-chunk upload: faster, but known to corrupt files on some servers, so the uploaded file is always read back and its SHA-256 compared before it is renamed into place.',
      ),
    readBack: z
      .boolean()
      .default(false)
      .describe(
        'Also read back and compare the SHA-256 after a plain (sequential) upload; the size is always checked. fastPut implies it.',
      ),
    ...commonOptions,
  })
  .refine(
    (o) => o.password !== undefined || o.privateKey !== undefined || o.privateKeyFile !== undefined,
    { message: 'one of password, privateKey or privateKeyFile is required' },
  )
  .describe("The ISP's SFTP server, reached with the same options as the intake transport.");

export const billingOutboxSchema = z
  .discriminatedUnion('type', [localOutboxSchema, sftpOutboxSchema])
  .superRefine((outbox, ctx) => {
    const taken = ['.sha256', outbox.doneMarker].filter((s) => s !== undefined);
    if (taken.includes(outbox.tempSuffix)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tempSuffix'],
        message: 'tempSuffix must differ from the done marker and from .sha256',
      });
    }
    if (outbox.doneMarker === '.sha256') {
      ctx.addIssue({
        code: 'custom',
        path: ['doneMarker'],
        message: 'doneMarker .sha256 would collide with the checksum file',
      });
    }
  })
  .describe('Where the invoice-line file is delivered.');

export type BillingOutboxSettings = z.output<typeof billingOutboxSchema>;
export type LocalOutboxSettings = z.output<typeof localOutboxSchema>;
export type SftpOutboxSettings = z.output<typeof sftpOutboxSchema>;
