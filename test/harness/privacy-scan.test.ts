/**
 * The privacy search itself (test/harness/privacy-scan.ts): the proofs that rest on it are
 * only as good as its eye, so it must find a value in every form a leak could take, and say
 * where.
 */
import { describe, expect, it } from 'vitest';
import { firstFindings, PersonalValues } from './privacy-scan.js';

const probes = new PersonalValues([
  { kind: 'e-mail', value: 'Probe.D001@privacy-probe.example' },
  { kind: 'customer ref', value: 'PRVD00001' },
]);

describe('the privacy search', () => {
  it.each([
    ['as is', 'to: Probe.D001@privacy-probe.example;'],
    ['upper case', 'PROBE.D001@PRIVACY-PROBE.EXAMPLE'],
    ['URL-encoded', '/x?to=Probe.D001%40privacy-probe.example'],
    ['in hex', Buffer.from('Probe.D001@privacy-probe.example').toString('hex')],
    ['in base64', Buffer.from('Probe.D001@privacy-probe.example').toString('base64')],
    [
      'in base64, one byte in',
      Buffer.from('{Probe.D001@privacy-probe.example}').toString('base64'),
    ],
    [
      'in base64, two bytes in',
      Buffer.from('{"Probe.D001@privacy-probe.example"}').toString('base64'),
    ],
    ['in base64url', Buffer.from('>>?Probe.D001@privacy-probe.example?').toString('base64url')],
  ])('finds a value %s, and says which form it took', (form, text) => {
    const found = probes.in(text);
    expect(found.join(' ')).toContain('e-mail Probe.D001@privacy-probe.example');
    if (form.startsWith('in ')) expect(found.join(' ')).toContain(`(${form.slice(3, 9)}`);
  });

  it('finds every value in one text, and nothing in a clean one', () => {
    expect(probes.in('ref=prvd00001 mail=probe.d001@privacy-probe.example').length).toBe(2);
    expect(probes.in('ref=PRVD0000 mail=probe.d002@privacy-probe.example')).toEqual([]);
  });

  it('names where it found them, the first few places first', () => {
    const findings = probes.scan(
      Array.from({ length: 7 }, (_, i): [string, string] => [`log line ${i + 1}`, 'PRVD00001']),
    );
    expect(firstFindings(findings, 2)).toEqual([
      'log line 1: customer ref PRVD00001',
      'log line 2: customer ref PRVD00001',
      '... and 5 more places',
    ]);
    expect(firstFindings([])).toEqual([]);
  });
});
