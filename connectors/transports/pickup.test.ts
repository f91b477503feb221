import { describe, expect, it } from 'vitest';
import { selectReadyFiles, withStamp } from './pickup.js';
import { pickupSchema } from './pickup.options.js';
import type { InboxFile, PolledTransport } from './transport.js';

/** Just enough of a transport for selection: a fixed listing, in the order given. */
function listingOf(files: InboxFile[]): PolledTransport {
  const refuse = () => Promise.reject(new TypeError('not used by selection'));
  return {
    description: 'memory://inbox',
    list: async () => files,
    stat: async (name) => files.find((f) => f.name === name),
    download: refuse,
    moveTo: refuse,
    remove: refuse,
    writeText: refuse,
    close: async () => undefined,
  };
}

describe('selectReadyFiles', () => {
  it('orders equal mtimes by name, whatever order the listing has', async () => {
    const mtimeMs = Date.UTC(2026, 0, 1);
    const names = ['b.csv', 'c.csv', 'a.csv'];
    const transport = listingOf(names.map((name) => ({ name, sizeBytes: 1, mtimeMs })));

    const selection = await selectReadyFiles(transport, pickupSchema.parse({}), {
      isKnown: async () => false,
    });

    expect(selection.ready.map((f) => f.name)).toEqual(['a.csv', 'b.csv', 'c.csv']);
  });

  it('does not ask the ledger about files beyond the poll limit', async () => {
    const files = [1, 2, 3].map((n) => ({ name: `${n}.csv`, sizeBytes: 1, mtimeMs: n * 1000 }));
    const asked: string[] = [];

    const selection = await selectReadyFiles(
      listingOf(files),
      pickupSchema.parse({ maxFilesPerPoll: 1 }),
      {
        isKnown: async (file) => {
          asked.push(file.name);
          return false;
        },
      },
    );

    expect(selection.ready.map((f) => f.name)).toEqual(['1.csv']);
    expect(asked).toEqual(['1.csv']);
  });
});

describe('withStamp', () => {
  it.each([
    ['export.csv', 'export.20260512T101530123Z.csv'],
    ['export.tar.gz', 'export.tar.20260512T101530123Z.gz'],
    ['EXPORT', 'EXPORT.20260512T101530123Z'],
  ])('puts the stamp before the extension: %s', (name, stamped) => {
    expect(withStamp(name, '20260512T101530123Z')).toBe(stamped);
  });
});
