/** `segmesh agent --config FILE`: the per-host daemon. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import pino from 'pino';
import { Agent } from '../../agent/agent.ts';
import { ApiServer } from '../../agent/api.ts';
import { loadAgentSettings } from '../../agent/config.ts';
import { AgentMetrics } from '../../agent/metrics.ts';
import { claimRuntime, type Runtime } from '../../agent/runtime.ts';

/**
 * SIGTERM/SIGINT stop the agent within this bound, whatever it is doing (a drain is interrupted):
 * what has not finished by then is abandoned and the process exits 1. Below systemd's TimeoutStopSec.
 */
export const STOP_DEADLINE_MS = 8_000;

export function agentCommand(): Command {
  return new Command('agent')
    .description(
      'run the per-host agent (SIGTERM stops it and leaves forwarding in place; `segmesh drain` leaves the fabric)',
    )
    .requiredOption(
      '-c, --config <file>',
      'agent configuration (kind: AgentConfig)',
      process.env.SEGMESH_CONFIG ?? '/etc/segmesh/agent.yaml',
    )
    .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.SEGMESH_LOG_LEVEL ?? 'info')
    .action(async (opts: { config: string; logLevel: string }) => {
      const version = (
        JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
          version: string;
        }
      ).version;
      const logger = pino({ level: opts.logLevel, base: { name: 'segmesh-agent' } });
      const settings = await loadAgentSettings(opts.config);
      // Before anything on the host is touched: the state and runtime directories are this agent's
      // alone (a second agent refuses here, naming the first).
      const runtime: Runtime = await claimRuntime({
        socket: settings.spec.api.socket,
        group: settings.spec.api.group,
        stateDir: settings.stateDir,
        host: settings.hostName,
      });
      for (const w of runtime.warnings) logger.warn({ runtimeDir: runtime.runtimeDir }, w);
      const agent = new Agent({ logger }, settings);
      const metrics = new AgentMetrics(agent);
      const api = new ApiServer(agent, settings.spec.api, logger, version);

      let stopping = false;
      let stopped: () => void = () => undefined;
      const done = new Promise<void>((resolve) => {
        stopped = resolve;
      });
      const stop = (signal: string) => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting now');
          runtime.release();
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal, deadlineMs: STOP_DEADLINE_MS }, 'stopping (kernel state and gobgpd stay)');
        const deadline = setTimeout(() => {
          logger.error(
            { signal, deadlineMs: STOP_DEADLINE_MS },
            'the agent did not stop in time: exiting with what is left undone',
          );
          runtime.release();
          process.exit(1);
        }, STOP_DEADLINE_MS);
        void (async () => {
          // The agent first: it interrupts a drain in progress, whose API call then ends at once.
          const agentStopped = agent.stop();
          await api.stop();
          await metrics.close();
          await agentStopped;
          runtime.release();
          clearTimeout(deadline);
          stopped();
        })().catch((e: unknown) => {
          logger.error({ err: e }, 'error while stopping');
          runtime.release();
          process.exit(1);
        });
      };
      // Installed before the start: a signal during a slow start (gossip sync, gobgpd) stops it too.
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));

      try {
        await agent.start();
        if (stopping) return await done.then(() => process.exit(0));
        await api.start();
        await metrics.listen(settings.spec.metrics.listen);
      } catch (e) {
        if (stopping) return await done.then(() => process.exit(0)); // the start failed because it was stopped
        await agent.stop().catch(() => undefined);
        await api.stop(0).catch(() => undefined);
        await metrics.close().catch(() => undefined);
        runtime.release();
        throw e;
      }
      logger.info(
        { socket: settings.spec.api.socket, metrics: settings.spec.metrics.listen, version },
        'agent ready',
      );
      await done;
      // Exit now: a handle left open by a library (a socket, a timer) must not keep a stopped agent alive.
      process.exit(0);
    });
}
