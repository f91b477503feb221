import { InternalError } from '../../platform/errors.js';
import { type CsvOptions, csvOptionsSchema } from './csv.options.js';
import type { FeedFormat } from './format.js';

export const csvFormat: FeedFormat<CsvOptions> = {
  type: 'csv',
  optionsSchema: csvOptionsSchema,
  // biome-ignore lint/correctness/useYield: placeholder until the reader lands
  async *read() {
    throw new InternalError('INTERNAL', 'the csv reader is not written yet');
  },
};
