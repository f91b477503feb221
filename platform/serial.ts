/**
 * Runs async operations one after another, in call order. An SFTP connection must never carry
 * two operations at once (ssh2-sftp-client: parallel calls on one client hang or truncate), and
 * the month-end schedules run one ISP at a time, so a start-up check of every ISP does not take
 * every database connection at once.
 */

/** A function that runs each operation only after every earlier one has settled. */
export type SerialRunner = <T>(operation: () => Promise<T>) => Promise<T>;

export function createSerialRunner(): SerialRunner {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(operation: () => Promise<T>): Promise<T> => {
    const result = tail.then(operation);
    // A failed operation must not block the ones queued behind it.
    tail = result.catch(() => undefined);
    return result;
  };
}
