import { describe, expect, it } from 'vitest';
import { csvCell, emptyTotals, type ReportSummary, renderHtml } from './report.js';

function summary(overrides: Partial<ReportSummary> = {}): ReportSummary {
  const categories = emptyTotals();
  categories.UNKNOWN_REF = {
    refs: 12,
    ispMicros: 47_880_000n,
    vendorMicros: 0n,
    expectedMicros: 0n,
    differenceMicros: 0n,
    shownRefs: ['<img src=x onerror=alert(1)>', 'A&B'],
  };
  return {
    ispId: 'demo-fai',
    ispName: 'Demo <FAI> & "Co"',
    period: '2026-12',
    currency: 'EUR',
    fileName: 'facturation_<script>.csv',
    sha256: 'ab'.repeat(32),
    exportLines: 12,
    rejectedLines: 1,
    vendorLines: 0,
    vendorOtherPeriodLines: 0,
    inactiveRefs: 0,
    amountsCompared: false,
    toleranceMicros: 10_000n,
    categories,
    shownRejects: [
      {
        kind: 'reject',
        line: 3,
        field: 'code',
        value: '</td><script>x</script>',
        reason: 'code "\'x\'" is unknown',
        ref: null,
      },
    ],
    ...overrides,
  };
}

describe('renderHtml', () => {
  it('escapes every value that came from the export or the config', () => {
    const html = renderHtml(summary());
    expect(html).not.toMatch(/<script|<img|<FAI>/);
    expect(html).toContain('Demo &lt;FAI&gt; &amp; &quot;Co&quot;');
    expect(html).toContain('facturation_&lt;script&gt;.csv');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;, A&amp;B … (10 more in the CSV)');
    expect(html).toContain(
      '<td>&lt;/td&gt;&lt;script&gt;x&lt;/script&gt;</td><td>code &quot;&#39;x&#39;&quot; is unknown</td>',
    );
  });

  it('is self-contained: no script, no external resource', () => {
    const html = renderHtml(summary());
    expect(html).not.toMatch(/<(script|link|img|iframe|object)\b/i);
    expect(html).not.toMatch(/<[a-z]+[^>]*\s(src|href)=/i);
    expect(html).not.toMatch(/url\(/i);
  });

  it('leaves the difference column empty when amounts are not compared', () => {
    const html = renderHtml(summary());
    expect(html).toContain('UNKNOWN_REF</th><td>12</td><td>47.88</td><td>0.00</td><td></td>');
    expect(renderHtml(summary({ amountsCompared: true }))).toContain(
      'UNKNOWN_REF</th><td>12</td><td>47.88</td><td>0.00</td><td>0.00</td>',
    );
  });

  it('renders the same page for the same summary', () => {
    expect(renderHtml(summary())).toBe(renderHtml(summary()));
  });
});

describe('csvCell', () => {
  it.each([
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
  ])('writes %j as %j', (value, cell) => {
    expect(csvCell(value)).toBe(cell);
  });
});
