/** `segmesh plan FILE`: what every host of a described fabric would own and install (a dry run). */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { fabricInputFromSpec, parseConfig } from '../../config/load.ts';
import { buildFabricView } from '../../srv6/fabric.ts';
import { computeHostPlan } from '../../srv6/pathcompute.ts';
import { formatHostPlan, planToJson } from '../plan-format.ts';

export function planCommand(): Command {
  return new Command('plan')
    .description('print, per host, the SIDs it owns and the routes (with segment lists) it would install')
    .argument('<file>', 'fabric description (kind: Fabric or Topology)')
    .option('--host <name>', 'only this host')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { host?: string; json?: boolean }) => {
      const parsed = parseConfig(await readFile(file, 'utf8'), file, ['Fabric', 'Topology']);
      if (parsed.kind !== 'Fabric' && parsed.kind !== 'Topology') throw new Error('unreachable');
      const view = buildFabricView(fabricInputFromSpec(parsed.spec));
      const hosts = opts.host ? [opts.host] : [...view.hosts.keys()];
      for (const h of hosts) {
        if (!view.hosts.has(h))
          throw new Error(`host ${h} is not in ${file}; hosts: ${[...view.hosts.keys()].join(', ')}`);
      }
      const plans = hosts.map((h) => computeHostPlan(view, h));
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify(
            plans.map((p) => planToJson(view, p)),
            null,
            2,
          )}\n`,
        );
        return;
      }
      const s = parsed.spec;
      process.stdout.write(
        `fabric ${s.name ?? file}: ${count(view.hosts.size, 'host')}, ${count(view.tenants.size, 'tenant')}, ` +
          `${count(view.workloads.size, 'workload')}, ${count(view.networkFunctions.size, 'network function')}, ` +
          `${count(view.policies.length, 'policy', 'policies')}\n\n`,
      );
      process.stdout.write(`${plans.map((p) => formatHostPlan(view, p)).join('\n\n')}\n`);
    });
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
