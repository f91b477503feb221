/** `relais demo --activate`: who activates in a month of other samples. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseActivations } from './demo.js';

describe('relais demo --activate', () => {
  it('reads isp:ref pairs, in order', () => {
    expect(parseActivations('demo-fai:PRVD00001, bretagne-net:10000005')).toEqual([
      { ispId: 'demo-fai', ref: 'PRVD00001' },
      { ispId: 'bretagne-net', ref: '10000005' },
    ]);
  });

  it('refuses a pair without its ISP or its ref, naming it', () => {
    for (const bad of ['10000001', 'demo-fai:', ':10000001', 'demo-fai:1,']) {
      expect(() => parseActivations(bad), bad).toThrow(InvalidArgumentError);
    }
    expect(() => parseActivations('demo-fai')).toThrow(/got "demo-fai"/);
  });
});
