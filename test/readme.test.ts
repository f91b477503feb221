import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../platform/package-root.js';

/** The README's opening: the paragraph under the title and the first shell block after it. */
function opening(): { sentences: string[]; commands: string[] } {
  const text = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
  const match = /^# Relais\n\n([^`]+?)\n\n```sh\n([^`]*)```/.exec(text);
  if (!match) return { sentences: [], commands: [] };
  const paragraph = (match[1] as string).replace(/\s+/g, ' ').trim();
  const commands = (match[2] as string)
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
  return { sentences: paragraph.split(/(?<=[.!?])\s+(?=[A-Z])/), commands };
}

describe('README', () => {
  it('opens with three sentences on what Relais is', () => {
    expect(opening().sentences).toHaveLength(3);
  });

  it('then gives exactly the two commands: the demo and the tests', () => {
    expect(opening().commands).toEqual(['npm ci && npm run demo', 'npm test']);
  });
});
