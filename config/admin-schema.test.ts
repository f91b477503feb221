import { describe, expect, it } from 'vitest';
import { adminSchema } from './admin-schema.js';

describe('adminSchema', () => {
  it('has no user by default: the admin pages are off', () => {
    expect(adminSchema.parse({})).toEqual({ users: [] });
  });

  it('takes a password that arrived as a number as its digits', () => {
    const parsed = adminSchema.parse({
      users: [{ name: 'ops', role: 'operator', password: 12345678 }],
    });
    expect(parsed.users[0]?.password).toBe('12345678');
  });

  it.each([
    [
      'a short password',
      [{ name: 'ops', role: 'operator', password: 'short' }],
      'at least 8 characters',
    ],
    [
      'two users of one name',
      [
        { name: 'ops', role: 'operator', password: 'password-one' },
        { name: 'ops', role: 'viewer', password: 'password-two' },
      ],
      'same name',
    ],
    [
      'a colon in a name',
      [{ name: 'o:ps', role: 'viewer', password: 'password-one' }],
      'forbids a colon',
    ],
    ['an unknown role', [{ name: 'ops', role: 'admin', password: 'password-one' }], 'viewer'],
  ])('refuses %s', (_case, users, message) => {
    const result = adminSchema.safeParse({ users });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message).join('\n')).toContain(message);
  });
});
