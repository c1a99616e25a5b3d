/** The API's answers to bad input: gRPC codes, messages, log levels; the input limits. */
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Agent } from '../../../src/agent/agent.ts';
import { agentHandlers, apiError, unary } from '../../../src/agent/api.ts';
import {
  AgentError,
  checkDurationMs,
  checkId,
  checkIfname,
  DRAIN_QUIET_MAX_MS,
  DRAIN_WAIT_MAX_MS,
  IFNAME_MAX_BYTES,
} from '../../../src/agent/errors.ts';
import { AttachError } from '../../../src/dataplane/host.ts';
import { AgentService } from '../../../src/gen/segmesh/v1/agent_pb.js';

describe('apiError: the gRPC code of a failure', () => {
  it.each([
    ['invalid', status.INVALID_ARGUMENT],
    ['not-found', status.NOT_FOUND],
    ['exists', status.ALREADY_EXISTS],
    ['precondition', status.FAILED_PRECONDITION],
    ['unavailable', status.UNAVAILABLE],
  ] as const)('AgentError %s -> %s, expected (a refusal)', (kind, code) => {
    expect(apiError(new AgentError(kind, 'why and fix'))).toEqual({
      code,
      details: 'why and fix',
      expected: true,
    });
  });
  it('an attach the host state prevents is FAILED_PRECONDITION; anything else is INTERNAL and unexpected', () => {
    expect(apiError(new AttachError('link exists'))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      expected: true,
    });
    expect(apiError(new AgentError('failed', 'x'))).toMatchObject({ code: status.INTERNAL, expected: false });
    expect(apiError(new RangeError('ERANGE'))).toEqual({
      code: status.INTERNAL,
      details: 'ERANGE',
      expected: false,
    });
  });
});

/** A logger that records what was logged at which level. */
function recordingLogger() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) =>
    lines.push({ level, obj, msg });
  return { lines, log: { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Logger };
}

async function callUnary(fn: () => Promise<never>, log: Logger) {
  const handler = unary(AgentService.method.drain as never, fn, log);
  return new Promise<{ code: number; details: string }>((resolve) =>
    handler({ request: {} } as never, ((err: { code: number; details: string }) => resolve(err)) as never),
  );
}

describe('unary: refusals at warn without a stack, failures at error', () => {
  it('an AgentError is answered with its code and message and logged at warn, without the error object', async () => {
    const { lines, log } = recordingLogger();
    const r = await callUnary(() => Promise.reject(new AgentError('invalid', '--ifname too long')), log);
    expect(r).toEqual({ code: status.INVALID_ARGUMENT, details: '--ifname too long' });
    expect(lines).toEqual([
      {
        level: 'warn',
        obj: { method: 'Drain', code: 'INVALID_ARGUMENT', reason: '--ifname too long' },
        msg: 'API call refused',
      },
    ]);
  });
  it('an unexpected error is INTERNAL and logged at error with the error (and its stack)', async () => {
    const { lines, log } = recordingLogger();
    const boom = new Error('boom');
    const r = await callUnary(() => Promise.reject(boom), log);
    expect(r).toEqual({ code: status.INTERNAL, details: 'boom' });
    expect(lines).toEqual([{ level: 'error', obj: { err: boom, method: 'Drain' }, msg: 'API call failed' }]);
  });
});

describe('input limits', () => {
  it('interface names: 1 to 15 bytes, no / : or white space', () => {
    expect(() => checkIfname('a'.repeat(IFNAME_MAX_BYTES))).not.toThrow();
    expect(() => checkIfname('eth0')).not.toThrow();
    expect(() => checkIfname('a'.repeat(24))).toThrow(
      /is 24 bytes; Linux interface names have at most 15 bytes/,
    );
    // Bytes, not characters: 8 two-byte characters are 16 bytes.
    expect(() => checkIfname('é'.repeat(8))).toThrow(/is 16 bytes/);
    for (const bad of ['', 'a/b', 'a:b', 'a b', '.', '..']) {
      expect(() => checkIfname(bad), bad).toThrow(AgentError);
    }
  });
  it('identities: bounded and without control characters', () => {
    expect(() => checkId('shop.web', '--identity')).not.toThrow();
    expect(() => checkId('x'.repeat(256), '--identity')).not.toThrow();
    expect(() => checkId('x'.repeat(257), '--identity')).toThrow(/--identity is 257 bytes; at most 256/);
    expect(() => checkId('a\nb', '--identity')).toThrow(/control characters/);
  });
  it('durations: whole milliseconds from 0 up to the cap', () => {
    expect(() => checkDurationMs(0, DRAIN_WAIT_MAX_MS, '--wait')).not.toThrow();
    expect(() => checkDurationMs(DRAIN_WAIT_MAX_MS, DRAIN_WAIT_MAX_MS, '--wait')).not.toThrow();
    for (const bad of [DRAIN_WAIT_MAX_MS + 1, 2 ** 32 - 1, -1, 1.5, Number.NaN]) {
      expect(() => checkDurationMs(bad, DRAIN_WAIT_MAX_MS, '--wait'), String(bad)).toThrow(
        /--wait .*: give whole milliseconds from 0 \(the default\) up to 600000 \(600 s\)/,
      );
    }
    expect(() => checkDurationMs(DRAIN_QUIET_MAX_MS + 1, DRAIN_QUIET_MAX_MS, '--quiet')).toThrow(
      /up to 60000/,
    );
  });
});

describe('handlers check their input before the agent sees it', () => {
  function fakeAgent() {
    const calls: string[] = [];
    const agent = {
      addWorkload: async () => {
        calls.push('addWorkload');
        return {
          workload: { address: '2001:db8::1', hostLink: 'sm-x', ifname: 'eth0', mtu: 1400, sticky: true },
          gateway: 'fe80::1',
          moved: false,
        };
      },
      deleteWorkload: async () => {
        calls.push('deleteWorkload');
        return true;
      },
      checkWorkload: async () => {
        calls.push('checkWorkload');
        return [];
      },
      drain: async () => {
        calls.push('drain');
        return { withdrawn: 0, removed: 0, gracefulShutdownPaths: 0, waitedMs: 0, trafficStopped: true };
      },
    };
    return { calls, handlers: agentHandlers(agent as unknown as Agent, 'test') };
  }
  const add = {
    tenant: 'blue',
    netns: '/run/netns/x',
    ifname: 'eth0',
    identity: '',
    containerId: '',
    labels: {},
    address: '',
  };

  it('refuses bad input with INVALID_ARGUMENT and does not call the agent', async () => {
    const { calls, handlers } = fakeAgent();
    const refusals: Array<Promise<unknown>> = [
      handlers.addWorkload({ ...add, ifname: 'a-twenty-four-char-ifnam' } as never),
      handlers.addWorkload({ ...add, tenant: '' } as never),
      handlers.addWorkload({ ...add, identity: 'x'.repeat(300) } as never),
      handlers.deleteWorkload({ identity: '', containerId: '', ifname: '' } as never),
      handlers.checkWorkload({ identity: '', containerId: '', ifname: '', address: '' } as never),
      handlers.drain({ waitMs: 2 ** 32 - 1, quietMs: 0 } as never),
      handlers.drain({ waitMs: 0, quietMs: DRAIN_QUIET_MAX_MS + 1 } as never),
    ];
    for (const p of refusals) {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(AgentError);
      expect(apiError(e).code).toBe(status.INVALID_ARGUMENT);
    }
    expect(calls).toEqual([]);
  });

  it('passes good input through (positive control)', async () => {
    const { calls, handlers } = fakeAgent();
    await handlers.addWorkload({ ...add, ifname: 'a'.repeat(15) } as never);
    await handlers.deleteWorkload({ identity: 'shop.web', containerId: '', ifname: '' } as never);
    await handlers.checkWorkload({ identity: '', containerId: 'c1', ifname: '', address: '' } as never);
    await handlers.drain({ waitMs: DRAIN_WAIT_MAX_MS, quietMs: DRAIN_QUIET_MAX_MS } as never);
    expect(calls).toEqual(['addWorkload', 'deleteWorkload', 'checkWorkload', 'drain']);
  });
});
