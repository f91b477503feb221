/** Writes the sample exports into config/samples/ (run by `npm run generate`). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../../platform/package-root.js';
import { sampleFiles } from './samples.js';

const root = join(packageRoot(), 'config', 'samples');
for (const sample of sampleFiles()) {
  const path = join(root, sample.path);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, sample.bytes);
  process.stdout.write(`wrote config/samples/${sample.path}\n`);
}
