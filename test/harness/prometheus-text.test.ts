import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { readPrometheusText, sampleValue } from './prometheus-text.js';

describe('readPrometheusText', () => {
  it('reads a prom-client page without a problem, values and escaped labels included', async () => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'x_total',
      help: 'with "quotes"\nand a newline',
      labelNames: ['isp'],
      registers: [registry],
    });
    counter.inc({ isp: 'a "b" \\ c' }, 3);
    new Histogram({ name: 'y_seconds', help: 'h', buckets: [1], registers: [registry] }).observe(2);
    const page = readPrometheusText(await registry.metrics());
    expect(page.problems).toEqual([]);
    expect(sampleValue(page, 'x_total', { isp: 'a "b" \\ c' })).toBe(3);
    expect(sampleValue(page, 'y_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(page.types.get('y_seconds')).toBe('histogram');
  });

  it.each([
    [
      'a second HELP and TYPE (two exports appended as they are)',
      '# HELP a_total x\n# TYPE a_total counter\na_total 1\n# HELP a_total x\n# TYPE a_total counter\na_total{q="b"} 2\n',
      /second HELP for a_total/,
    ],
    ['a sample without a TYPE', 'b_total 1\n', /b_total has no TYPE before it/],
    ['the same series twice', '# TYPE c gauge\nc{a="1"} 1\nc{a="1"} 2\n', /series c .* twice/],
    ['a malformed line', '# TYPE d gauge\nd{a=1} 1\n', /not a sample line/],
    [
      'a family split in two',
      '# TYPE e gauge\ne 1\n# TYPE f gauge\nf 1\ne{x="y"} 2\n',
      /e apart from its family/,
    ],
    ['no final newline', '# TYPE g gauge\ng 1', /does not end with a newline/],
  ])('finds %s', (_what, text, problem) => {
    const { problems } = readPrometheusText(text);
    expect(
      problems.some((p) => problem.test(p)),
      problems.join('; '),
    ).toBe(true);
  });
});
