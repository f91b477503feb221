import { z } from 'zod';

export const localFolderOptionsSchema = z
  .strictObject({
    type: z.literal('local'),
    inbox: z
      .string()
      .optional()
      .describe(
        'Folder the ISP drops files into (a shared mount); default <dataDir>/isps/<isp-id>/inbox. Relative to the ISP file.',
      ),
  })
  .describe('A local or mounted folder, polled on the schedule.');

export type LocalFolderOptions = z.output<typeof localFolderOptionsSchema>;
