/**
 * Graceful shutdown. Components register a closer as they start; on SIGINT or SIGTERM the
 * closers run in reverse order (stop taking work, then finish it, then close connections),
 * bounded by a timeout after which the process exits anyway: a stop must never hang, and jobs
 * cut off are retried by the queue.
 */
import type { Logger } from './logger.js';

type Closer = () => Promise<void> | void;

export class Lifecycle {
  private readonly closers: { name: string; close: Closer }[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {}

  /** Registers a closer; closers run last-registered first. */
  onShutdown(name: string, close: Closer): void {
    this.closers.push({ name, close });
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /**
   * Runs every closer once, even when called again or when one fails. Resolves `true` when all
   * finished within the bound, `false` when the timeout cut them off.
   */
  async shutdown(reason: string): Promise<boolean> {
    if (!this.stopping) this.stopping = this.runClosers(reason);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.timeoutMs);
      timer.unref();
    });
    const finished = await Promise.race([this.stopping.then(() => true as const), timedOut]);
    clearTimeout(timer);
    if (!finished) {
      this.log.error({ code: 'SHUTDOWN_TIMEOUT', timeoutMs: this.timeoutMs }, 'shutdown timed out');
    }
    return finished;
  }

  private async runClosers(reason: string): Promise<void> {
    // A service stopping is news; a CLI command closing its connections is not.
    const level = reason.startsWith('SIG') ? 'info' : 'debug';
    this.log[level]({ reason }, 'shutting down');
    for (const { name, close } of [...this.closers].reverse()) {
      try {
        await close();
        this.log.debug({ component: name }, 'component stopped');
      } catch (err) {
        this.log.error({ err, component: name }, 'component failed to stop cleanly');
      }
    }
    this.log[level]('shutdown complete');
  }

  /** Wires SIGINT and SIGTERM to a bounded shutdown followed by exit. A second signal exits at once. */
  installSignalHandlers(exit: (code: number) => void = process.exit): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.isStopping) {
        this.log.warn({ signal }, 'second signal, exiting now');
        exit(1);
        return;
      }
      void this.shutdown(signal).then((clean) => exit(clean ? 0 : 1));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
}
