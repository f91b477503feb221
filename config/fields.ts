/**
 * Schema building blocks shared by every config file and by the plug-ins that declare their
 * own options (formats, transports). Pure zod: importing this file has no side effect.
 */
import { z } from 'zod';

export const port = z.int().min(1).max(65_535);

/**
 * A secret or password. A plain `${VAR}` whose value is all digits arrives as a number (see
 * yaml-source.ts); a secret is a string whatever it looks like.
 */
export const secretString = z.union([z.string(), z.number().transform(String)]);

export const singleChar = z.string().length(1, 'expected a single character');

/** A text encoding Relais can decode as a stream. */
export const encoding = z
  .enum(['utf-8', 'iso-8859-1', 'windows-1252'])
  .describe('Text encoding of the file; utf-8 files may start with a BOM.');

/** A regular expression written in config; refused at config check when it does not compile. */
export const regexSource = z.string().refine((value) => {
  try {
    new RegExp(value, 'u');
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

/** Module codes are lowercase words with dashes: `antivirus`, `parental-control`. */
export const moduleCode = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'expected a lowercase module code such as parental-control');

/** An IANA time zone such as Europe/Paris, checked against the runtime's tz database. */
export const timeZone = z
  .string()
  .refine(isKnownTimeZone, 'unknown IANA time zone')
  .describe('An IANA time zone such as Europe/Paris.');

export function isKnownTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}
