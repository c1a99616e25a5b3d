/**
 * The sysctls the agent depends on, written through /proc/sys of the calling thread's network
 * namespace, with the original values recorded (in memory and in a state file) so that
 * `segmesh dataplane flush` can restore them, even from another process.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

// What the agent sets is the kernel backend's (pure); re-exported for existing callers.
export { AGENT_SYSCTLS, type HostSysctlOptions, hostSysctls, workloadSysctls } from './kernel/sysctls.ts';

/** e.g. `net.ipv6.conf.all.forwarding` -> /proc/sys/net/ipv6/conf/all/forwarding (interface names keep their dots). */
export function sysctlPath(key: string): string {
  const m =
    /^net\.ipv6\.conf\.(.+)\.([a-z0-9_]+)$/.exec(key) ?? /^net\.ipv4\.conf\.(.+)\.([a-z0-9_]+)$/.exec(key);
  if (m) return `/proc/sys/${key.startsWith('net.ipv6') ? 'net/ipv6' : 'net/ipv4'}/conf/${m[1]}/${m[2]}`;
  return `/proc/sys/${key.replaceAll('.', '/')}`;
}

export function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

export class SysctlRecorder {
  private readonly originals = new Map<string, string>();
  private readonly stateFile: string | undefined;

  /** `stateFile`: where originals survive a restart (e.g. /run/segmesh/sysctl.json); none = memory only. */
  constructor(stateFile?: string) {
    this.stateFile = stateFile;
    if (stateFile) {
      try {
        const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, string>;
        for (const [k, v] of Object.entries(saved)) this.originals.set(k, v);
      } catch {
        // no state yet
      }
    }
  }

  /** Sets `key`, remembering its first-seen value. Returns whether it changed. */
  set(key: string, value: string): boolean {
    const current = readSysctl(key);
    if (!this.originals.has(key)) {
      this.originals.set(key, current);
      this.save();
    }
    if (current === value) return false;
    writeFileSync(sysctlPath(key), value);
    return true;
  }

  recorded(): ReadonlyMap<string, string> {
    return this.originals;
  }

  /** Restores every recorded value that still exists (an interface may be gone); returns the keys restored. */
  restore(): string[] {
    const done: string[] = [];
    for (const [k, v] of this.originals) {
      try {
        if (readSysctl(k) !== v) writeFileSync(sysctlPath(k), v);
        done.push(k);
      } catch {
        // the interface went away with its sysctls
      }
    }
    this.originals.clear();
    this.save();
    return done;
  }

  private save(): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.originals)));
    renameSync(tmp, this.stateFile);
  }
}
