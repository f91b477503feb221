/**
 * The e-mail that carries an activation key: one folder of templates per ISP, three files per
 * language (`<lang>.subject.txt`, `<lang>.txt`, `<lang>.html`). Templates are written by
 * integrators, so every mistake (a missing file, an unknown `{{placeholder}}`, a body without
 * the key) is reported with its file and line by `relais config check`, and again refused when a
 * delivery loads them: a message that reaches a customer without its key cannot be taken back.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { IspConfig } from '../../config/load.js';
import { ConfigError } from '../../platform/errors.js';
import { escapeHtml } from '../../platform/html.js';
import { packageRoot } from '../../platform/package-root.js';

export const TEMPLATE_PLACEHOLDERS = ['key', 'downloadUrl', 'expiresAt', 'ispName'] as const;
export type Placeholder = (typeof TEMPLATE_PLACEHOLDERS)[number];

/** Placeholders a body must use: a message without them is of no use to the customer. */
const REQUIRED_IN_BODY: readonly Placeholder[] = ['key', 'downloadUrl'];

const FALLBACK_LANGUAGE = 'en';
const PART_SUFFIXES = { subject: '.subject.txt', text: '.txt', html: '.html' } as const;
type PartName = keyof typeof PART_SUFFIXES;
const PART_NAMES = Object.keys(PART_SUFFIXES) as PartName[];
const TEMPLATE_FILE = /^([a-z]{2})(\.subject\.txt|\.txt|\.html)$/;

export interface TemplateProblem {
  file: string;
  line: number;
  message: string;
}

type Segment = string | { placeholder: Placeholder };

interface CompiledPart {
  file: string;
  segments: Segment[];
}

/** What a message is made from; `expiresAt` is formatted per language in the ISP time zone. */
export interface MessageValues {
  key: string;
  downloadUrl: string;
  expiresAt: Date | null;
  ispName: string;
}

export interface RenderedMessage {
  language: string;
  subject: string;
  text: string;
  html: string;
}

export interface TemplateSet {
  readonly dir: string;
  readonly languages: readonly string[];
  /** The contact's language when its templates exist, else the ISP's, else English. */
  pickLanguage(contactLanguage: string | null | undefined): string;
  render(contactLanguage: string | null | undefined, values: MessageValues): RenderedMessage;
}

export function defaultTemplatesDir(): string {
  return join(packageRoot(), 'config', 'templates', 'default');
}

/** The ISP's own folder (relative to its config file) or the shipped one. */
export function templatesDirOf(isp: IspConfig): string {
  const own = isp.delivery.email?.templatesDir;
  return own ? resolve(dirname(isp.file), own) : defaultTemplatesDir();
}

/** Every problem of the ISP's e-mail templates; none when the ISP does not deliver by e-mail. */
export function checkTemplates(isp: IspConfig): TemplateProblem[] {
  if (isp.delivery.mode !== 'email') return [];
  return readTemplates(isp).problems;
}

/** @throws ConfigError DELIVERY_TEMPLATE_INVALID naming the first problem's file and line. */
export function loadTemplates(isp: IspConfig): TemplateSet {
  const { set, problems } = readTemplates(isp);
  const first = problems[0];
  if (first) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    throw new ConfigError(
      'DELIVERY_TEMPLATE_INVALID',
      `e-mail templates of ISP ${isp.id} are invalid: ${first.file}:${first.line}: ${first.message}${more}`,
      { ispId: isp.id, problems },
    );
  }
  return set;
}

function readTemplates(isp: IspConfig): { set: TemplateSet; problems: TemplateProblem[] } {
  const dir = templatesDirOf(isp);
  const problems: TemplateProblem[] = [];
  const parts = new Map<string, Record<PartName, CompiledPart>>();
  for (const [language, files] of listLanguages(dir, problems)) {
    const compiled: Partial<Record<PartName, CompiledPart>> = {};
    for (const part of PART_NAMES) {
      const file = files[part];
      if (!file) {
        const present = Object.values(files)[0] as string;
        problems.push({
          file: join(dir, `${language}${PART_SUFFIXES[part]}`),
          line: 1,
          message: `missing template: ${language} has ${basename(present)} but no ${language}${PART_SUFFIXES[part]}`,
        });
        continue;
      }
      compiled[part] = compilePart(file, part, problems);
    }
    if (PART_NAMES.every((p) => compiled[p])) {
      parts.set(language, compiled as Record<PartName, CompiledPart>);
    }
  }
  if (problems.length === 0 && !parts.has(isp.language) && !parts.has(FALLBACK_LANGUAGE)) {
    problems.push({
      file: dir,
      line: 1,
      message: `missing template: no ${isp.language} (the ISP language) nor ${FALLBACK_LANGUAGE} templates in this folder`,
    });
  }
  return { set: templateSet(isp, dir, parts), problems };
}

function listLanguages(
  dir: string,
  problems: TemplateProblem[],
): Map<string, Partial<Record<PartName, string>>> {
  const languages = new Map<string, Partial<Record<PartName, string>>>();
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    problems.push({ file: dir, line: 1, message: 'missing template: folder not found' });
    return languages;
  }
  for (const name of readdirSync(dir).sort()) {
    const match = TEMPLATE_FILE.exec(name);
    if (!match) continue;
    const [, language, suffix] = match as unknown as [string, string, string];
    const part = PART_NAMES.find((p) => PART_SUFFIXES[p] === suffix) as PartName;
    const files = languages.get(language) ?? {};
    files[part] = join(dir, name);
    languages.set(language, files);
  }
  return languages;
}

function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function compilePart(file: string, part: PartName, problems: TemplateProblem[]): CompiledPart {
  let text = readFileSync(file, 'utf8');
  if (part === 'subject') {
    text = text.trim();
    if (text === '') problems.push({ file, line: 1, message: 'the subject is empty' });
    if (text.includes('\n')) {
      problems.push({ file, line: 2, message: 'the subject must be a single line' });
    }
  }
  const segments: Segment[] = [];
  const used = new Set<Placeholder>();
  const pattern = /\{\{([^{}]*)\}\}/g;
  let last = 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    const name = (match[1] as string).trim();
    const between = text.slice(last, match.index);
    segments.push(between);
    checkUnclosed(file, text, last, between, problems);
    if ((TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name)) {
      segments.push({ placeholder: name as Placeholder });
      used.add(name as Placeholder);
    } else {
      problems.push({
        file,
        line: lineAt(text, match.index),
        message: `unknown placeholder {{${name}}} (known: ${TEMPLATE_PLACEHOLDERS.join(', ')})`,
      });
    }
    last = match.index + match[0].length;
  }
  const rest = text.slice(last);
  checkUnclosed(file, text, last, rest, problems);
  segments.push(rest);
  if (part !== 'subject') {
    for (const needed of REQUIRED_IN_BODY) {
      if (!used.has(needed)) {
        problems.push({ file, line: 1, message: `the message never uses {{${needed}}}` });
      }
    }
  }
  return { file, segments };
}

function checkUnclosed(
  file: string,
  text: string,
  offset: number,
  between: string,
  problems: TemplateProblem[],
): void {
  const at = between.indexOf('{{');
  if (at >= 0) {
    problems.push({ file, line: lineAt(text, offset + at), message: '{{ without a closing }}' });
  }
}

function formatExpiry(date: Date | null, language: string, timeZone: string): string {
  if (!date) return '';
  return new Intl.DateTimeFormat(language, {
    dateStyle: 'long',
    timeStyle: 'short',
    timeZone,
  }).format(date);
}

function fill(part: CompiledPart, values: Record<Placeholder, string>, html: boolean): string {
  let out = '';
  for (const segment of part.segments) {
    if (typeof segment === 'string') out += segment;
    else out += html ? escapeHtml(values[segment.placeholder]) : values[segment.placeholder];
  }
  return out;
}

function templateSet(
  isp: IspConfig,
  dir: string,
  parts: Map<string, Record<PartName, CompiledPart>>,
): TemplateSet {
  const pickLanguage = (wanted: string | null | undefined): string => {
    const lower = wanted?.toLowerCase();
    if (lower && parts.has(lower)) return lower;
    return parts.has(isp.language) ? isp.language : FALLBACK_LANGUAGE;
  };
  return {
    dir,
    languages: [...parts.keys()],
    pickLanguage,
    render(contactLanguage, values) {
      const language = pickLanguage(contactLanguage);
      const compiled = parts.get(language) as Record<PartName, CompiledPart>;
      const strings: Record<Placeholder, string> = {
        key: values.key,
        downloadUrl: values.downloadUrl,
        expiresAt: formatExpiry(values.expiresAt, language, isp.timeZone),
        ispName: values.ispName,
      };
      return {
        language,
        subject: fill(compiled.subject, strings, false).replace(/[\r\n]+/g, ' '),
        text: fill(compiled.text, strings, false),
        html: fill(compiled.html, strings, true),
      };
    },
  };
}
