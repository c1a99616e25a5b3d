/**
 * A lab in agent mode as an operator runs it: publish the fabric policy (tenants signed by the lab's
 * operator key) through the first host's agent, attach every workload of the topology through the CNI
 * plugin inside its host (as a container runtime would: CNI_* environment, network configuration on
 * stdin), and wait until every agent sees every workload.
 */

import type { Progress } from './engine.ts';
import { LabNodeError } from './errors.ts';
import type { RunningLab } from './lab.ts';
import { AGENT_SOCKET, type LabWorkload, OPERATOR_KEY_PATH, POLICY_PATH } from './plan.ts';
import { waitUntil } from './wait.ts';

/** A workload placed on a host of the lab. */
export interface PlacedWorkload extends LabWorkload {
  readonly host: string;
}

/** Every workload of the topology with its (initial) host. */
export function topologyWorkloads(lab: RunningLab): PlacedWorkload[] {
  return [...lab.plan.hosts].flatMap(([host, h]) => h.workloads.map((w) => ({ ...w, host })));
}

/** The first host: it holds the operator key and publishes the policy. */
export function policyHost(lab: RunningLab): string {
  const first = lab.plan.hosts.keys().next();
  if (first.done) throw new Error(`lab ${lab.plan.prefix} has no hosts`);
  return first.value;
}

/**
 * Signs and publishes the policy through the first host's agent (`segmesh policy apply`). Retries
 * while the agent is still starting; throws with the command's output when the agent refuses a record.
 */
export async function applyPolicy(lab: RunningLab, progress: Progress): Promise<string> {
  const host = policyHost(lab);
  let last = '';
  await waitUntil(
    async () => {
      const r = await lab.exec(host, [
        'segmesh',
        'policy',
        'apply',
        POLICY_PATH,
        '--operator-key',
        OPERATOR_KEY_PATH,
        '--socket',
        AGENT_SOCKET,
      ]);
      last = r.output.trim();
      // An agent that answered and refused a record will refuse it again: fail now.
      if (r.exitCode !== 0 && /: (?!applied)\w+/.test(r.stdout))
        throw new LabNodeError(host, `segmesh policy apply refused: ${last}`);
      return r.exitCode === 0;
    },
    { timeoutMs: 60_000, what: () => `${host}: segmesh policy apply (last output: ${last})` },
  );
  progress(`policy published through ${host}: ${last.replace(/\n/g, ', ')}`);
  return last;
}

/** The environment a container runtime gives the plugin, as `env` arguments. */
function cniEnv(command: 'ADD' | 'DEL' | 'CHECK', w: PlacedWorkload, containerId: string): string[] {
  return [
    `CNI_COMMAND=${command}`,
    `CNI_CONTAINERID=${containerId}`,
    `CNI_NETNS=/var/run/netns/${w.netns}`,
    'CNI_IFNAME=eth0',
    'CNI_PATH=/opt/segmesh/bin',
    `CNI_ARGS=IgnoreUnknown=1;SEGMESH_IDENTITY=${w.name}`,
  ];
}

/** The network configuration the plugin reads on stdin (the tenant's, with the workload's labels). */
function netConf(w: PlacedWorkload): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: `segmesh-${w.tenant}`,
    type: 'segmesh-cni',
    tenant: w.tenant,
    agentSocket: AGENT_SOCKET,
    labels: w.labels,
  });
}

/** The container id a runtime would pass: one per workload and host (a move starts a new container). */
export function containerIdOf(w: PlacedWorkload): string {
  return `lab-${w.host}-${w.netns}`;
}

export interface CniOutcome {
  readonly exitCode: number;
  /** The plugin's stdout: a CNI result or error object (JSON). */
  readonly result: { ips?: { address: string }[]; code?: number; msg?: string; details?: string };
  readonly raw: string;
}

/** Runs `segmesh-cni` in the workload's host as a runtime does. */
export async function runCni(
  lab: RunningLab,
  command: 'ADD' | 'DEL' | 'CHECK',
  w: PlacedWorkload,
  prevResult?: unknown,
): Promise<CniOutcome> {
  const conf =
    prevResult === undefined ? netConf(w) : JSON.stringify({ ...JSON.parse(netConf(w)), prevResult });
  const r = await lab.exec(w.host, [
    'sh',
    '-c',
    'printf %s "$0" | env "$@" segmesh-cni',
    conf,
    ...cniEnv(command, w, containerIdOf(w)),
  ]);
  let result: CniOutcome['result'] = {};
  try {
    result = r.stdout.trim() ? (JSON.parse(r.stdout) as CniOutcome['result']) : {};
  } catch {
    result = { msg: r.output.trim() };
  }
  return { exitCode: r.exitCode, result, raw: r.output.trim() };
}

/** CNI ADD of one workload; retries while its tenant has not reached the host's agent yet. */
export async function attachWorkload(lab: RunningLab, w: PlacedWorkload): Promise<string> {
  let last: CniOutcome | undefined;
  await waitUntil(
    async () => {
      last = await runCni(lab, 'ADD', w);
      if (last.exitCode === 0) return true;
      const why = `${last.result.msg ?? ''} ${last.result.details ?? ''}`;
      // The policy is still spreading by gossip, or the agent is still starting: try again.
      if (/unknown tenant|not reachable|try again/i.test(why) || last.result.code === 11) return false;
      throw new LabNodeError(w.host, `CNI ADD of ${w.name} failed: ${last.raw}`);
    },
    { timeoutMs: 60_000, what: () => `${w.host}: CNI ADD of ${w.name} (last: ${last?.raw ?? 'none'})` },
  );
  const address = last?.result.ips?.[0]?.address.split('/')[0];
  if (!address) throw new LabNodeError(w.host, `CNI ADD of ${w.name} returned no address: ${last?.raw}`);
  return address;
}

/** CNI DEL of one workload (idempotent, as the spec asks). */
export async function detachWorkload(lab: RunningLab, w: PlacedWorkload): Promise<void> {
  const r = await runCni(lab, 'DEL', w);
  if (r.exitCode !== 0) throw new LabNodeError(w.host, `CNI DEL of ${w.name} failed: ${r.raw}`);
}

/** A workload as `segmesh workloads --json` lists it. */
export interface AgentWorkload {
  readonly identity: string;
  readonly host: string;
  readonly address: string;
  readonly tenant: string;
  readonly deliverySid: string;
}

/** A host's view through its agent (`segmesh workloads --json`). */
export async function agentWorkloads(lab: RunningLab, host: string): Promise<AgentWorkload[]> {
  const out = await lab.run(host, ['segmesh', 'workloads', '--json', '--socket', AGENT_SOCKET]);
  return JSON.parse(out) as AgentWorkload[];
}

/** Waits until every host's agent places every given workload where it is. */
export async function waitWorkloadsEverywhere(
  lab: RunningLab,
  placed: readonly PlacedWorkload[],
  timeoutMs = 60_000,
): Promise<void> {
  let missing: string[] = [];
  await waitUntil(
    async () => {
      missing = [];
      for (const host of lab.plan.hosts.keys()) {
        const seen = new Map((await agentWorkloads(lab, host)).map((w) => [w.identity, w.host]));
        for (const w of placed)
          if (seen.get(w.name) !== w.host) missing.push(`${host} lacks ${w.name}@${w.host}`);
      }
      return missing.length === 0;
    },
    { timeoutMs, what: () => `every agent sees every workload (${missing.slice(0, 4).join('; ')})` },
  );
}

/**
 * Publishes the policy and attaches every workload of the topology; returns the workloads with the
 * addresses the agents gave them (checked against the model's: the address is a function of the
 * identity and the tenant prefix, so the lab and the agents must agree).
 */
export async function startFabric(lab: RunningLab, progress: Progress): Promise<PlacedWorkload[]> {
  await applyPolicy(lab, progress);
  const placed: PlacedWorkload[] = [];
  // One host at a time, its workloads in parallel: the agent serialises them anyway.
  for (const host of lab.plan.hosts.keys()) {
    const attached = await Promise.all(
      topologyWorkloads(lab)
        .filter((w) => w.host === host)
        .map(async (w) => {
          const address = await attachWorkload(lab, w);
          // A policy other than the topology's (segmesh lab demo --policy) may move the prefixes.
          if (address !== w.address)
            progress(`workload ${w.name}: the agent gave ${address}, the topology's model ${w.address}`);
          progress(`workload ${w.name}: ${address} on ${host} (CNI ADD)`);
          return { ...w, address };
        }),
    );
    placed.push(...attached);
  }
  await waitWorkloadsEverywhere(lab, placed);
  progress(`every agent sees ${placed.length} workloads`);
  return placed;
}
