import { describe, expect, it } from 'vitest';
import { parseKey, RecordKeyError } from '../../../src/gossip/records.ts';

describe('record keys', () => {
  it('accept workload identities with path segments (Kubernetes namespace/name)', () => {
    expect(parseKey('workload/12D3KooWabc/shop/cart-1')).toEqual({
      kind: 'workload',
      owner: '12D3KooWabc',
      name: 'shop/cart-1',
    });
    expect(parseKey('workload/12D3KooWabc/web-1').name).toBe('web-1');
  });

  it('still refuse empty segments and other kinds with extra segments', () => {
    expect(() => parseKey('workload/12D3KooWabc/shop//cart')).toThrow(RecordKeyError);
    expect(() => parseKey('tenant/blue/extra')).toThrow(RecordKeyError);
    expect(() => parseKey('host/a/b')).toThrow(RecordKeyError);
  });
});
