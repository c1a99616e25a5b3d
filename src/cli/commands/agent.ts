/** `segmesh agent --config FILE`: the per-host daemon. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import pino from 'pino';
import { Agent } from '../../agent/agent.ts';
import { ApiServer } from '../../agent/api.ts';
import { loadAgentSettings } from '../../agent/config.ts';
import { AgentMetrics } from '../../agent/metrics.ts';

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
      const agent = new Agent({ logger }, settings);
      const metrics = new AgentMetrics(agent);
      const api = new ApiServer(agent, settings.spec.api, logger, version);
      await agent.start();
      await api.start();
      await metrics.listen(settings.spec.metrics.listen);
      logger.info(
        { socket: settings.spec.api.socket, metrics: settings.spec.metrics.listen, version },
        'agent ready',
      );
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            logger.warn({ signal }, 'second signal: exiting now');
            process.exit(1);
          }
          stopping = true;
          logger.info({ signal }, 'stopping (kernel state and gobgpd stay)');
          void (async () => {
            await api.stop();
            await metrics.close();
            await agent.stop();
            resolve();
          })();
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
    });
}
