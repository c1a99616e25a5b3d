/**
 * The `segmesh` executable: one program, subcommands. Errors print as one clear message (what, where,
 * how to fix) and exit 1; SEGMESH_DEBUG=1 adds the stack.
 */
import { Command } from 'commander';
import { labCommand } from '../lab/commands.ts';
import { agentCommand } from './commands/agent.ts';
import { dataplaneCommand } from './commands/dataplane.ts';
import { inspectCommands } from './commands/inspect.ts';
import { planCommand } from './commands/plan.ts';
import { keygenCommand, policyCommand } from './commands/policy.ts';
import { versionCommand } from './commands/version.ts';
import { workloadCommand } from './commands/workload.ts';

export function buildProgram(): Command {
  const program = new Command('segmesh')
    .description('Segmesh: a gossip-based SRv6 control plane for container networks')
    .showHelpAfterError();
  program.addCommand(planCommand());
  program.addCommand(agentCommand());
  program.addCommand(workloadCommand());
  for (const c of inspectCommands()) program.addCommand(c);
  program.addCommand(policyCommand());
  program.addCommand(keygenCommand());
  program.addCommand(dataplaneCommand());
  program.addCommand(labCommand());
  program.addCommand(versionCommand());
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
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
