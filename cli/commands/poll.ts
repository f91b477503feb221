/**
 * `relais poll [--isp ID]`: polls ISP inboxes now, as the schedule would, and prints what came
 * in. Without --isp, every enabled ISP with a polled transport (local folder or SFTP).
 */
import type { Command } from 'commander';
import { pollIsp } from '../../connectors/intake/poll.js';
import { InternalError, isRelaisError } from '../../platform/errors.js';
import { BUSY } from '../../platform/named-lock.js';
import { withServices } from '../command-context.js';
import { EXIT_FAILURE, ExitRequest } from '../exit.js';
import { openIntake } from '../intake-runtime.js';
import { configOption, out } from '../output.js';

export function registerPollCommand(program: Command): void {
  configOption(program.command('poll'))
    .description('poll ISP inboxes now (local folder or SFTP) and process what is complete')
    .option('--isp <id>', 'poll this ISP only')
    .action(async (options: { config?: string; isp?: string }) => {
      await withServices(options.config, async (services) => {
        const runtime = await openIntake(services);
        const isps = options.isp
          ? [runtime.intake.isp(options.isp)]
          : [...services.config.isps.values()].filter(
              (isp) => isp.enabled && isp.intake.transport.type !== 'http',
            );
        let failed = 0;
        for (const isp of isps) {
          let result: Awaited<ReturnType<typeof pollIsp>>;
          try {
            result = await pollIsp(runtime.deps, runtime.intake, isp);
          } catch (err) {
            if (!isRelaisError(err) || err instanceof InternalError) throw err;
            out(`${isp.id}: poll failed, ${err.code}: ${err.message}`);
            failed++;
            continue;
          }
          if (result === BUSY) {
            out(`${isp.id}: another process is polling it right now`);
            continue;
          }
          if (result.received.length === 0) out(`${isp.id}: nothing ready in the inbox`);
          for (const r of result.received) out(`${isp.id}: ${r.name} ${r.status} (${r.feedId})`);
          for (const s of result.skipped) out(`${isp.id}: ${s.name} skipped, ${s.reason}`);
        }
        if (failed > 0) throw new ExitRequest(EXIT_FAILURE);
      });
    });
}
