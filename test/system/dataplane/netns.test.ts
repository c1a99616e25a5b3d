import { afterAll, expect, it } from 'vitest';
import { ROUTE_PROTOCOL } from '../../../src/dataplane/constants.ts';
import { BatchWriteError } from '../../../src/dataplane/dataplane.ts';
import { NetnsDataplane } from '../../../src/dataplane/netns.ts';
import { parseIpv6, parsePrefix } from '../../../src/srv6/address.ts';
import { createLab, kernelIt, systemSuite } from '../../harness/index.ts';

const ip = parseIpv6;

systemSuite('dataplane: the same interface inside another namespace', { tools: ['ip'] }, () => {
  const lab = createLab();
  const open: NetnsDataplane[] = [];
  afterAll(async () => {
    for (const d of open) await d.close().catch(() => undefined);
    await lab.teardown();
  });

  it('creates and dumps links, addresses and routes in a workload namespace through a setns worker', async () => {
    const host = await lab.netns('nsh');
    const wl = await lab.netns('nsw');
    const dp = new NetnsDataplane({ netns: host.name });
    open.push(dp);
    await dp.whenReady();
    // veth with its peer created directly in the workload namespace
    await dp.addVeth({ name: 'wl0', peerName: 'eth0', peerNetns: wl.name, mtu: 1400 });
    const hostLinks = await dp.listLinks();
    expect(hostLinks.find((l) => l.name === 'wl0')).toMatchObject({ mtu: 1400, up: true, kind: 'veth' });
    // the workload side, through its own worker
    const wdp = new NetnsDataplane({ netns: wl.name });
    open.push(wdp);
    await wdp.setLink('eth0', { up: true });
    await wdp.addAddress('eth0', { address: ip('2001:db8:77::2'), length: 64 });
    await wdp.addRoutes([
      { dst: parsePrefix('::/0'), table: 254, gateway: ip('2001:db8:77::1'), dev: 'eth0' },
    ]);
    await dp.addAddress('wl0', { address: ip('2001:db8:77::1'), length: 64 });

    const links = await wdp.listLinks();
    expect(links.find((l) => l.name === 'eth0')).toMatchObject({ mtu: 1400, up: true, kind: 'veth' });
    const addrs = await wdp.listAddresses();
    expect(addrs.some((a) => a.address.address === ip('2001:db8:77::2') && a.address.length === 64)).toBe(
      true,
    );
    const routes = await wdp.listRoutes({ protocol: ROUTE_PROTOCOL });
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatchObject({ table: 254, gateway: ip('2001:db8:77::1'), dst: { length: 0 } });
    // iproute2 sees the same thing
    const shown = await wl.ip('-6', 'route', 'show', 'default');
    expect(shown.stdout).toContain('via 2001:db8:77::1 dev eth0 proto 203');
    // traffic crosses
    await wl.exec('ping', ['-6', '-c', '1', '-W', '2', '2001:db8:77::1']);
    // the main thread's namespace was not touched
    const { stdout } = await host.ip('link', 'show', 'wl0');
    expect(stdout).toContain('wl0@');
  });

  it('moves a link into another namespace and sets sysctls there, restoring them on flush', async () => {
    const a = await lab.netns('nsa');
    const b = await lab.netns('nsb');
    const dp = new NetnsDataplane({ netns: a.name });
    open.push(dp);
    await dp.addVeth({ name: 'mv0', peerName: 'mv1' });
    await dp.setLink('mv1', { netns: b.name });
    expect((await dp.listLinks()).some((l) => l.name === 'mv1')).toBe(false);
    expect((await b.ip('link', 'show', 'mv1')).stdout).toContain('mv1');
    const before = await a.readSysctl('net.ipv6.conf.all.forwarding');
    expect(await dp.setSysctl('net.ipv6.conf.all.forwarding', '1')).toBe(true);
    expect(await dp.setSysctl('net.ipv6.conf.mv0.seg6_enabled', '1')).toBe(true);
    expect(await a.readSysctl('net.ipv6.conf.all.forwarding')).toBe('1');
    expect(await b.readSysctl('net.ipv6.conf.all.forwarding')).toBe(before);
    const flushed = await dp.flushOwned();
    expect(flushed.sysctlsRestored.sort()).toEqual([
      'net.ipv6.conf.all.forwarding',
      'net.ipv6.conf.mv0.seg6_enabled',
    ]);
    expect(await a.readSysctl('net.ipv6.conf.all.forwarding')).toBe(before);
  });

  kernelIt(['hmac'], 'sets the seg6 tunnel source and HMAC keys over generic netlink', async () => {
    const h = await lab.netns('nsg');
    const dp = new NetnsDataplane({ netns: h.name });
    open.push(dp);
    await dp.setTunsrc(ip('fc00:0:9::1'));
    expect(await dp.getTunsrc()).toBe(ip('fc00:0:9::1'));
    expect((await h.ip('sr', 'tunsrc', 'show')).stdout).toContain('fc00:0:9::1');
    const secret = new TextEncoder().encode('segmesh-test-secret');
    await dp.setHmacKey({ keyId: 42, algorithm: 'sha256', secret });
    const keys = await dp.listHmacKeys();
    expect(keys).toEqual([{ keyId: 42, algorithm: 'sha256', secret }]);
    expect((await h.ip('sr', 'hmac', 'show')).stdout).toMatch(/42.*sha256/);
    await dp.deleteHmacKey(42);
    expect(await dp.listHmacKeys()).toEqual([]);
  });

  it('reports kernel rejections as typed errors naming the object, across the worker boundary', async () => {
    const h = await lab.netns('nse');
    const dp = new NetnsDataplane({ netns: h.name });
    open.push(dp);
    await dp.addVeth({ name: 'e0', peerName: 'e1' });
    const route = { dst: parsePrefix('2001:db8:e::/64'), table: 254, dev: 'e0' };
    await dp.addRoutes([route]);
    const err = await dp.addRoutes([route]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchWriteError);
    const f = (err as BatchWriteError).failures[0]!;
    expect(f.code).toBe('EEXIST');
    expect(f.object).toContain('2001:db8:e::/64');
    const bad = await dp.addRoutes([{ ...route, dev: 'nope0' }]).catch((e: unknown) => e);
    expect((bad as Error).name).toBe('DataplaneInputError');
  });
});
