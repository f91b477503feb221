import { InternalError } from '../../platform/errors.js';
import { type FixedWidthOptions, fixedWidthOptionsSchema } from './fixed-width.options.js';
import type { FeedFormat } from './format.js';

export const fixedWidthFormat: FeedFormat<FixedWidthOptions> = {
  type: 'fixed-width',
  optionsSchema: fixedWidthOptionsSchema,
  // biome-ignore lint/correctness/useYield: placeholder until the reader lands
  async *read() {
    throw new InternalError('INTERNAL', 'the fixed-width reader is not written yet');
  },
};
