/**
 * The `segmesh` executable: one program, subcommands. Errors print as one clear message (what, where,
 * how to fix) and exit 1; SEGMESH_DEBUG=1 adds the stack.
 *
 * Each command's module is loaded only when that command runs: loading all of them (gRPC, libp2p,
 * testcontainers, ...) took longer than a small `segmesh plan`. `--help`, `help`, no command or an
 * unknown one load them all, so the listing (and commander's suggestions) stay complete.
 */
import { Command } from 'commander';

/** The commands in the order `--help` lists them, grouped by the module that defines them. */
const MODULES: ReadonlyArray<{ readonly names: readonly string[]; readonly load: () => Promise<Command[]> }> =
  [
    { names: ['plan'], load: async () => [(await import('./commands/plan.ts')).planCommand()] },
    { names: ['agent'], load: async () => [(await import('./commands/agent.ts')).agentCommand()] },
    { names: ['workload'], load: async () => [(await import('./commands/workload.ts')).workloadCommand()] },
    {
      names: ['status', 'hosts', 'workloads', 'routes', 'path', 'bgp', 'drain'],
      load: async () => (await import('./commands/inspect.ts')).inspectCommands(),
    },
    {
      names: ['policy', 'keygen'],
      load: async () => {
        const m = await import('./commands/policy.ts');
        return [m.policyCommand(), m.keygenCommand()];
      },
    },
    {
      names: ['dataplane'],
      load: async () => [(await import('./commands/dataplane.ts')).dataplaneCommand()],
    },
    { names: ['lab'], load: async () => [(await import('../lab/commands.ts')).labCommand()] },
    { names: ['version'], load: async () => [(await import('./commands/version.ts')).versionCommand()] },
  ];

/** The program with the commands `command` needs: its own module's, or every module's when undefined. */
export async function buildProgram(command?: string): Promise<Command> {
  const program = new Command('segmesh')
    .description('Segmesh: a gossip-based SRv6 control plane for container networks')
    .showHelpAfterError();
  const only = MODULES.find((m) => command !== undefined && m.names.includes(command));
  for (const m of only ? [only] : MODULES) {
    const commands = await m.load();
    const names = commands.map((c) => c.name());
    // A command added to a module must be named here too, or it would be reachable only via --help.
    if (names.join() !== m.names.join()) throw new Error(`cli: module lists ${names}, main.ts ${m.names}`);
    for (const c of commands) program.addCommand(c);
  }
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await (await buildProgram(argv[2])).parseAsync([...argv]);
    // Actions report failure through process.exitCode (lab status, policy apply, the demo's matrix).
    return Number(process.exitCode ?? 0) || 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`segmesh: ${message}\n`);
    if (process.env.SEGMESH_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv);
