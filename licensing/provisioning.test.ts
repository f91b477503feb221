import { describe, expect, it } from 'vitest';
import { RequestError } from '../platform/errors.js';
import { newId } from '../platform/ids.js';
import { parseBatch } from './provisioning.js';

function command(overrides: Record<string, unknown> = {}) {
  const subscriberId = newId('sub');
  return {
    key: `${subscriberId}:v1`,
    kind: 'subscribe',
    subscriberId,
    version: 1,
    modules: ['antivirus'],
    status: 'active',
    effectiveAt: '2026-12-10T09:00:00.000Z',
    ...overrides,
  };
}

function refusal(body: unknown): RequestError {
  try {
    parseBatch(body);
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  }
  throw new Error('the batch was accepted');
}

describe('parseBatch', () => {
  it('accepts a valid batch as it is', () => {
    const c = command({ offer: 'SECU_FAMILLE' });
    expect(parseBatch({ commands: [c] })).toEqual([c]);
  });

  it('names every offending path, nested ones with their index', () => {
    const err = refusal({
      commands: [command({ version: 0 }), command({ status: 'gone', email: 'x@y.fr' })],
      extra: true,
    });
    expect(err.code).toBe('PROVISIONING_INVALID');
    expect(err.message).toContain('commands[0].version: ');
    expect(err.message).toContain('commands[1].status: ');
    expect(err.message).toContain('commands[1].email: unrecognized key');
    expect(err.message).toContain('extra: unrecognized key');
    expect(err.message).not.toContain('x@y.fr');
  });

  it('says what the body is when it is not an object', () => {
    expect(refusal([1, 2]).message).toMatch(/^batch refused, nothing applied: body: /);
    expect(refusal(undefined).message).toContain('body: ');
  });

  it('lists at most 50 problems and counts the rest', () => {
    const commands = Array.from({ length: 60 }, () => command({ kind: 'upgrade' }));
    const message = refusal({ commands }).message;
    expect(message).toContain('commands[49].kind');
    expect(message).not.toContain('commands[50].kind');
    expect(message).toMatch(/and 10 more problems$/);
  });

  it('refuses a status the kind contradicts, naming the path, and takes every consistent pair', () => {
    const message = refusal({
      commands: [
        command({ kind: 'cancel', status: 'active' }),
        command({ kind: 'suspend', status: 'active' }),
        command({ kind: 'resume', status: 'suspended' }),
        command({ kind: 'subscribe', status: 'cancelled' }),
        command({ kind: 'change', status: 'cancelled' }),
      ],
    }).message;
    expect(message).toContain(
      'commands[0].status: a cancel command must leave the subscription cancelled, not active',
    );
    expect(message).toContain('commands[1].status: a suspend command must leave');
    expect(message).toContain('commands[2].status: a resume command must leave');
    expect(message).toContain(
      'commands[3].status: a subscribe command must leave the subscription active or suspended, not cancelled',
    );
    expect(message).toContain('commands[4].status: a change command must leave');
    const consistent = [
      command({ kind: 'subscribe', status: 'active' }),
      // A snapshot lists a new customer already suspended: the connector subscribes it so.
      command({ kind: 'subscribe', status: 'suspended' }),
      command({ kind: 'change', status: 'active' }),
      command({ kind: 'change', status: 'suspended' }),
      command({ kind: 'suspend', status: 'suspended' }),
      command({ kind: 'resume', status: 'active' }),
      command({ kind: 'cancel', status: 'cancelled' }),
    ];
    expect(parseBatch({ commands: consistent })).toHaveLength(consistent.length);
  });

  it('refuses a repeated key, a key that is not the command own, and an oversized module list', () => {
    const c = command();
    const other = command();
    const long = Array.from(
      { length: 32 },
      (_, i) => `module-with-a-long-name-${String(i).padStart(2, '0')}`,
    );
    const message = refusal({
      commands: [c, { ...other, key: `${other.subscriberId}:v2` }, c, command({ modules: long })],
    }).message;
    expect(message).toContain('commands[1].key: must be <subscriberId>:v<version>');
    expect(message).toContain('commands[2].key: repeats commands[0].key');
    expect(message).toContain('commands[3].modules: longer than 512 characters');
  });
});
