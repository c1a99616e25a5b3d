/**
 * Packet captures for tests: tcpdump writes a pcap, tshark (an independent decoder) turns it into
 * JSON for assertions.
 */

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type Daemon, spawnDaemon } from './daemon.ts';
import { sh } from './exec.ts';
import { freshLogPath, runLogDir } from './run.ts';

/** One packet as `tshark -T json` prints it. */
export interface TsharkPacket {
  readonly _source: { readonly layers: Record<string, unknown> };
}

export interface CaptureOptions {
  readonly netns: string;
  readonly ifname: string;
  /** A pcap filter, e.g. `ip6` or `tcp port 179`. */
  readonly filter?: string;
  readonly name?: string;
}

let captures = 0;

export class Capture {
  readonly file: string;
  readonly #daemon: Daemon;
  constructor(file: string, daemon: Daemon) {
    this.file = file;
    this.#daemon = daemon;
  }

  static async start(opts: CaptureOptions): Promise<Capture> {
    // A name no earlier capture of this run used (its log tells when tcpdump listens).
    const name = basename(freshLogPath(opts.name ?? `capture-${++captures}-${opts.ifname}`, '.log'), '.log');
    const file = `${runLogDir()}/${name}.pcap`;
    const args = [
      '-i',
      opts.ifname,
      '--immediate-mode',
      '-U',
      '-n',
      '-s',
      '0',
      '-w',
      file,
      ...(opts.filter ? [opts.filter] : []),
    ];
    const daemon = await spawnDaemon({
      name,
      command: 'tcpdump',
      args,
      netns: opts.netns,
      // tcpdump says "listening on IF" on stderr once the socket is bound.
      ready: () => {
        try {
          return readFileSync(`${runLogDir()}/${name}.log`, 'utf8').includes('listening on');
        } catch {
          return false;
        }
      },
    });
    return new Capture(file, daemon);
  }

  /** Stops tcpdump (SIGINT flushes the file). */
  async stop(): Promise<string> {
    if (this.#daemon.alive()) {
      this.#daemon.kill('SIGINT');
      await Promise.race([this.#daemon.exited, new Promise((r) => setTimeout(r, 3_000))]);
      await this.#daemon.stop();
    }
    return this.file;
  }

  /** Stops the capture and decodes it with tshark; `displayFilter` is a tshark `-Y` filter. */
  async decode(displayFilter?: string): Promise<TsharkPacket[]> {
    await this.stop();
    return decodePcap(this.file, displayFilter);
  }
}

export async function decodePcap(file: string, displayFilter?: string): Promise<TsharkPacket[]> {
  const out = await sh(
    'tshark',
    ['-n', '-r', file, '-T', 'json', ...(displayFilter ? ['-Y', displayFilter] : [])],
    {
      timeoutMs: 60_000,
    },
  );
  return JSON.parse(out.stdout || '[]') as TsharkPacket[];
}

/** One captured packet's Segment Routing Header, as tshark (an independent decoder) reads it. */
export interface SrhView {
  /** Outer destination. */
  readonly dst: string;
  /** The SRH's Next Header (41: IPv6 inside, 4: IPv4). */
  readonly nextHeader: number;
  readonly segmentsLeft: number;
  readonly lastEntry: number;
  /** SRH order (segments[0] is the last segment). */
  readonly segments: string[];
}

/** tshark's `-T fields` for the packets of `file` matching `displayFilter`: one row of field texts each. */
export async function tsharkFields(
  file: string,
  displayFilter: string,
  fields: readonly string[],
): Promise<string[][]> {
  const out = await sh('tshark', [
    '-n',
    '-r',
    file,
    '-Y',
    displayFilter,
    '-T',
    'fields',
    '-E',
    'separator=|',
    ...fields.flatMap((x) => ['-e', x]),
  ]);
  // One field has no separator: then every non-empty line is a row.
  const row = fields.length > 1 ? (l: string) => l.includes('|') : (l: string) => l !== '';
  return out.stdout
    .split('\n')
    .filter(row)
    .map((l) => l.split('|'));
}

/** Stops the capture and decodes the SRH of each packet that has one. */
export async function srhPackets(cap: Capture): Promise<SrhView[]> {
  const rows = await tsharkFields(await cap.stop(), 'ipv6.routing', [
    'ipv6.dst',
    'ipv6.routing.nxt',
    'ipv6.routing.segleft',
    'ipv6.routing.srh.last_entry',
    'ipv6.routing.srh.addr',
  ]);
  return rows.map(([dst, nh, sl, le, addrs]) => ({
    dst: dst!.split(',')[0]!,
    nextHeader: Number(nh),
    segmentsLeft: Number(sl),
    lastEntry: Number(le),
    segments: addrs ? addrs.split(',') : [],
  }));
}
