/**
 * The workloads attached on this host, persisted in the state directory so that a restarted agent
 * knows them without touching the kernel (restart without loss). Written atomically (rename).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface LocalWorkload {
  /** Identity; for workloads without one, `anon/<container id>`. */
  readonly id: string;
  readonly sticky: boolean;
  readonly tenant: string;
  readonly address: string;
  readonly netns: string;
  readonly ifname: string;
  readonly hostLink: string;
  readonly containerId: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly mtu: number;
  /** Link-layer address of the workload's interface (CNI results carry it). */
  readonly mac?: string;
  readonly attachedAtMs: number;
}

export class LocalWorkloadStore {
  readonly file: string;
  readonly #byId = new Map<string, LocalWorkload>();

  constructor(file: string) {
    this.file = file;
  }

  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const list = JSON.parse(text) as LocalWorkload[];
    this.#byId.clear();
    for (const w of list) this.#byId.set(w.id, w);
  }

  #saving: Promise<void> = Promise.resolve();

  /**
   * One write at a time: two attachments at once (CNI ADDs of two workloads) renamed the same temporary
   * file twice, and the second failed with ENOENT. Each write takes the store as it is when it runs.
   */
  #save(): Promise<void> {
    const next = this.#saving.then(
      () => this.#write(),
      () => this.#write(),
    );
    this.#saving = next;
    return next;
  }

  async #write(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o750 });
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, `${JSON.stringify([...this.#byId.values()], null, 1)}\n`, { mode: 0o640 });
    await rename(tmp, this.file);
  }

  get(id: string): LocalWorkload | undefined {
    return this.#byId.get(id);
  }

  byContainer(containerId: string, ifname?: string): LocalWorkload | undefined {
    for (const w of this.#byId.values()) {
      if (w.containerId === containerId && (ifname === undefined || w.ifname === ifname)) return w;
    }
    return undefined;
  }

  list(): LocalWorkload[] {
    return [...this.#byId.values()];
  }

  async put(w: LocalWorkload): Promise<void> {
    this.#byId.set(w.id, w);
    await this.#save();
  }

  async delete(id: string): Promise<boolean> {
    const had = this.#byId.delete(id);
    if (had) await this.#save();
    return had;
  }
}
