import { describe, expect, it } from 'vitest';
import {
  decodeCommands,
  encodeCommands,
  offersNotSent,
  type ProvisioningCommand,
} from './provisioning-command.js';

const command = (over: Partial<ProvisioningCommand>): ProvisioningCommand => ({
  key: 'sub_0123456789abcdefghjkmnpqrs:v1',
  kind: 'subscribe',
  subscriberId: 'sub_0123456789abcdefghjkmnpqrs',
  modules: ['antivirus', 'firewall'],
  status: 'active',
  effectiveAt: '2026-12-01T23:00:00.000Z',
  version: 1,
  ...over,
});

describe('encodeCommands', () => {
  it('round-trips every field of every command, in order', () => {
    const commands = [
      command({}),
      command({
        key: 'sub_0123456789abcdefghjkmnpqrs:v2',
        kind: 'cancel',
        status: 'cancelled',
        modules: [],
        effectiveAt: '2026-12-04T02:45:41.315Z',
        version: 2,
      }),
      command({
        key: 'sub_zyxwvtsrqpnmkjhgfedcba9876:v7',
        subscriberId: 'sub_zyxwvtsrqpnmkjhgfedcba9876',
        kind: 'change',
        modules: ['antivirus', 'backup', 'firewall', 'parental-control'],
        version: 7,
      }),
    ];

    expect(decodeCommands(encodeCommands(commands))).toEqual(commands);
  });

  it('round-trips offers, each kept once per batch, and commands without one', () => {
    const commands = [
      command({ offer: 'SECU_FAMILLE' }),
      command({ subscriberId: 'sub_zyxwvtsrqpnmkjhgfedcba9876', offer: 'SECU_INTEGRAL' }),
      command({ subscriberId: 'sub_00000000000000000000000000', offer: 'SECU_FAMILLE' }),
      command({ subscriberId: 'sub_11111111111111111111111111' }),
    ].map((c) => ({ ...c, key: `${c.subscriberId}:v1` }));
    const text = encodeCommands(commands);

    expect(text.split('SECU_FAMILLE')).toHaveLength(2);
    const decoded = decodeCommands(text);
    expect(decoded).toEqual(commands);
    expect(decoded[3]).not.toHaveProperty('offer');
  });

  it('leaves out an offer code the protocol cannot carry, keeping the command', () => {
    const commands = [
      command({ offer: 'Offre Famille (2 postes)' }),
      command({ subscriberId: 'sub_zyxwvtsrqpnmkjhgfedcba9876', offer: 'x'.repeat(65) }),
      command({ subscriberId: 'sub_00000000000000000000000000', offer: 'OK.plan-1_a' }),
    ];
    const decoded = decodeCommands(encodeCommands(commands));

    expect(decoded.map((c) => c.offer)).toEqual([undefined, undefined, 'OK.plan-1_a']);
    expect(decoded.map((c) => c.subscriberId)).toEqual(commands.map((c) => c.subscriberId));
    expect(encodeCommands(commands)).not.toContain('Famille');
  });

  it('stores a repeated module list once', () => {
    const many = Array.from({ length: 50 }, (_, i) =>
      command({ subscriberId: `sub_${String(i).padStart(26, '0')}` }),
    );
    const text = encodeCommands(many);

    expect(text.split('antivirus,firewall')).toHaveLength(2);
    expect(decodeCommands(text).map((c) => c.key)).toEqual(many.map((c) => `${c.subscriberId}:v1`));
  });

  it('keeps an empty batch empty', () => {
    expect(decodeCommands(encodeCommands([]))).toEqual([]);
  });
});

describe('CommandBatchEncoder', () => {
  it('writes what JSON.stringify of the stored batch would', () => {
    const commands = [command({}), command({ modules: [], kind: 'cancel', status: 'cancelled' })];
    const stored = {
      v: 2,
      m: ['antivirus,firewall', ''],
      o: [],
      c: commands.map((c, i) => [c.subscriberId, c.version, c.kind, c.status, c.effectiveAt, i]),
    };

    expect(encodeCommands(commands)).toBe(JSON.stringify(stored));
  });

  it('adds the offer index as a 7th element, when the command has an offer', () => {
    const commands = [command({ offer: 'BASIC' }), command({ kind: 'cancel', offer: undefined })];
    const stored = {
      v: 2,
      m: ['antivirus,firewall'],
      o: ['BASIC'],
      c: [
        [commands[0]?.subscriberId, 1, 'subscribe', 'active', commands[0]?.effectiveAt, 0, 0],
        [commands[1]?.subscriberId, 1, 'cancel', 'active', commands[1]?.effectiveAt, 0],
      ],
    };

    expect(encodeCommands(commands)).toBe(JSON.stringify(stored));
  });
});

describe('decodeCommands', () => {
  it('refuses a batch of another form, or one pointing at a module list it lacks', () => {
    expect(() => decodeCommands('{"v":3,"m":[],"c":[]}')).toThrow(/unknown form v3/);
    const missing =
      '{"v":1,"m":["antivirus"],"c":[["sub_x",1,"subscribe","active","2026-12-01T00:00:00.000Z",3]]}';
    expect(() => decodeCommands(missing)).toThrow(/missing module list/);
    const noOffer =
      '{"v":2,"m":["antivirus"],"o":["BASIC"],"c":[["sub_x",1,"subscribe","active","2026-12-01T00:00:00.000Z",0,1]]}';
    expect(() => decodeCommands(noOffer)).toThrow(/missing offer/);
  });

  it('reads a row stored in the first form as commands without an offer', () => {
    const v1 =
      '{"v":1,"m":["antivirus,firewall",""],"c":[["sub_0123456789abcdefghjkmnpqrs",1,"subscribe","active","2026-12-01T23:00:00.000Z",0],["sub_0123456789abcdefghjkmnpqrs",2,"cancel","cancelled","2026-12-04T02:45:41.315Z",1]]}';

    expect(decodeCommands(v1)).toEqual([
      command({}),
      command({
        key: 'sub_0123456789abcdefghjkmnpqrs:v2',
        kind: 'cancel',
        status: 'cancelled',
        modules: [],
        effectiveAt: '2026-12-04T02:45:41.315Z',
        version: 2,
      }),
    ]);
    expect(decodeCommands(v1)[0]).not.toHaveProperty('offer');
  });
});

describe('offersNotSent', () => {
  it('names the offer codes outside the wire pattern', () => {
    expect(offersNotSent(['SECU_FAMILLE', 'Offre Famille', 'a.b-c_9', '', 'é'])).toEqual([
      'Offre Famille',
      '',
      'é',
    ]);
  });
});
