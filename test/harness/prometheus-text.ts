/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests of
 * /metrics: it lists every way a page breaks the format (a malformed line, a second HELP or
 * TYPE for a metric, a sample before its TYPE or apart from its family, a series twice) and
 * reads sample values back. prom-client writes pages but has no parser; this is the check.
 */

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const VALUE = String.raw`"(?:[^"\\\n]|\\["\\n])*"`;
// Go's ParseFloat, which Prometheus uses, reads Inf and NaN in any case (prom-client writes Nan).
const NUMBER = String.raw`[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[Ii][Nn][Ff]|[Nn][Aa][Nn])`;
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL}=${VALUE})(?:,${LABEL}=${VALUE})*,?)?\\})? (${NUMBER})(?: -?\\d+)?$`,
);
const PAIR = new RegExp(`(${LABEL})=(${VALUE})`, 'g');
const HELP = new RegExp(`^# HELP (${NAME})(?: (.*))?$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

export interface PageSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Page {
  /** Every way the page breaks the format, with its line number; empty when valid. */
  problems: string[];
  /** Family name → declared type. */
  types: Map<string, string>;
  samples: PageSample[];
}

function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
    if (base && ['histogram', 'summary'].includes(types.get(base) ?? '')) return base;
  }
  return name;
}

function numberOf(text: string): number {
  return /inf$/i.test(text) ? (text.startsWith('-') ? -1 : 1) * Infinity : Number(text);
}

function unescapeLabel(quoted: string): string {
  return quoted.slice(1, -1).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

export function readPrometheusText(text: string): Page {
  const problems: string[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const closed = new Set<string>();
  const series = new Set<string>();
  const samples: PageSample[] = [];
  let current: string | undefined;
  if (!text.endsWith('\n')) problems.push('the page does not end with a newline');

  text.split('\n').forEach((line, index) => {
    const at = `line ${index + 1}`;
    if (line === '') return;
    const help = HELP.exec(line);
    const type = TYPE.exec(line);
    const name = help?.[1] ?? type?.[1];
    if (name !== undefined) {
      if (current !== name && current !== undefined) closed.add(current);
      if (closed.has(name)) problems.push(`${at}: ${name} declared again after other metrics`);
      if (help && helps.has(name)) problems.push(`${at}: second HELP for ${name}`);
      if (type && types.has(name)) problems.push(`${at}: second TYPE for ${name}`);
      if (help) helps.add(name);
      if (type) types.set(name, type[2] as string);
      current = name;
      return;
    }
    if (line.startsWith('#')) return; // a plain comment
    const match = SAMPLE.exec(line);
    if (!match) {
      problems.push(`${at}: not a sample line: ${line}`);
      return;
    }
    const sampleName = match[1] as string;
    const family = familyOf(sampleName, types);
    if (!types.has(family)) problems.push(`${at}: ${sampleName} has no TYPE before it`);
    if (family !== current) {
      if (current !== undefined) closed.add(current);
      if (closed.has(family)) problems.push(`${at}: ${sampleName} apart from its family`);
      current = family;
    }
    const labels: Record<string, string> = {};
    for (const [, key, quoted] of (match[2] ?? '').matchAll(PAIR)) {
      if (key && key in labels) problems.push(`${at}: label ${key} twice`);
      labels[key as string] = unescapeLabel(quoted as string);
    }
    const id = `${sampleName}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(id))
      problems.push(`${at}: series ${sampleName} ${JSON.stringify(labels)} twice`);
    series.add(id);
    samples.push({ name: sampleName, labels, value: numberOf(match[3] as string) });
  });
  return { problems, types, samples };
}

/** The value of the one sample of `name` whose labels include `labels`; undefined if none. */
export function sampleValue(
  page: Page,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = page.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match`);
  return found[0]?.value;
}
