/**
 * The seg6 kernel VM's boot files, built and cached by scripts/vm-image.sh (Debian's cloud kernel, a
 * busybox stage-1 initramfs, an ext4 root file system; see there for the cache key and location).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface VmImage {
  /** The cache directory of this image: /var/cache/segmesh/vm/<hash> unless SEGMESH_VM_CACHE is set. */
  readonly dir: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly rootImage: string;
  /** The guest kernel's release, e.g. 6.1.0-57-cloud-amd64. */
  readonly kernelVersion: string;
}

export const PROJECT_ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');

export interface EnsureImageOptions {
  /** Do not build: fail when the image is not in the cache. */
  readonly checkOnly?: boolean;
  /** Overrides SEGMESH_VM_CACHE (the bench's cold build uses a fresh folder). */
  readonly cacheDir?: string;
  /** Progress lines of the build (`vm-image: ...`). */
  readonly progress?: (line: string) => void;
}

/** Builds the image if it is not cached (about 30 s to minutes cold, depending on the mirror), returns it. */
export async function ensureVmImage(opts: EnsureImageOptions = {}): Promise<VmImage> {
  const env = { ...process.env };
  if (opts.cacheDir) env.SEGMESH_VM_CACHE = opts.cacheDir;
  const args = [`${PROJECT_ROOT}/scripts/vm-image.sh`, ...(opts.checkOnly ? ['--check'] : [])];
  const child = spawn('bash', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString('utf8');
  });
  child.stderr.on('data', (b: Buffer) => {
    const text = b.toString('utf8');
    stderr += text;
    for (const line of text.split('\n')) if (line.trim()) opts.progress?.(line);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot run scripts/vm-image.sh: ${e.message}`)));
    child.on('close', resolve);
  });
  if (code !== 0) {
    if (opts.checkOnly) throw new Error('the VM image is not built: run bash scripts/vm-image.sh');
    throw new Error(
      `scripts/vm-image.sh failed (exit ${code}):\n${stderr.trim().split('\n').slice(-15).join('\n')}`,
    );
  }
  const dir = stdout.trim().split('\n').at(-1) ?? '';
  return {
    dir,
    kernel: `${dir}/vmlinuz`,
    initrd: `${dir}/initrd.gz`,
    rootImage: `${dir}/root.img`,
    kernelVersion: readFileSync(`${dir}/kernel-version`, 'utf8').trim(),
  };
}
