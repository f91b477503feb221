import { describe, expect, it } from 'vitest';
import { insertSql, literal, upsertSql } from './provisioning-sql.js';

describe('literal', () => {
  it('escapes what MySQL reads specially in a quoted string, and nothing else', () => {
    expect(literal(`it's a \\ "quote"\n\r\0\x1a`)).toBe(`'it\\'s a \\\\ "quote"\\n\\r\\0\\Z'`);
    expect(literal('sub_0123456789abcdefghjkmnpqrs')).toBe("'sub_0123456789abcdefghjkmnpqrs'");
  });

  it('writes dates as UTC with milliseconds, buffers as hex, numbers and null bare', () => {
    expect(literal(new Date('2026-12-31T23:00:00.250Z'))).toBe("'2026-12-31 23:00:00.250'");
    expect(literal(Buffer.from([0, 255, 16]))).toBe("X'00ff10'");
    expect(literal(42)).toBe('42');
    expect(literal(null)).toBe('NULL');
  });

  it('writes each date as itself when dates alternate (the last one is remembered)', () => {
    const a = new Date('2026-12-01T00:00:00.001Z');
    const b = new Date('2027-01-07T23:00:00.000Z');
    expect([a, b, a, a, b].map(literal)).toEqual([
      "'2026-12-01 00:00:00.001'",
      "'2027-01-07 23:00:00.000'",
      "'2026-12-01 00:00:00.001'",
      "'2026-12-01 00:00:00.001'",
      "'2027-01-07 23:00:00.000'",
    ]);
  });
});

describe('statements', () => {
  it('builds one multi-row insert, and an upsert that updates only the merged columns', () => {
    expect(
      insertSql(
        't',
        ['a', 'b'],
        [
          [1, 'x'],
          [2, null],
        ],
      ),
    ).toBe("INSERT INTO `t` (a,b) VALUES (1,'x'),(2,NULL)");
    expect(upsertSql('t', ['a', 'b'], [[1, 'x']], ['b'])).toBe(
      "INSERT INTO `t` (a,b) VALUES (1,'x') ON DUPLICATE KEY UPDATE b=VALUES(b)",
    );
  });
});
