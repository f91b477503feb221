/**
 * The operations page (`GET /admin`) as one self-contained HTML document: inline CSS, inline
 * SVG charts, no script, no external asset, so it renders the same behind any proxy and needs
 * no build step. Pure: the data is the overview `relais status` prints too (./overview.ts).
 *
 * Every text that comes from data (ISP names, feed names, reasons, error codes, categories) goes
 * through {@link esc}; nothing is inserted raw. Times are shown in UTC, marked as such.
 */

import { escapeHtml as esc } from '../../platform/html.js';
import {
  type FeedSummary,
  type IspOverview,
  ispNeedsAttention,
  MATCHED_CATEGORY,
  type Overview,
  type QueueDepth,
  queueNeedsAttention,
} from './overview.js';

/** Where the page links to the queue dashboard. */
export const QUEUE_DASHBOARD_URL = '/admin/queues';

export function renderOperationsPage(overview: Overview): string {
  const generated = formatTime(overview.generatedAt);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Relais operations</title>
<style>${STYLE}</style>
</head>
<body>
<header class="top">
  <div><h1>Relais operations</h1><p class="muted">Generated ${esc(generated)}. Reload for fresh figures.</p></div>
  <nav><a class="button" href="${QUEUE_DASHBOARD_URL}">Queue dashboard</a></nav>
</header>
<main>
${summary(overview)}
${queuesSection(overview.queues)}
${overview.isps.length === 0 ? '<p class="empty">No ISP is configured.</p>' : overview.isps.map(ispSection).join('\n')}
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Summary and queues

function summary(overview: Overview): string {
  const attention = overview.isps.filter(ispNeedsAttention);
  const held = sum(overview.isps.map((i) => i.heldFeeds.length));
  const failedBatches = sum(overview.isps.map((i) => i.provisioning.failedBatches));
  const failedJobs = sum(overview.queues.map((q) => q.failed));
  const tiles = [
    tile(
      'ISPs',
      overview.isps.length,
      attention.length > 0 ? `${attention.length} need a look` : 'all quiet',
      attention.length > 0,
    ),
    tile('Held snapshots', held, 'waiting for relais feeds approve', held > 0),
    tile('Failed batches', failedBatches, 'provisioning given up', failedBatches > 0),
    tile('Failed jobs', failedJobs, 'in the queues', failedJobs > 0),
  ];
  const links = attention.length
    ? `<p class="attention-list">Needs a look: ${attention.map((i) => `<a href="#isp-${esc(i.ispId)}">${esc(i.name)}</a>`).join(', ')}</p>`
    : '';
  return `<section class="tiles" aria-label="Summary">${tiles.join('')}</section>${links}`;
}

function tile(label: string, value: number, note: string, warn: boolean): string {
  return `<div class="tile${warn ? ' warn' : ''}"><div class="tile-value">${esc(formatCount(value))}</div><div class="tile-label">${esc(label)}</div><div class="tile-note">${esc(note)}</div></div>`;
}

function queuesSection(queues: QueueDepth[]): string {
  if (queues.length === 0) return '';
  const rows = queues.map((q) => {
    const cells = [q.waiting, q.active, q.delayed, q.failed, q.completed, q.paused]
      .map((n, i) => `<td class="num${i === 3 && n > 0 ? ' bad' : ''}">${esc(formatCount(n))}</td>`)
      .join('');
    const name = `<td><a href="${QUEUE_DASHBOARD_URL}/queue/${encodeURIComponent(q.name)}">${esc(q.name)}</a></td>`;
    const note = q.error ? `<td class="bad">unreadable: ${esc(q.error)}</td>` : '<td></td>';
    return `<tr class="${queueNeedsAttention(q) ? 'row-warn' : ''}">${name}${cells}${note}</tr>`;
  });
  return `<section class="card" aria-labelledby="queues-title">
<h2 id="queues-title">Queues</h2>
<table class="queues"><thead><tr><th>Queue</th><th class="num">Waiting</th><th class="num">Active</th><th class="num">Delayed</th><th class="num">Failed</th><th class="num">Completed</th><th class="num">Paused</th><th></th></tr></thead>
<tbody>${rows.join('')}</tbody></table>
</section>`;
}

// ---------------------------------------------------------------------------------------------
// One ISP

function ispSection(isp: IspOverview): string {
  const badges = [
    isp.enabled ? '' : '<span class="badge grey">disabled</span>',
    ispNeedsAttention(isp)
      ? `<span class="badge amber">needs a look: ${esc(attentionReasons(isp).join(', '))}</span>`
      : '',
  ].join('');
  return `<section class="isp" id="isp-${esc(isp.ispId)}" aria-label="${esc(isp.name)}">
<h2 class="isp-title">${esc(isp.name)} <span class="isp-id">${esc(isp.ispId)}</span>${badges}</h2>
${isp.heldFeeds.length > 0 ? heldCard(isp) : ''}
<div class="grid">
${feedsCard(isp.lastFeeds)}
${provisioningCard(isp)}
${chartCard(isp)}
${periodsCard(isp)}
${reconciliationCard(isp)}
${billingFilesCard(isp)}
</div>
</section>`;
}

/** Why an ISP needs a look, in words (the conditions of `ispNeedsAttention`). */
function attentionReasons(isp: IspOverview): string[] {
  const { heldFeeds, lastFeeds, provisioning, keyDeliveries } = isp;
  const reasons = [
    counted(heldFeeds.length, 'held snapshot', 'held snapshots'),
    lastFeeds[0]?.status === 'failed' ? 'last feed failed' : '',
    counted(provisioning.failedBatches, 'failed batch', 'failed batches'),
    counted(keyDeliveries.failed, 'failed key delivery', 'failed key deliveries'),
  ];
  return reasons.filter(Boolean);
}

/** `1 held snapshot`, `3 held snapshots`; empty for 0. */
function counted(n: number, one: string, many: string): string {
  if (n === 0) return '';
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

function heldCard(isp: IspOverview): string {
  const items = isp.heldFeeds.map(
    (f) =>
      `<li><strong>${esc(f.name)}</strong> <span class="muted">received ${esc(formatTime(f.receivedAt))}</span>${f.reason ? `<div class="reason">${esc(f.reason)}</div>` : ''}<code>relais feeds approve ${esc(f.id)}</code></li>`,
  );
  return `<div class="card held"><h3>Held snapshots waiting for approval (${isp.heldFeeds.length})</h3><ul class="held-list">${items.join('')}</ul></div>`;
}

function feedsCard(feeds: FeedSummary[]): string {
  if (feeds.length === 0)
    return card('Last feeds', '<p class="empty">No feed received yet.</p>', 'wide');
  const rows = feeds.map(
    (f) =>
      `<tr><td class="nowrap">${esc(formatTime(f.receivedAt))}</td><td class="name">${esc(f.name)}</td><td>${statusBadge(f.status)}</td><td class="num">${esc(formatCount(f.records))}</td><td class="num">${esc(formatCount(f.applied))}</td><td class="num${f.rejected > 0 ? ' bad' : ''}">${esc(formatCount(f.rejected))}</td><td>${f.errorCode ? `<code>${breakable(f.errorCode)}</code>` : ''}</td></tr>`,
  );
  const table = `<table><thead><tr><th>Received</th><th>File</th><th>Status</th><th class="num">Records</th><th class="num">Applied</th><th class="num">Rejected</th><th>Error</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  return card('Last feeds', table, 'wide');
}

function provisioningCard(isp: IspOverview): string {
  const p = isp.provisioning;
  const k = isp.keyDeliveries;
  const list = definitions([
    ['Batches in the outbox', formatCount(p.pendingBatches)],
    ['Batches on the queue', formatCount(p.queuedBatches)],
    ['Failed batches', formatCount(p.failedBatches), p.failedBatches > 0],
    ['Rejected commands', formatCount(p.rejectedCommands), p.rejectedCommands > 0],
    ['Oldest waiting since', p.oldestWaitingAt ? formatTime(p.oldestWaitingAt) : '-'],
  ]);
  const keys = definitions([
    ['Keys to deliver', formatCount(k.pending)],
    ['Keys delivered', formatCount(k.delivered)],
    ['Key deliveries failed', formatCount(k.failed), k.failed > 0],
  ]);
  return card('Provisioning and key deliveries', `${list}${keys}`);
}

function periodsCard(isp: IspOverview): string {
  const closed = isp.lastClosed;
  const activity = isp.currentActivity;
  const floor = activity.partial ? 'at least ' : '';
  const rows: [string, string][] = [
    ['Current period', isp.currentPeriod],
    ['Activated so far', `${floor}${formatCount(activity.activations)}`],
    ['Subscribes so far (new or returning)', `${floor}${formatCount(activity.provisioned)}`],
  ];
  if (closed) {
    rows.push(
      ['Last closed period', closed.period],
      ['Closed at', formatTime(closed.closedAt)],
      ['Rated lines', formatCount(closed.lines)],
      ['Total', `${formatMoney(closed.total)} ${closed.currency}`],
    );
  }
  const body = definitions(rows) + (closed ? '' : '<p class="empty">No period closed yet.</p>');
  return card('Billing periods', body);
}

function reconciliationCard(isp: IspOverview): string {
  const run = isp.lastReconciliation;
  if (!run) return card('Last reconciliation', '<p class="empty">Not reconciled yet.</p>');
  const categories = Object.entries(run.counts).sort(([a], [b]) =>
    a === MATCHED_CATEGORY ? -1 : b === MATCHED_CATEGORY ? 1 : a.localeCompare(b),
  );
  const chips = categories.map(([category, n]) => {
    const tone = category === MATCHED_CATEGORY ? 'ok' : n > 0 ? 'bad' : 'quiet';
    return `<li class="chip ${tone}"><span>${esc(category)}</span><strong>${esc(formatCount(n))}</strong></li>`;
  });
  const head = `<p class="muted">Period ${esc(run.period)}, run ${esc(formatTime(run.at))}, file <code>${esc(run.fileName)}</code></p>`;
  return card('Last reconciliation', `${head}<ul class="chips">${chips.join('')}</ul>`);
}

function billingFilesCard(isp: IspOverview): string {
  if (isp.billingDeliveries.length === 0) {
    return card('Month-end files', '<p class="empty">No file delivered yet.</p>', 'wide');
  }
  const rows = isp.billingDeliveries.map(
    (d) =>
      `<tr><td class="nowrap">${esc(d.period)}</td><td class="name">${esc(d.fileName)}</td><td>${statusBadge(d.status)}</td><td class="nowrap">${esc(formatTime(d.at))}</td></tr>`,
  );
  return card(
    'Month-end files',
    `<table><thead><tr><th>Period</th><th>File</th><th>Status</th><th>At</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    'wide',
  );
}

function chartCard(isp: IspOverview): string {
  return card('Billable licences per month', licencesChart(isp.billableLicences), 'wide');
}

// ---------------------------------------------------------------------------------------------
// The chart

const CHART = { width: 760, height: 210, left: 44, right: 8, top: 22, bottom: 30 };

/** An inline SVG bar chart, one `rect.bar` per closed period, oldest on the left. */
export function licencesChart(points: { period: string; licences: number }[]): string {
  if (points.length === 0) return '<p class="empty">No period closed yet.</p>';
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = niceCeiling(Math.max(...points.map((p) => p.licences)));
  const slot = plotW / Math.max(points.length, 6);
  const barW = Math.min(44, slot * 0.7);
  const y = (v: number) => top + plotH - (v / max) * plotH;
  // Licences are whole: a half-way line only when it falls on a whole number.
  const ticks = [0, max / 2, max].filter((v) => Number.isInteger(v));
  const grid = ticks.map(
    (v) =>
      `<line class="gridline" x1="${left}" x2="${width - right}" y1="${round(y(v))}" y2="${round(y(v))}"/><text class="axis" x="${left - 6}" y="${round(y(v) + 4)}" text-anchor="end">${esc(formatCount(v))}</text>`,
  );
  const bars = points.map((p, i) => {
    const x = left + slot * i + (slot - barW) / 2;
    const h = (p.licences / max) * plotH;
    const cx = round(x + barW / 2);
    return `<g><title>${esc(p.period)}: ${esc(formatCount(p.licences))} billable licences</title><rect class="bar" data-period="${esc(p.period)}" data-licences="${p.licences}" x="${round(x)}" y="${round(y(p.licences))}" width="${round(barW)}" height="${round(h)}" rx="3"/><text class="value" x="${cx}" y="${round(y(p.licences) - 5)}" text-anchor="middle">${esc(formatCount(p.licences))}</text><text class="axis" x="${cx}" y="${height - bottom + 16}" text-anchor="middle">${esc(monthLabel(p.period))}</text></g>`;
  });
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Billable licences per closed period">${grid.join('')}${bars.join('')}</svg>`;
}

/** The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1). */
export function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `2026-11` → `Nov 26`. */
function monthLabel(period: string): string {
  const [year, month] = period.split('-');
  const name = MONTHS[Number(month) - 1];
  return name && year ? `${name} ${year.slice(2)}` : period;
}

// ---------------------------------------------------------------------------------------------
// Small pieces

function card(title: string, body: string, extra = ''): string {
  return `<div class="card ${extra}"><h3>${esc(title)}</h3>${body}</div>`;
}

function definitions(rows: ([string, string] | [string, string, boolean])[]): string {
  const items = rows.map(
    ([term, value, bad]) =>
      `<dt>${esc(term)}</dt><dd class="${bad ? 'bad' : ''}">${esc(value)}</dd>`,
  );
  return `<dl>${items.join('')}</dl>`;
}

const STATUS_TONES: Record<string, string> = {
  applied: 'green',
  delivered: 'green',
  held: 'amber',
  uploading: 'blue',
  uploaded: 'blue',
  received: 'blue',
  parsing: 'blue',
  failed: 'red',
  duplicate: 'grey',
};

function statusBadge(status: string): string {
  return `<span class="badge ${STATUS_TONES[status] ?? 'grey'}">${esc(status)}</span>`;
}

/** `2026-12-16 07:05 UTC`. */
export function formatTime(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Groups the integer digits of an exact decimal string, leaving the digits themselves alone. */
export function formatMoney(decimal: string): string {
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(decimal);
  if (!match) return decimal;
  const [, sign, whole = '', fraction = ''] = match;
  return `${sign}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${fraction}`;
}

/** Escaped, with a line-break chance after each underscore of a long code. */
function breakable(code: string): string {
  return esc(code).replace(/_/g, '_<wbr>');
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

const STYLE = `
:root{--bg:#f4f6f9;--card:#fff;--ink:#1d2733;--muted:#5d6b7a;--line:#e2e7ee;--accent:#2f6fdf;
--green:#1f8a4c;--green-bg:#e3f4ea;--amber:#9a6300;--amber-bg:#fff1d6;--red:#c0392b;--red-bg:#fde7e4;
--blue:#2458b8;--blue-bg:#e4edfc;--grey:#56616d;--grey-bg:#eceff3}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--grey-bg);padding:1px 5px;border-radius:4px}
.top{display:flex;justify-content:space-between;align-items:center;padding:18px 28px;background:#17202b;color:#fff}
.top h1{margin:0;font-size:20px;font-weight:600}.top .muted{color:#aab6c4;margin:2px 0 0}
.button{display:inline-block;background:var(--accent);color:#fff;padding:8px 14px;border-radius:6px;font-weight:500}
.button:hover{text-decoration:none;background:#2559b5}
main{max-width:1320px;margin:0 auto;padding:20px 28px 40px}
.muted{color:var(--muted)}.empty{color:var(--muted);font-style:italic;margin:6px 0}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin-bottom:10px}
.tile{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--green);border-radius:8px;padding:12px 16px}
.tile.warn{border-left-color:var(--amber);background:#fffaf0}
.tile-value{font-size:26px;font-weight:650}.tile-label{font-weight:600}.tile-note{color:var(--muted);font-size:12px}
.attention-list{margin:4px 0 14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin-bottom:16px;min-width:0}
.card h2,.card h3{margin:0 0 10px;font-size:15px;font-weight:600}
.isp{margin-top:26px}
.isp-title{font-size:18px;margin:0 0 12px;display:flex;align-items:center;gap:10px;border-bottom:2px solid var(--line);padding-bottom:6px}
.isp-id{font:13px ui-monospace,Menlo,Consolas,monospace;color:var(--muted);font-weight:400}
.grid{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:16px}
.grid .card{margin:0}.grid .wide{grid-column:span 2}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:6px 8px}
td{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
td.name{overflow-wrap:break-word}.nowrap{white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:var(--red);font-weight:600}
tr.row-warn td{background:#fff8f7}
dl{display:grid;grid-template-columns:auto auto;gap:4px 16px;margin:0 0 10px}
dt{color:var(--muted)}dd{margin:0;text-align:right;font-variant-numeric:tabular-nums;font-weight:500}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.green{color:var(--green);background:var(--green-bg)}.amber{color:var(--amber);background:var(--amber-bg)}
.red{color:var(--red);background:var(--red-bg)}.blue{color:var(--blue);background:var(--blue-bg)}
.grey{color:var(--grey);background:var(--grey-bg)}
.held{border-left:4px solid var(--amber);background:#fffaf0}
.held-list{list-style:none;margin:0;padding:0}.held-list li{padding:6px 0;border-top:1px solid #f1e4c8}
.held-list li:first-child{border-top:0}.held-list code{display:inline-block;margin-top:4px}
.reason{margin:2px 0}
.chips{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:6px}
.chip{display:flex;gap:8px;align-items:center;border-radius:6px;padding:4px 8px;font-size:12px;background:var(--grey-bg)}
.chip span{font-family:ui-monospace,Menlo,Consolas,monospace}
.chip.ok{background:var(--green-bg);color:var(--green)}.chip.bad{background:var(--red-bg);color:var(--red)}
.chip.quiet{color:var(--muted)}
.chart{width:100%;height:auto;display:block}
.chart .bar{fill:var(--accent)}.chart .gridline{stroke:var(--line);stroke-width:1}
.chart text{font-size:12px;fill:var(--muted)}.chart .value{fill:var(--ink);font-weight:600}
@media (max-width:1000px){.tiles{grid-template-columns:repeat(2,1fr)}.grid{grid-template-columns:1fr}.grid .wide{grid-column:auto}}
`;
