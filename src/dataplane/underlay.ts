/** Start-up checks of the host's underlay, named as what they are rather than as a failing syscall. */
import type { Dataplane } from './dataplane.ts';

export class UnderlayError extends Error {
  override readonly name = 'UnderlayError';
}

/**
 * Throws unless `device` exists in this network namespace. Without this check the first symptom is an
 * ENOENT on /proc/sys/net/ipv6/conf/<device>/..., which names neither the interface nor the key.
 */
export async function checkUnderlayInterface(
  dp: Pick<Dataplane, 'listLinks'>,
  device: string,
  configFile?: string,
): Promise<void> {
  const links = (await dp.listLinks()).map((l) => l.name);
  if (links.includes(device)) return;
  const candidates = links.filter((n) => n !== 'lo').sort();
  throw new UnderlayError(
    `${configFile ? `${configFile}: ` : ''}host.underlay.interface: interface ${device} does not exist in this network namespace; ` +
      `set host.underlay.interface (or SEGMESH_UNDERLAY_INTERFACE) to one of: ${candidates.join(', ') || '(no interface but lo: is the agent in the right namespace?)'}`,
  );
}
