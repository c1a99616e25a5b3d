/**
 * podman (Debian 4.3) with its CNI backend, calling our plugin: configuration files, a tiny image
 * imported from a busybox root file system (no registry), containers named and labelled with the run
 * prefix. Settings measured in shared/research/container-runtimes.md.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { addSweepHook, runLogDir, runPrefix, sh } from '../../harness/index.ts';

export const IMAGE_REPO = 'localhost/segmesh-test-busybox';

export interface Podman {
  readonly env: NodeJS.ProcessEnv;
  readonly image: string;
  run(
    args: readonly string[],
    opts?: { allowFail?: boolean; env?: NodeJS.ProcessEnv },
  ): Promise<{ stdout: string; stderr: string; code: number | null }>;
}

/** A CONTAINERS_CONF that forces the CNI backend and finds our plugin; a network for `tenant`. */
export async function podmanFor(network: string, tenant: string, agentSocket: string): Promise<Podman> {
  const dir = `${runLogDir()}/podman`;
  const netDir = `${dir}/net.d`;
  mkdirSync(netDir, { recursive: true });
  const pluginDir = `${process.cwd()}/bin`;
  writeFileSync(
    `${dir}/containers.conf`,
    `[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["${pluginDir}", "/usr/lib/cni"]
network_config_dir = "${netDir}"
`,
  );
  writeFileSync(
    `${netDir}/${network}.conflist`,
    JSON.stringify({
      cniVersion: '1.0.0',
      name: network,
      plugins: [{ type: 'segmesh-cni', tenant, agentSocket }],
    }),
  );
  const env = { ...process.env, CONTAINERS_CONF: `${dir}/containers.conf` };
  const image = await busyboxImage(env);
  addSweepHook(async (dead) => {
    const ps = await sh('podman', ['ps', '-a', '--format', '{{.Names}}'], { env, allowFail: true });
    for (const name of ps.stdout.split('\n')) {
      const m = /^(sm[0-9a-f]{4})-/.exec(name);
      if (m && dead(m[1]!)) await sh('podman', ['rm', '-f', name], { env, allowFail: true });
    }
  });
  return {
    env,
    image,
    run: (args, opts = {}) =>
      sh('podman', args, {
        env: { ...env, ...opts.env },
        allowFail: opts.allowFail ?? false,
        timeoutMs: 60_000,
      }),
  };
}

/** The image, tagged by the hash of the busybox binary: rebuilt only when it changes. */
async function busyboxImage(env: NodeJS.ProcessEnv): Promise<string> {
  const busybox = '/usr/bin/busybox';
  const tag = createHash('sha256').update(readFileSync(busybox)).digest('hex').slice(0, 12);
  const image = `${IMAGE_REPO}:${tag}`;
  const exists = await sh('podman', ['image', 'exists', image], { env, allowFail: true });
  if (exists.code === 0) return image;
  const root = `${runLogDir()}/rootfs`;
  mkdirSync(`${root}/bin`, { recursive: true });
  copyFileSync(busybox, `${root}/bin/busybox`);
  for (const tool of ['sh', 'sleep', 'ping', 'ip', 'cat']) symlinkSync('busybox', `${root}/bin/${tool}`);
  await sh('tar', ['-C', root, '-cf', `${root}.tar`, '.']);
  await sh('podman', ['import', `${root}.tar`, image], { env, timeoutMs: 120_000 });
  return image;
}

export function containerName(suffix: string): string {
  return `${runPrefix()}-${suffix}`;
}
