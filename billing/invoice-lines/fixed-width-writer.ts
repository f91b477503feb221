/**
 * Writes invoice lines as fixed-width records: an optional header, one detail per line, an
 * optional trailer with the count of details and the total amount, each record padded to the
 * same width. Positions count characters, as the intake reader does.
 *
 * Nothing is ever cut silently: a value wider than its field stops the file (unless the field
 * says `truncate`, for text only), because a cut amount or customer ref bills the wrong thing.
 */
import type { Writable } from 'node:stream';
import type { FixedWidthInvoiceLines } from '../../config/invoice-lines-schema.js';
import type { IspInvoiceLine } from '../invoice-line.js';
import { type WriteResult, writeLines } from './output.js';
import {
  compileFileNumber,
  compileFileValue,
  compileLineNumber,
  compileLineValue,
  type FileTotals,
  type Formatting,
  type InvoiceLinesContext,
  kindOf,
  type NumberParts,
  ValueError,
} from './values.js';

type FixedField = FixedWidthInvoiceLines['detail']['fields'][string];
type FileFixedField = NonNullable<FixedWidthInvoiceLines['trailer']>['fields'][string];

interface Slot<T> {
  start: number;
  length: number;
  write: (input: T) => string;
}

function numberSlot<T>(
  field: FixedField | FileFixedField,
  number: (input: T) => NumberParts,
  label: string,
): (input: T) => string {
  const { length, sign } = field;
  const align = field.align ?? 'right';
  const pad = field.pad ?? '0';
  const signed = sign !== 'leading';
  return (input) => {
    const { negative, body } = number(input);
    const mark = negative ? '-' : signed ? '+' : '';
    const width = length - mark.length;
    if (body.length > width) {
      throw new ValueError(
        `${label}: ${mark}${body} needs ${body.length + mark.length} characters, the field has ${length}`,
      );
    }
    const trailing = sign === 'trailing-always';
    if (pad === '0' && align === 'right') {
      return trailing ? body.padStart(width, '0') + mark : mark + body.padStart(width, '0');
    }
    const text = trailing ? body + mark : mark + body;
    return align === 'right' ? text.padStart(length, pad) : text.padEnd(length, pad);
  };
}

function textSlot<T>(
  field: FixedField | FileFixedField,
  text: (input: T) => string,
  label: string,
): (input: T) => string {
  const { length, truncate } = field;
  const right = field.align === 'right';
  const pad = field.pad ?? ' ';
  return (input) => {
    let value = text(input);
    if (value.includes('\n') || value.includes('\r')) {
      throw new ValueError(`${label}: a line break cannot be written in a fixed-width record`);
    }
    if (value.length > length) {
      if (!truncate) {
        throw new ValueError(
          `${label}: the value is ${value.length} characters, the field has ${length}`,
        );
      }
      value = value.slice(0, length);
    }
    return right ? value.padStart(length, pad) : value.padEnd(length, pad);
  };
}

/** One record as a function: slots in position order, gaps and the end filled with spaces. */
function recordWriter<T>(slots: Slot<T>[], width: number): (input: T) => string {
  const ordered = [...slots].sort((a, b) => a.start - b.start);
  const steps: ((input: T) => string)[] = [];
  let next = 1;
  for (const slot of ordered) {
    if (slot.start > next) {
      const gap = ' '.repeat(slot.start - next);
      steps.push(() => gap);
    }
    steps.push(slot.write);
    next = slot.start + slot.length;
  }
  const tail = ' '.repeat(Math.max(0, width - next + 1));
  return (input) => {
    let out = '';
    for (const step of steps) out += step(input);
    return out + tail;
  };
}

function codeSlot<T>(settings: FixedWidthInvoiceLines, code: string | undefined): Slot<T>[] {
  if (!settings.recordType || code === undefined) return [];
  return [{ ...settings.recordType, write: () => code }];
}

function lineSlots(settings: FixedWidthInvoiceLines, fmt: Formatting): Slot<IspInvoiceLine>[] {
  const { detail } = settings;
  const slots = codeSlot<IspInvoiceLine>(settings, detail.code);
  for (const [name, field] of Object.entries(detail.fields)) {
    const label = `billing.invoiceLines.detail.fields.${name}`;
    const kind = kindOf(field, 'line');
    const write =
      kind === 'decimal' || kind === 'integer'
        ? numberSlot(field, compileLineNumber(field, fmt, label), label)
        : textSlot(field, compileLineValue(field, fmt, label), label);
    slots.push({ start: field.start, length: field.length, write });
  }
  return slots;
}

function fileSlots(
  settings: FixedWidthInvoiceLines,
  record: 'header' | 'trailer',
  fmt: Formatting,
): Slot<FileTotals>[] {
  const declared = settings[record];
  if (!declared) return [];
  const slots = codeSlot<FileTotals>(settings, declared.code);
  for (const [name, field] of Object.entries(declared.fields)) {
    const label = `billing.invoiceLines.${record}.fields.${name}`;
    const kind = kindOf(field, 'file');
    const write =
      kind === 'decimal' || kind === 'integer'
        ? numberSlot(field, compileFileNumber(field, fmt, label), label)
        : textSlot(field, compileFileValue(field, fmt, label), label);
    slots.push({ start: field.start, length: field.length, write });
  }
  return slots;
}

export function writeFixedWidthInvoiceLines(
  settings: FixedWidthInvoiceLines,
  lines: AsyncIterable<IspInvoiceLine>,
  out: Writable,
  ctx: InvoiceLinesContext,
): Promise<WriteResult> {
  const fmt: Formatting = { ...ctx, ...settings };
  const eol = settings.lineEnding === 'crlf' ? '\r\n' : '\n';
  const header = fileSlots(settings, 'header', fmt);
  const detail = lineSlots(settings, fmt);
  const trailer = fileSlots(settings, 'trailer', fmt);
  // Every record has the same width: the declared one, else the furthest field end.
  const ends = [...header, ...detail, ...trailer].map((s) => s.start + s.length - 1);
  const width = settings.recordLength ?? Math.max(...ends);
  const writeHeader = recordWriter(header, width);
  const writeDetail = recordWriter(detail, width);
  const writeTrailer = recordWriter(trailer, width);

  return writeLines(lines, out, ctx, settings.encoding, {
    head: settings.header
      ? (sink) => sink.push(writeHeader({ count: 0, total: '0.00' }) + eol)
      : undefined,
    body: (line) => writeDetail(line) + eol,
    tail: settings.trailer ? (totals) => writeTrailer(totals) + eol : undefined,
  });
}
