import { z } from 'zod';

export const completenessSchema = z.discriminatedUnion('type', [
  z
    .strictObject({
      type: z.literal('stable'),
      minAgeS: z
        .int()
        .min(0)
        .default(10)
        .describe(
          'A file is complete once unchanged (size and mtime) for at least this many seconds.',
        ),
    })
    .describe('Wait until the file has stopped changing.'),
  z
    .strictObject({
      type: z.literal('done-marker'),
      suffix: z
        .string()
        .min(1)
        .default('.done')
        .describe(
          'A file is complete once <name><suffix> exists; the marker is removed with the file.',
        ),
    })
    .describe('Wait for the ISP to write a marker file after the data file.'),
]);

export const pickupSchema = z
  .strictObject({
    pattern: z
      .string()
      .min(1)
      .default('*')
      .describe('Glob of file names to pick up, e.g. export_*.csv (case-sensitive).'),
    completeness: completenessSchema
      .prefault({ type: 'stable' })
      .describe('When a file in the inbox counts as completely written.'),
    maxFilesPerPoll: z
      .int()
      .min(1)
      .max(1_000)
      .default(10)
      .describe('Most files taken in one poll, oldest first; the others wait for the next poll.'),
    afterSuccess: z
      .enum(['move', 'delete', 'leave'])
      .default('move')
      .describe(
        'What to do with a processed file: move into processedDir, delete it, or leave it.',
      ),
    afterFailure: z
      .enum(['move', 'leave'])
      .default('move')
      .describe(
        'What to do with a refused file: move into failedDir with <name>.error.txt beside it, or leave it.',
      ),
    processedDir: z.string().min(1).default('processed').describe('Subfolder of the inbox.'),
    failedDir: z.string().min(1).default('failed').describe('Subfolder of the inbox.'),
  })
  .describe('How files are picked up from a polled inbox (local folder or SFTP).');

export type PickupOptions = z.output<typeof pickupSchema>;
