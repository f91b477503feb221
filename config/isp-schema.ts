/**
 * Schema of `isps/<isp-id>.yaml`: everything that makes one ISP different from another, written
 * by an integrator with no code. The ISP id is the file name, so it cannot drift from the file.
 *
 * Sections are added by the capability that needs them (intake, delivery, billing); each
 * section owns its defaults so that a minimal file stays short.
 */
import { z } from 'zod';

/** An IANA time zone such as Europe/Paris, checked against the runtime's tz database. */
export const timeZone = z.string().refine(isKnownTimeZone, 'unknown IANA time zone');

export function isKnownTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}

/** Module codes are lowercase words with dashes: `antivirus`, `parental-control`. */
export const moduleCode = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'expected a lowercase module code such as parental-control');

export const ISP_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}$/;

const singleChar = z.string().length(1, 'expected a single character');

export const localTransportSchema = z.strictObject({
  type: z.literal('local'),
  inbox: z
    .string()
    .optional()
    .describe('Folder the ISP drops files into; default <dataDir>/isps/<isp-id>/inbox.'),
});

export const transportSchema = z.discriminatedUnion('type', [localTransportSchema]);

export const csvFormatSchema = z.strictObject({
  type: z.literal('csv'),
  delimiter: singleChar.default(','),
  quote: singleChar.default('"'),
  escape: singleChar.default('"'),
  header: z.boolean().default(true).describe('First row names the columns.'),
  encoding: z.enum(['utf-8', 'iso-8859-1', 'windows-1252']).default('utf-8'),
});

export const formatSchema = z.discriminatedUnion('type', [csvFormatSchema]);

export const scheduleSchema = z.strictObject({
  cron: z
    .string()
    .min(1)
    .default('*/5 * * * *')
    .describe('When to poll the inbox, as a cron expression (minute hour day month weekday).'),
  timeZone: timeZone.optional().describe('Time zone of the cron expression; default the ISP one.'),
});

export const intakeSchema = z.strictObject({
  mode: z
    .enum(['snapshot', 'delta'])
    .default('snapshot')
    .describe('snapshot: each file is the full customer list; delta: each record is a change.'),
  transport: transportSchema,
  schedule: scheduleSchema.prefault({}),
  format: formatSchema,
});

export const ispSchema = z
  .strictObject({
    name: z.string().min(1).max(120).describe('Display name of the ISP.'),
    enabled: z.boolean().default(true),
    timeZone: timeZone
      .default('Europe/Paris')
      .describe('Periods are calendar months in this zone.'),
    language: z
      .string()
      .regex(/^[a-z]{2}$/, 'expected a two-letter language code such as fr')
      .default('fr'),
    intake: intakeSchema,
    offers: z
      .record(z.string().min(1), z.array(moduleCode).min(1))
      .describe('Offer code as the ISP writes it, mapped to the modules it entitles.'),
  })
  .describe('One ISP: how its files arrive, what they mean, how it is billed.');

export type IspConfigInput = z.input<typeof ispSchema>;
export type IspSettings = z.output<typeof ispSchema>;
