/**
 * The shipped ISPs' invoice-line files, byte for byte: each ISP's real config (through the real
 * loader) writes the same hand-built lines, and the result must equal the checked-in golden
 * file. RELAIS_UPDATE_GOLDEN=1 rewrites the golden files instead; review the diff before
 * committing them.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfigOrThrow } from '../../config/load.js';
import { packageRoot } from '../../platform/package-root.js';
import { invoiceLinesFor, isInvoiceFile, writeInvoiceLines } from './registry.js';
import { GOLDEN_PERIOD, goldenLines, streamOf } from './test-lines.js';

const config = loadConfigOrThrow({ file: join(packageRoot(), 'config/relais.yaml'), env: {} });
const GOLDEN_DIR = join(packageRoot(), 'billing/invoice-lines/golden');
const EXTENSIONS = { csv: 'csv', xml: 'xml', 'fixed-width': 'txt' } as const;

async function render(ispId: string) {
  const isp = config.isps.get(ispId);
  if (!isp) throw new Error(`shipped ISP ${ispId} is missing`);
  const { settings, ctx } = invoiceLinesFor(isp, GOLDEN_PERIOD);
  if (!isInvoiceFile(settings)) throw new Error(`${ispId} does not write a file`);
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const result = await writeInvoiceLines(settings, streamOf(goldenLines(ispId)), out, ctx);
  return { bytes: Buffer.concat(chunks), result, type: settings.type };
}

describe('golden invoice-line files of the shipped ISPs', () => {
  it.each(['demo-fai', 'alpha-telecom', 'bretagne-net'])(
    '%s writes its golden file byte for byte',
    async (ispId) => {
      const { bytes, result, type } = await render(ispId);
      const file = join(GOLDEN_DIR, `${ispId}.${EXTENSIONS[type]}`);
      if (process.env.RELAIS_UPDATE_GOLDEN === '1') writeFileSync(file, bytes);
      const golden = readFileSync(file);
      expect(bytes.toString('latin1')).toBe(golden.toString('latin1'));
      expect(result).toEqual({
        lines: 6,
        charges: 4,
        adjustments: 2,
        totalAmount: '2.24',
        bytes: golden.length,
        sha256: createHash('sha256').update(golden).digest('hex'),
      });
    },
  );

  it.each(['demo-fai', 'alpha-telecom', 'bretagne-net'])(
    '%s writes the same bytes on a second run',
    async (ispId) => {
      const first = await render(ispId);
      const second = await render(ispId);
      expect(second.bytes.equals(first.bytes)).toBe(true);
    },
  );
});
