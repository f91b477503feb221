/**
 * `relais ingest FILE --isp ID [--dry-run] [--json]`: runs one file through an ISP's config,
 * the way an integrator tries a sample export. `--isp-config PATH` tries a draft config that
 * is not installed yet (dry run only). Without --dry-run the file goes through the ledger like
 * any other feed and is applied; the command prints the outcome. Either way a big file shows a
 * progress bar on a terminal (stderr), never with --json or when the output is not a TTY.
 */
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  configProblemsError,
  type IspConfig,
  loadConfigOrThrow,
  loadIspFile,
} from '../../config/load.js';
import { type DryRunReport, dryRunFeed } from '../../connectors/intake/dry-run.js';
import { copyHashed } from '../../connectors/intake/feed-files.js';
import { receiveFeed } from '../../connectors/intake/receive.js';
import type { CustomerRecord, MappingReject } from '../../mappings/customer-record.js';
import { createDb } from '../../platform/db.js';
import { ConfigError } from '../../platform/errors.js';
import { BUSY } from '../../platform/named-lock.js';
import { withServices } from '../command-context.js';
import { EXIT_FAILURE, EXIT_USAGE, ExitRequest } from '../exit.js';
import { openIntake } from '../intake-runtime.js';
import { commandLogger, configOption, out } from '../output.js';
import { progressBar } from '../progress.js';
import { printFeed } from './feeds.js';

interface IngestOptions {
  config?: string;
  isp?: string;
  ispConfig?: string;
  dryRun?: boolean;
  json?: boolean;
}

const SHOWN_RECORDS = 20;

function recordLine(r: CustomerRecord): string {
  const effective = r.effectiveAt ? r.effectiveAt.toISOString().slice(0, 10) : '-';
  const op = r.operation ? `${r.operation} ` : '';
  return `  line ${String(r.line).padEnd(7)} ${r.customerRef.padEnd(16)} ${op}${r.status.padEnd(9)} ${r.offer ?? '-'} [${r.modules.join(', ')}] ${effective}`;
}

function rejectLine(r: MappingReject): string {
  const value = r.value === null ? '' : ` "${r.value}"`;
  return `  line ${r.line}${r.field ? ` ${r.field}` : ''}${value}: ${r.reason}`;
}

function printReport(report: DryRunReport, shown: number): void {
  if (report.fileError) {
    out(`file refused: ${report.fileError.code}: ${report.fileError.message}`);
    return;
  }
  if (report.records > shown) out(`  ... and ${report.accepted - shown} more (use --json for all)`);
  out(`records: ${report.records} read, ${report.accepted} valid, ${report.rejected} rejected`);
  if (report.diff) {
    const d = report.diff;
    out(`diff against the stored state (${d.activeBefore} active subscribers):`);
    out(
      `  subscribe ${d.subscribes}, change ${d.changes}, suspend ${d.suspends}, resume ${d.resumes}, cancel ${d.cancels}`,
    );
  } else {
    out(`diff: not computed (${report.diffError})`);
  }
  if (report.decision) {
    const verdict = {
      apply: 'would be applied',
      hold: 'would be HELD for approval',
      refuse: 'would be REFUSED',
    }[report.decision.kind];
    out(`verdict: ${verdict}${report.decision.message ? `: ${report.decision.message}` : ''}`);
  }
  out('nothing was applied (dry run)');
}

async function dryRun(isp: IspConfig, file: string, options: IngestOptions): Promise<number> {
  const config = loadConfigOrThrow({ file: options.config });
  const log = commandLogger(config);
  const db = createDb(config.deployment.mysql, 'connector', log);
  const reachable = await db.raw('SELECT 1').then(
    () => true,
    () => false,
  );
  const bar = progressBar(!options.json);
  let shown = 0;
  const rejects: MappingReject[] = [];
  try {
    if (!options.json)
      out(`dry run of ${basename(file)} for ISP ${isp.id} (${isp.intake.mode} mode)`);
    const report = await dryRunFeed(reachable ? db : undefined, isp, file, {
      onRecord(item) {
        if (item.kind !== 'record') return;
        if (options.json) out(JSON.stringify({ type: 'record', ...item.record }));
        else if (shown++ < SHOWN_RECORDS) out(recordLine(item.record));
      },
      onReject(reject) {
        if (options.json) out(JSON.stringify({ type: 'reject', ...reject }));
        else rejects.push(reject);
      },
      onProgress: (p) => bar.update(p.bytesRead, p.totalBytes, 'reading'),
    });
    bar.stop();
    if (options.json) {
      out(JSON.stringify({ type: 'summary', ...report }));
    } else {
      printReport(report, Math.min(shown, SHOWN_RECORDS));
      if (rejects.length > 0) out(`rejects (${rejects.length}):`);
      for (const reject of rejects) out(rejectLine(reject));
    }
    return report.fileError ? EXIT_FAILURE : 0;
  } finally {
    bar.stop();
    await db.destroy();
  }
}

async function ingest(ispId: string, file: string, options: IngestOptions): Promise<number> {
  return withServices(options.config, async (services) => {
    const runtime = await openIntake(services);
    const isp = runtime.intake.isp(ispId);
    const received = await receiveFeed(runtime.deps, {
      ispId: isp.id,
      source: 'cli',
      name: basename(file),
      fill: (path) => copyHashed(file, path),
    });
    if (received.original) {
      out(
        `already received as ${received.original.id} (${received.original.status}); this copy is recorded as duplicate ${received.feed.id}`,
      );
    }
    // The drain may work through older waiting feeds first; the bar follows each in turn.
    const bar = progressBar(!options.json);
    let readBytes = 0;
    let result: Awaited<ReturnType<typeof runtime.intake.drain>>;
    try {
      result = await runtime.intake.drain(isp, {
        onProgress: (p) => {
          if (p.phase === 'read') readBytes = p.totalBytes;
          const label = {
            read: 'reading',
            diff: 'comparing',
            apply: `applying ${p.records} changes`,
          };
          bar.update(p.phase === 'read' ? p.bytesRead : readBytes, readBytes, label[p.phase]);
        },
      });
    } finally {
      bar.stop();
    }
    if (result === BUSY)
      out(
        'another process is processing this ISP; the feed is recorded and will be processed there',
      );
    const feed = await runtime.ledger.get(received.original?.id ?? received.feed.id);
    if (!feed) return EXIT_FAILURE;
    if (options.json) out(JSON.stringify(feed));
    else printFeed(feed);
    return feed.status === 'failed' ? EXIT_FAILURE : 0;
  });
}

export function registerIngestCommand(program: Command): void {
  configOption(program.command('ingest'))
    .argument('<file>', 'an export file of the ISP')
    .description('run one file through an ISP config: dry run to try a config, or apply it')
    .option('--isp <id>', 'the installed ISP config to use')
    .option('--isp-config <path>', 'a draft ISP config file to try (with --dry-run)')
    .option('--dry-run', 'apply nothing; print records, the diff summary and every reject')
    .option('--json', 'machine-readable output (one JSON object per line)')
    .action(async (file: string, options: IngestOptions) => {
      if (!existsSync(file)) {
        out(`no such file: ${file}`);
        throw new ExitRequest(EXIT_USAGE);
      }
      if (Boolean(options.isp) === Boolean(options.ispConfig)) {
        out('give exactly one of --isp ID or --isp-config PATH');
        throw new ExitRequest(EXIT_USAGE);
      }
      let code: number;
      if (options.ispConfig) {
        if (!options.dryRun) {
          out(
            'a draft config can only be tried with --dry-run; install it in the ISP config folder to ingest for real',
          );
          throw new ExitRequest(EXIT_USAGE);
        }
        const config = loadConfigOrThrow({ file: options.config });
        const { isp, problems } = loadIspFile(options.ispConfig, config.deployment);
        if (!isp) throw configProblemsError(problems);
        code = await dryRun(isp, resolve(file), options);
      } else if (options.dryRun) {
        const config = loadConfigOrThrow({ file: options.config });
        const isp = config.isps.get(options.isp as string);
        if (!isp)
          throw new ConfigError(
            'ISP_UNKNOWN',
            `no ISP ${options.isp} in ${config.deployment.paths.ispConfigDir}`,
          );
        code = await dryRun(isp, resolve(file), options);
      } else {
        code = await ingest(options.isp as string, resolve(file), options);
      }
      if (code !== 0) throw new ExitRequest(code);
    });
}
