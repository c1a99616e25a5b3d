/**
 * `segmesh dataplane flush`: remove only what the agent owns (routes, rules, nexthops, nft tables, the
 * eBPF backend's pinned maps and program links) and restore the sysctls it changed.
 */
import { Command } from 'commander';
import { flushPins } from '../../dataplane/ebpf/backend.ts';
import { flushOwned } from '../../dataplane/index.ts';

export function dataplaneCommand(): Command {
  const cmd = new Command('dataplane').description("the agent's kernel state");
  cmd.addCommand(
    new Command('flush')
      .description(
        'remove the routes, rules, nexthops, nft tables and eBPF pins the agent owns; restore its sysctls',
      )
      .option(
        '--state-dir <dir>',
        "the agent's state directory (holds the recorded sysctls)",
        '/var/lib/segmesh',
      )
      .option('--netns <name>', 'in this network namespace instead of the current one')
      .option(
        '--bpf-pin-dir <dir>',
        "the eBPF backend's pins (dataplane.bpfPinDir of the agent configuration)",
        '/sys/fs/bpf/segmesh',
      )
      .action(async (o: { stateDir: string; netns?: string; bpfPinDir: string }) => {
        const r = await flushOwned({
          sysctlStateFile: `${o.stateDir}/sysctls.json`,
          ...(o.netns ? { netns: o.netns } : {}),
        });
        const pins = await flushPins(o.bpfPinDir);
        process.stdout.write(
          `removed ${r.routes} routes, ${r.rules} rules, ${r.nexthops} nexthops, nft tables ${r.nftTablesRemoved.join(', ') || 'none'}, ` +
            `${pins.length} eBPF pins (${pins.filter((p) => p.startsWith('link_')).length} program links); ` +
            `restored ${r.sysctlsRestored.length} sysctls\n`,
        );
      }),
  );
  return cmd;
}
