/**
 * Schema of `isps/<isp-id>.yaml`: everything that makes one ISP different from another, written
 * by an integrator with no code. The ISP id is the file name, so it cannot drift from the file.
 *
 * Transports and formats are plug-ins: their option schemas come from the registries in
 * `connectors/`, so adding a format touches no file here. Sections are added by the capability
 * that needs them (intake, delivery, billing); each owns its defaults so a minimal file stays
 * short.
 */
import cron from 'node-cron';
import { z } from 'zod';
import { formatOptionsSchema } from '../connectors/formats/registry.js';
import { pickupSchema } from '../connectors/transports/pickup.options.js';
import { transportOptionsSchema } from '../connectors/transports/registry.js';
import { billingSchema } from './billing-schema.js';
import { deliverySchema } from './delivery-schema.js';
import { moduleCode, regexSource, timeZone } from './fields.js';
import { ispLicensingSchema } from './licensing-schema.js';

export { isKnownTimeZone, moduleCode, timeZone } from './fields.js';

export const ISP_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}$/;

export const SUBSCRIPTION_STATUSES = ['active', 'suspended', 'cancelled'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

export const DELTA_OPERATIONS = ['subscribe', 'change', 'suspend', 'resume', 'cancel'] as const;
export type DeltaOperation = (typeof DELTA_OPERATIONS)[number];

/** Date formats built from yyyy, MM, dd, HH, mm, ss and literal separators, or `iso`. */
export const dateFormat = z
  .string()
  .regex(
    /^(iso|[yMdHms/.\-: T]+)$/,
    'expected iso or a pattern of yyyy, MM, dd, HH, mm, ss and separators, e.g. dd/MM/yyyy',
  )
  .refine((f) => f === 'iso' || (f.includes('yyyy') && f.includes('MM') && f.includes('dd')), {
    message: 'a date pattern needs yyyy, MM and dd',
  });

/**
 * Where one canonical field comes from and how its raw text is cleaned. Steps run in this
 * order: trim, case, split (lists), map, pattern, date.
 */
function fieldSchema<V extends z.ZodType<string>>(mapValue: V) {
  return z.strictObject({
    from: z
      .union([z.string().min(1), z.int().min(1)])
      .describe(
        'CSV column name (or 1-based position), XML path below the record (Contract/Offer, @id), or fixed-width field name.',
      ),
    required: z
      .boolean()
      .optional()
      .describe('Reject the record when the value is empty or absent.'),
    default: z.string().optional().describe('Value used when the source is empty or absent.'),
    trim: z
      .boolean()
      .default(true)
      .describe('Strip spaces around the value before the other steps.'),
    case: z
      .enum(['upper', 'lower'])
      .optional()
      .describe('Change the letter case before map and pattern, so Actif and ACTIF are one word.'),
    pattern: regexSource.optional().describe('The cleaned value must match (anchor with ^ and $).'),
    map: z
      .record(z.string(), mapValue)
      .optional()
      .describe(
        "Translates the ISP's words; a value not listed rejects the record unless mapDefault is set.",
      ),
    mapDefault: mapValue.optional().describe('Result for values absent from map.'),
  });
}

const textField = fieldSchema(z.string());

export const fieldsSchema = z
  .strictObject({
    customerRef: textField.describe("The ISP's customer number. Required in every record."),
    offer: textField.optional().describe('Offer code, translated to modules by `offers`.'),
    options: fieldSchema(moduleCode)
      .extend({
        split: z
          .string()
          .min(1)
          .optional()
          .describe('Separator of a list in one value, e.g. "+" in "AV+PC".'),
      })
      .optional()
      .describe('Extra modules on top of the offer; map translates each item to a module code.'),
    status: fieldSchema(z.enum(SUBSCRIPTION_STATUSES))
      .optional()
      .describe(
        "Subscription status; map the ISP's words to active, suspended or cancelled. Absent: active.",
      ),
    effectiveDate: textField
      .extend({
        date: dateFormat
          .default('iso')
          .describe(
            'How the date is written: iso, or a pattern such as dd/MM/yyyy; read in the ISP time zone.',
          ),
      })
      .optional()
      .describe(
        'When the change takes effect, carried by its provisioning command. Absent or empty: when the file was received.',
      ),
    operation: fieldSchema(z.enum(DELTA_OPERATIONS))
      .optional()
      .describe(
        'Required in delta mode, ignored in snapshot mode: what the record does (subscribe, change, suspend, resume, cancel).',
      ),
    email: textField
      .optional()
      .describe(
        'Only for activation keys delivered by e-mail, which comes with the subscription server; until then checked, then dropped. Never sent to the subscription server, never logged, never queued.',
      ),
    language: textField.optional().describe('Two-letter language for messages to this customer.'),
  })
  .describe(
    'How each canonical field is read from a record. Map at least one of offer or options, or no record has modules.',
  );

export type FieldSpec = z.output<typeof textField> & { split?: string; date?: string };
export type FieldsSettings = z.output<typeof fieldsSchema>;

export const scheduleSchema = z
  .strictObject({
    cron: z
      .string()
      .min(1)
      .refine(
        (expression) => cron.validate(expression),
        'not a valid cron expression (minute hour day month weekday)',
      )
      .default('*/5 * * * *')
      .describe('When to poll the inbox, as a cron expression (minute hour day month weekday).'),
    timeZone: timeZone
      .optional()
      .describe('Time zone of the cron expression; default the ISP one.'),
  })
  .describe('When a polled inbox (local folder or SFTP) is checked; not used by http pushes.');

export const intakeSchema = z
  .strictObject({
    mode: z
      .enum(['snapshot', 'delta'])
      .default('snapshot')
      .describe('snapshot: each file is the full customer list; delta: each record is a change.'),
    transport: transportOptionsSchema.describe(
      'How files arrive: a polled local folder, a polled SFTP server, or signed HTTPS pushes.',
    ),
    pickup: pickupSchema.prefault({}),
    schedule: scheduleSchema.prefault({}),
    format: formatOptionsSchema.describe('How a file is read: csv, xml or fixed-width.'),
    fields: fieldsSchema,
    rejects: z
      .strictObject({
        refuseFileAbove: z
          .number()
          .min(0)
          .max(1)
          .optional()
          .describe(
            'Share of rejected records (0.05 = 5 %) above which the whole file is refused. Absent: apply the good records whatever the share.',
          ),
      })
      .prefault({})
      .describe('What happens to a file when some of its records are rejected.'),
    safety: z
      .strictObject({
        maxCancelShare: z
          .number()
          .min(0)
          .max(1)
          .default(0.1)
          .describe(
            'A snapshot that would cancel more than this share of the active subscribers is held for approval.',
          ),
      })
      .prefault({})
      .describe('The safety valve against a truncated or mistaken snapshot.'),
  })
  .superRefine((intake, ctx) => {
    if (intake.mode === 'delta' && !intake.fields.operation) {
      ctx.addIssue({
        code: 'custom',
        path: ['fields', 'operation'],
        message: 'delta mode needs an operation field',
      });
    }
    if (!intake.fields.offer && !intake.fields.options) {
      ctx.addIssue({
        code: 'custom',
        path: ['fields'],
        message: 'map at least one of offer or options, or no record has modules',
      });
    }
  })
  .describe('How this ISP sends its customer list or changes, and how to read them.');

export const ispSchema = z
  .strictObject({
    name: z.string().min(1).max(120).describe('Display name of the ISP.'),
    enabled: z
      .boolean()
      .default(true)
      .describe('A disabled ISP keeps its data but is not polled on its schedule.'),
    timeZone: timeZone
      .default('Europe/Paris')
      .describe(
        'IANA time zone of the ISP. Periods are calendar months in this zone; dates without an offset are read in it.',
      ),
    language: z
      .string()
      .regex(/^[a-z]{2}$/, 'expected a two-letter language code such as fr')
      .default('fr')
      .describe("Default language of messages to this ISP's customers (two letters)."),
    intake: intakeSchema,
    offers: z
      .record(z.string().min(1), z.array(moduleCode).min(1))
      .default({})
      .describe('Offer code as the ISP writes it, mapped to the modules it entitles.'),
    licensing: ispLicensingSchema.prefault({}),
    delivery: deliverySchema.prefault({}),
    billing: billingSchema
      .optional()
      .describe('Month-end billing; an ISP without it cannot have a period closed.'),
  })
  .describe('One ISP: how its files arrive, what they mean, how it is billed.');

export type IspConfigInput = z.input<typeof ispSchema>;
export type IspSettings = z.output<typeof ispSchema>;
