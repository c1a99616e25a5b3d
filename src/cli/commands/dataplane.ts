/** `segmesh dataplane flush`: remove only what the agent owns and restore the sysctls it changed. */
import { Command } from 'commander';
import { flushOwned } from '../../dataplane/index.ts';

export function dataplaneCommand(): Command {
  const cmd = new Command('dataplane').description("the agent's kernel state");
  cmd.addCommand(
    new Command('flush')
      .description(
        'remove routes, rules, nexthops and nft tables the agent owns; restore the sysctls it changed',
      )
      .option(
        '--state-dir <dir>',
        "the agent's state directory (holds the recorded sysctls)",
        '/var/lib/segmesh',
      )
      .option('--netns <name>', 'in this network namespace instead of the current one')
      .action(async (o: { stateDir: string; netns?: string }) => {
        const r = await flushOwned({
          sysctlStateFile: `${o.stateDir}/sysctls.json`,
          ...(o.netns ? { netns: o.netns } : {}),
        });
        process.stdout.write(
          `removed ${r.routes} routes, ${r.rules} rules, ${r.nexthops} nexthops, nft tables ${r.nftTablesRemoved.join(', ') || 'none'}; ` +
            `restored ${r.sysctlsRestored.length} sysctls\n`,
        );
      }),
  );
  return cmd;
}
