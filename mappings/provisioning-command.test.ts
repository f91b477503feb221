import { describe, expect, it } from 'vitest';
import {
  decodeCommands,
  encodeCommands,
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
      v: 1,
      m: ['antivirus,firewall', ''],
      c: commands.map((c, i) => [c.subscriberId, c.version, c.kind, c.status, c.effectiveAt, i]),
    };

    expect(encodeCommands(commands)).toBe(JSON.stringify(stored));
  });
});

describe('decodeCommands', () => {
  it('refuses a batch of another form, or one pointing at a module list it lacks', () => {
    expect(() => decodeCommands('{"v":2,"m":[],"c":[]}')).toThrow(/unknown form v2/);
    const missing =
      '{"v":1,"m":["antivirus"],"c":[["sub_x",1,"subscribe","active","2026-12-01T00:00:00.000Z",3]]}';
    expect(() => decodeCommands(missing)).toThrow(/missing module list/);
  });
});
