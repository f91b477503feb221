import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACT_CENSOR } from './logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination }) };
}

describe('logger', () => {
  it('writes JSON with an ISO time, a level label and the message', () => {
    const { lines, log } = capture();
    log.info({ feedId: 'feed_1', records: 3 }, 'feed applied');
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'feed applied',
      feedId: 'feed_1',
      records: 3,
    });
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('censors personal and secret fields at any depth', () => {
    const { lines, log } = capture();
    log.warn(
      {
        customerRef: 'C-0042',
        email: 'jean@example.fr',
        record: { customerRef: 'C-0043', contactEmail: 'x@y.fr', offer: 'BASIC' },
        sftp: { connection: { password: 'hunter2', host: 'sftp.isp' } },
        activationKey: 'ABCD-EFGH',
      },
      'row rejected',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of [
      'C-0042',
      'C-0043',
      'jean@example.fr',
      'x@y.fr',
      'hunter2',
      'ABCD-EFGH',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({
      customerRef: REDACT_CENSOR,
      record: { offer: 'BASIC' },
      sftp: { connection: { host: 'sftp.isp' } },
    });
  });

  it('keeps pinned fields on child loggers', () => {
    const { lines, log } = capture();
    log.child({ isp: 'demo-fai' }).debug({ row: 4 }, 'row mapped');
    expect(lines[0]).toMatchObject({ isp: 'demo-fai', row: 4, level: 'debug' });
  });
});
