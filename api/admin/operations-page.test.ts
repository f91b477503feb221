import { describe, expect, it } from 'vitest';
import {
  formatMoney,
  formatTime,
  licencesChart,
  niceCeiling,
  renderOperationsPage,
} from './operations-page.js';
import type { IspOverview, Overview } from './overview.js';

const HOSTILE = '<script>alert("x")</script>&\'';

function isp(overrides: Partial<IspOverview> = {}): IspOverview {
  return {
    ispId: 'alpha',
    name: 'Alpha',
    enabled: true,
    lastFeeds: [],
    heldFeeds: [],
    provisioning: {
      pendingBatches: 0,
      queuedBatches: 0,
      failedBatches: 0,
      rejectedCommands: 0,
      oldestWaitingAt: null,
    },
    keyDeliveries: { pending: 0, delivered: 0, failed: 0 },
    billingDeliveries: [],
    currentPeriod: '2026-11',
    currentActivity: { activations: 0, provisioned: 0, partial: false },
    lastClosed: null,
    lastReconciliation: null,
    billableLicences: [],
    ...overrides,
  };
}

function overview(isps: IspOverview[]): Overview {
  return { generatedAt: new Date('2026-11-16T08:00:00Z'), isps, queues: [] };
}

describe('renderOperationsPage', () => {
  it('escapes every text that comes from data', () => {
    const at = new Date('2026-11-16T03:00:00Z');
    const html = renderOperationsPage(
      overview([
        isp({
          ispId: HOSTILE,
          name: HOSTILE,
          lastFeeds: [
            {
              id: HOSTILE,
              name: HOSTILE,
              status: HOSTILE,
              receivedAt: at,
              records: 1,
              applied: 1,
              rejected: 0,
              errorCode: HOSTILE,
            },
          ],
          heldFeeds: [{ id: HOSTILE, name: HOSTILE, receivedAt: at, reason: HOSTILE }],
          billingDeliveries: [{ period: HOSTILE, fileName: HOSTILE, status: HOSTILE, at }],
          lastClosed: {
            period: HOSTILE,
            closedAt: at,
            lines: 1,
            total: HOSTILE,
            currency: HOSTILE,
          },
          lastReconciliation: {
            period: HOSTILE,
            at,
            counts: { [HOSTILE]: 1 },
            reportPath: HOSTILE,
            fileName: HOSTILE,
          },
          billableLicences: [{ period: HOSTILE, licences: 3 }],
        }),
      ]),
    );
    expect(html).not.toContain('<script');
    expect(html).not.toContain('"x")');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
  });

  it('needs nothing from outside the document: no script, no external asset', () => {
    const html = renderOperationsPage(overview([isp()]));
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/i);
    expect(html).toContain('No feed received yet.');
  });

  it("shows the current period's activity so far, as a floor when the count stopped at its cap", () => {
    const exact = renderOperationsPage(
      overview([isp({ currentActivity: { activations: 1234, provisioned: 5, partial: false } })]),
    );
    expect(exact).toMatch(/Activated so far<\/dt>\s*<dd[^>]*>1,234<\/dd>/);
    expect(exact).toMatch(/Subscribes so far \(new or returning\)<\/dt>\s*<dd[^>]*>5<\/dd>/);
    const floor = renderOperationsPage(
      overview([isp({ currentActivity: { activations: 7, provisioned: 99_993, partial: true } })]),
    );
    expect(floor).toMatch(/Activated so far<\/dt>\s*<dd[^>]*>at least 7<\/dd>/);
  });

  it('says so when no ISP is configured', () => {
    expect(renderOperationsPage(overview([]))).toContain('No ISP is configured.');
  });
});

describe('licencesChart', () => {
  it('draws one bar per closed period, oldest first', () => {
    const svg = licencesChart([
      { period: '2026-09', licences: 40 },
      { period: '2026-10', licences: 120 },
    ]);
    const bars = [...svg.matchAll(/<rect class="bar" data-period="([^"]+)"/g)].map((m) => m[1]);
    expect(bars).toEqual(['2026-09', '2026-10']);
    expect(svg).toContain('Sep 26');
    expect(svg).toContain('>120<');
  });

  it('says there is nothing to draw before the first close', () => {
    expect(licencesChart([])).toContain('No period closed yet.');
  });
});

describe('helpers', () => {
  it.each([
    [0, 1],
    [1, 1],
    [3, 5],
    [7, 10],
    [12, 20],
    [120, 200],
    [4_900, 5_000],
  ])('niceCeiling(%d) = %d', (value, nice) => {
    expect(niceCeiling(value)).toBe(nice);
  });

  it.each([
    ['19.70', '19.70'],
    ['1234567.891', '1,234,567.891'],
    ['-1200.00', '-1,200.00'],
    ['12', '12'],
    ['not a number', 'not a number'],
  ])('formatMoney(%s) = %s', (decimal, shown) => {
    expect(formatMoney(decimal)).toBe(shown);
  });

  it('shows times in UTC, marked', () => {
    expect(formatTime(new Date('2026-11-16T03:05:59.999Z'))).toBe('2026-11-16 03:05 UTC');
  });
});
