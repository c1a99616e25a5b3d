/**
 * Prometheus metrics, /healthz and /readyz on a local HTTP listener (127.0.0.1 by default).
 * Values are read from the components at scrape time: nothing on the forwarding path counts for us.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BackendCounters } from '../dataplane/backend.ts';
import { formatIpv6 } from '../srv6/address.ts';
import type { Agent } from './agent.ts';

/** A SID item key (`s|<hex>`) as the address people read. */
function sidText(key: string): string {
  return formatIpv6(BigInt(`0x${key.slice(2)}`));
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram;
  readonly reconcileErrors: Counter;
  readonly #agent: Agent;
  #server: Server | undefined;

  constructor(agent: Agent) {
    this.#agent = agent;
    const r = this.registry;
    const a = agent;
    new Gauge({
      name: 'segmesh_workloads',
      help: 'Workloads in the fabric view, by locality',
      labelNames: ['locality'],
      registers: [r],
      collect() {
        const local = a.localWorkloads().length;
        this.set({ locality: 'local' }, local);
        this.set({ locality: 'remote' }, (a.view?.workloads.size ?? local) - local);
      },
    });
    new Gauge({
      name: 'segmesh_hosts',
      help: 'Hosts in the fabric view',
      registers: [r],
      collect() {
        this.set(a.view?.hosts.size ?? 0);
      },
    });
    new Gauge({
      name: 'segmesh_routes',
      help: 'Routes the agent wants installed',
      registers: [r],
      collect() {
        this.set(a.lastReconcile?.routes ?? 0);
      },
    });
    // A counter (rate() and increase() work on it): gossip keeps the running totals, so each scrape
    // sets the counter to them.
    new Counter({
      name: 'segmesh_gossip_rejected_total',
      help: 'Gossip input rejected (records, heartbeats, connections, anti-entropy), by reason; not_member: from a node outside the membership',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        const stats = a.gossip?.stats();
        this.reset();
        for (const [reason, n] of Object.entries(stats?.rejected ?? {})) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: 'segmesh_gossip_peers',
      help: 'Connected gossip peers',
      registers: [r],
      collect() {
        this.set(a.gossip?.stats().peers ?? 0);
      },
    });
    new Gauge({
      name: 'segmesh_bgp_routes',
      help: 'BGP routes advertised and learned',
      labelNames: ['direction'],
      registers: [r],
      collect() {
        const s = a.bgp?.stats();
        this.set({ direction: 'advertised' }, s?.advertised ?? 0);
        this.set({ direction: 'learned' }, s?.learned ?? 0);
      },
    });
    new Gauge({
      name: 'segmesh_bgp_invalid_routes',
      help: 'Received BGP routes ignored, by reason',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        for (const [reason, n] of Object.entries(a.bgp?.stats().invalid ?? {})) this.set({ reason }, n);
      },
    });
    // The data plane's own counters, read from the kernel at scrape time (BPF maps or nft and SID
    // counters): one readCounters() serves the metrics of one scrape.
    let counters: Promise<BackendCounters | undefined> | undefined;
    const readCounters = () => {
      counters ??= (a.backend?.readCounters() ?? Promise.resolve(undefined))
        .catch(() => undefined)
        .finally(() => setTimeout(() => (counters = undefined), 100).unref());
      return counters;
    };
    new Gauge({
      name: 'segmesh_dataplane_info',
      help: 'The data-plane backend in use (1) and why it was chosen',
      labelNames: ['backend', 'why'],
      registers: [r],
      collect() {
        this.reset();
        const b = a.backendInfo;
        if (b) this.set({ backend: b.name, why: b.why }, 1);
      },
    });
    new Counter({
      name: 'segmesh_dataplane_drops_total',
      help: 'Packets the data plane dropped at a workload link, by link and reason (kernel counters)',
      labelNames: ['link', 'reason'],
      registers: [r],
      async collect() {
        const c = await readCounters();
        this.reset();
        for (const [link, d] of c?.attachments ?? []) {
          if (link === '*') continue; // the eBPF backend's host total; the links are below
          this.inc({ link, reason: 'spoofed_source' }, d.spoofedSource);
          this.inc({ link, reason: 'sid_block' }, d.sidBlock);
          this.inc({ link, reason: 'host_address' }, d.hostAddress);
        }
      },
    });
    new Counter({
      name: 'segmesh_dataplane_verdicts_total',
      help: 'Verdicts of the eBPF programs, by reason (forwarding and drops; eBPF backend only)',
      labelNames: ['reason'],
      registers: [r],
      async collect() {
        const c = await readCounters();
        this.reset();
        for (const [reason, n] of c?.reasons ?? []) if (n > 0n) this.inc({ reason }, Number(n));
      },
    });
    new Counter({
      name: 'segmesh_sid_packets_total',
      help: "Packets processed by this host's local SIDs, by SID (kernel counters)",
      labelNames: ['sid'],
      registers: [r],
      async collect() {
        const c = await readCounters();
        this.reset();
        for (const [key, v] of c?.sids ?? []) this.inc({ sid: sidText(key) }, Number(v.packets));
      },
    });
    this.reconcileDuration = new Histogram({
      name: 'segmesh_reconcile_seconds',
      help: 'Duration of reconcile runs',
      buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    this.reconcileErrors = new Counter({
      name: 'segmesh_reconcile_errors_total',
      help: 'Reconcile runs that failed (kernel state left as it was)',
      registers: [r],
    });
    agent.onReconcile = (report) => {
      this.reconcileDuration.observe(report.durationMs / 1000);
      if (report.error) this.reconcileErrors.inc();
    };
  }

  async listen(address: string): Promise<void> {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(colon + 1));
    this.#server = createServer((req, res) => {
      if (req.url === '/metrics') {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          (e: Error) => {
            res.writeHead(500);
            res.end(e.message);
          },
        );
      } else if (req.url === '/healthz') {
        res.writeHead(200);
        res.end('ok\n');
      } else if (req.url === '/readyz') {
        const ready = this.#agent.ready;
        res.writeHead(ready ? 200 : 503);
        res.end(ready ? 'ready\n' : `not ready: ${this.#agent.lastReconcile?.error ?? 'starting'}\n`);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(port, host, () => resolve());
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
