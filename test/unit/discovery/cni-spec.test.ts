import { describe, expect, it } from 'vitest';
import {
  CNI_ERROR,
  CniError,
  compareWithPrevious,
  formatResult,
  parseArgs,
  parseEnvironment,
  parseNetConf,
  versionInfo,
  workloadIdentity,
} from '../../../src/discovery/cni/spec.ts';

const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/run/netns/netns-1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-1;K8S_POD_NAMESPACE=shop',
};

function cniError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a CniError');
}

describe('CNI environment', () => {
  it('reads the variables podman passes', () => {
    const e = parseEnvironment(env);
    expect(e).toMatchObject({
      command: 'ADD',
      containerId: 'abc123',
      netns: '/run/netns/netns-1',
      ifname: 'eth0',
    });
    expect(e.path).toEqual(['/opt/cni/bin', '/usr/lib/cni']);
    expect(workloadIdentity(e.args)).toBe('shop/web-1');
  });

  it('prefers SEGMESH_IDENTITY, and has none without it or pod names', () => {
    expect(workloadIdentity(parseArgs('K8S_POD_NAME=a;SEGMESH_IDENTITY=team/db=primary'))).toBe(
      'team/db=primary',
    );
    expect(workloadIdentity(parseArgs('IgnoreUnknown=1;K8S_POD_NAME=lonely'))).toBeUndefined();
  });

  it('answers error 4 naming the missing variable; DEL may come without a namespace', () => {
    const err = cniError(() => parseEnvironment({ ...env, CNI_NETNS: undefined }));
    expect(err.code).toBe(CNI_ERROR.invalidEnvironment);
    expect(err.message).toBe('CNI_NETNS is not set');
    expect(parseEnvironment({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns).toBe('');
    expect(cniError(() => parseEnvironment({ ...env, CNI_COMMAND: 'PUT' })).message).toMatch(
      /CNI_COMMAND is "PUT"/,
    );
    expect(cniError(() => parseArgs('novalue')).code).toBe(4);
  });

  it('VERSION needs nothing but the command', () => {
    expect(parseEnvironment({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
    expect(versionInfo().supportedVersions).toContain('1.0.0');
  });
});

describe('CNI network configuration', () => {
  const conf = { cniVersion: '1.0.0', name: 'blue', type: 'segmesh-cni', tenant: 'blue' };

  it('parses it with defaults', () => {
    const c = parseNetConf(JSON.stringify(conf));
    expect(c).toMatchObject({ tenant: 'blue', agentSocket: '/run/segmesh/agent.sock', labels: {} });
  });

  it('negotiates the version: an unsupported one is error 1', () => {
    const err = cniError(() => parseNetConf(JSON.stringify({ ...conf, cniVersion: '2.0.0' })));
    expect(err.code).toBe(CNI_ERROR.incompatibleVersion);
    expect(err.toJson('1.0.0')).toMatchObject({ code: 1, details: 'use one of 0.3.0, 0.3.1, 0.4.0, 1.0.0' });
  });

  it('rejects bad JSON (6) and a missing tenant (7)', () => {
    expect(cniError(() => parseNetConf('{')).code).toBe(CNI_ERROR.decode);
    const { tenant: _, ...noTenant } = conf;
    expect(cniError(() => parseNetConf(JSON.stringify(noTenant))).code).toBe(CNI_ERROR.invalidConfig);
  });
});

describe('CNI results', () => {
  const result = {
    interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/run/netns/netns-1', mtu: 1388 }],
    ips: [{ address: '2001:db8:b100::1/128', gateway: 'fe80::1', interface: 0 }],
    routes: [{ dst: '::/0', gw: 'fe80::1' }],
    dns: {},
  };

  it('writes 1.0.0 results as they are and older ones with the address version', () => {
    expect(formatResult('1.0.0', result).ips).toEqual(result.ips);
    expect(formatResult('0.4.0', result).ips).toEqual([{ version: '6', ...result.ips[0] }]);
    expect(formatResult('0.3.1', result).cniVersion).toBe('0.3.1');
  });

  it('CHECK compares with prevResult', () => {
    const prev = parseNetConf(
      JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 't', tenant: 'blue', prevResult: result }),
    ).prevResult!;
    expect(
      compareWithPrevious(prev, {
        address: '2001:db8:b100::1',
        ifname: 'eth0',
        sandbox: '/run/netns/netns-1',
      }),
    ).toEqual([]);
    expect(
      compareWithPrevious(prev, {
        address: '2001:db8:b100::2',
        ifname: 'eth0',
        sandbox: '/run/netns/netns-1',
      })[0],
    ).toMatch(/not in prevResult/);
  });
});
