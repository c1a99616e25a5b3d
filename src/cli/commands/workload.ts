/** `segmesh workload add|del`: the local API for runtimes without CNI, and for tests. */
import { Command } from 'commander';
import { AgentClient, DEFAULT_SOCKET } from '../../agent/client.ts';
import { plain, printJson } from '../output.ts';

function labels(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new Error(`--label ${value}: write it as key=value`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function workloadCommand(): Command {
  const cmd = new Command('workload').description('attach and detach workloads on this host');
  cmd.addCommand(
    new Command('add')
      .description('attach a network namespace to a tenant')
      .requiredOption('--netns <path>', 'the workload network namespace (a name under /run/netns or a path)')
      .requiredOption('--tenant <name>', 'tenant to join')
      .option(
        '--identity <id>',
        'stable identity: the address follows it across hosts (without it: not sticky)',
      )
      .option('--ifname <name>', 'interface inside the workload (at most 15 bytes)', 'eth0')
      .option('--label <key=value>', 'workload label (repeatable)', labels, {})
      .option('--address <ipv6>', 'a fixed address inside the tenant prefix')
      .option('--socket <path>', 'agent API socket', DEFAULT_SOCKET)
      .option('--json', 'machine-readable output')
      .action(
        async (o: {
          netns: string;
          tenant: string;
          identity?: string;
          ifname: string;
          label: Record<string, string>;
          address?: string;
          socket: string;
          json?: boolean;
        }) => {
          const netns = o.netns.includes('/') ? o.netns : `/run/netns/${o.netns}`;
          const client = new AgentClient(o.socket);
          try {
            const r = await client.call('addWorkload', {
              identity: o.identity ?? '',
              tenant: o.tenant,
              netns,
              ifname: o.ifname,
              containerId: '',
              labels: o.label,
              address: o.address ?? '',
            });
            if (o.json) return printJson(plain(r));
            process.stdout.write(
              `attached ${netns} to ${o.tenant}: ${r.address}/${r.prefixLength} on ${r.ifname} (host link ${r.hostLink}, mtu ${r.mtu})` +
                `${r.moved ? ', moved here from another host' : ''}` +
                `${r.sticky ? '' : '\nnote: no --identity: the address is not sticky; recreated elsewhere it gets a new one'}\n`,
            );
          } finally {
            client.close();
          }
        },
      ),
  );
  cmd.addCommand(
    new Command('del')
      .description('detach a workload (idempotent)')
      .option('--identity <id>', 'identity given at add')
      .option('--netns <path>', 'the namespace given at add (for workloads without identity)')
      .option('--socket <path>', 'agent API socket', DEFAULT_SOCKET)
      .action(async (o: { identity?: string; netns?: string; socket: string }) => {
        if (!o.identity && !o.netns)
          throw new Error('give --identity (or --netns for a workload added without one)');
        const netns = o.netns && !o.netns.includes('/') ? `/run/netns/${o.netns}` : o.netns;
        const client = new AgentClient(o.socket);
        try {
          const r = await client.call('deleteWorkload', {
            identity: o.identity ?? (netns ? `anon/${netns}` : ''),
            containerId: '',
          });
          process.stdout.write(r.existed ? 'detached\n' : 'nothing to detach\n');
        } finally {
          client.close();
        }
      }),
  );
  return cmd;
}
