/**
 * Licensing settings: per ISP (device seats, link lifetime, renewal grace, the credential its
 * connector presents to the subscription server) and per deployment (where the server is, the
 * installers it serves, how hard it throttles guessing). Nothing here is personal.
 */
import { z } from 'zod';
import { secretString } from './fields.js';

export const ispLicensingSchema = z
  .strictObject({
    apiToken: secretString
      .refine((s) => s.length >= 32, 'the API token must be at least 32 characters')
      .optional()
      .describe(
        "Bearer token this ISP's connector presents to the subscription server, as '${VAR}'. Absent: derived from the deployment keys (both sides in one deployment).",
      ),
    deviceLimit: z
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Devices one licence may be active on at a time.'),
    offerDeviceLimits: z
      .record(z.string().min(1), z.int().min(1).max(100))
      .default({})
      .describe('Device limit per offer code, overriding deviceLimit for that offer.'),
    transfersPerMonth: z
      .int()
      .min(0)
      .max(100)
      .default(2)
      .describe('Devices a licence may free per calendar month, so cycling cannot mint seats.'),
    downloadLinkDays: z
      .int()
      .min(1)
      .max(366)
      .default(30)
      .describe('Lifetime of a download link, in days.'),
    graceDays: z
      .int()
      .min(0)
      .max(60)
      .default(7)
      .describe('Days a licence stays valid after the end of the period it is renewed to.'),
  })
  .describe('Licences of this ISP: seats, transfers, download links, renewal grace.');

export type IspLicensingSettings = z.output<typeof ispLicensingSchema>;

export const activationLimitsSchema = z
  .strictObject({
    perAddressPerMinute: z
      .int()
      .min(1)
      .default(120)
      .describe('Activation and check-in requests one client address may make per minute.'),
    perKeyPrefixPerMinute: z
      .int()
      .min(1)
      .default(30)
      .describe('Attempts per minute on keys sharing their first group, whoever sends them.'),
    lockoutAfterFailures: z
      .int()
      .min(1)
      .default(5)
      .describe('Failed attempts from one address before it is locked out.'),
    lockoutBaseS: z
      .int()
      .min(1)
      .default(30)
      .describe('First lockout, in seconds; each further failure doubles it.'),
    lockoutMaxS: z.int().min(1).default(3600).describe('Longest lockout, in seconds.'),
  })
  .describe('Guessing protection of the activation endpoint.');

export const serverSchema = z
  .strictObject({
    url: z
      .url()
      .optional()
      .describe(
        'Base URL of the subscription server the connector provisions; default http.publicUrl (same deployment).',
      ),
    installersDir: z
      .string()
      .optional()
      .describe(
        'Folder of installers, one <module>.<ext> each, served by download links. Default: the shipped dummy installers.',
      ),
    checkInHours: z
      .int()
      .min(1)
      .max(24 * 31)
      .default(24)
      .describe('How often the desktop software is told to check in, in hours.'),
    activation: activationLimitsSchema.prefault({}),
  })
  .describe('The subscription server (vendor side) and how the connector reaches it.');

export type ServerSettings = z.output<typeof serverSchema>;
