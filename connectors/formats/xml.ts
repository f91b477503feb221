import { InternalError } from '../../platform/errors.js';
import type { FeedFormat } from './format.js';
import { type XmlOptions, xmlOptionsSchema } from './xml.options.js';

export const xmlFormat: FeedFormat<XmlOptions> = {
  type: 'xml',
  optionsSchema: xmlOptionsSchema,
  // biome-ignore lint/correctness/useYield: placeholder until the reader lands
  async *read() {
    throw new InternalError('INTERNAL', 'the xml reader is not written yet');
  },
};
