/** Test helper: a desired route as a kernel dump returns it (unicast, metric 1024, ours by default). */
import { ROUTE_PROTOCOL } from '../../../src/dataplane/constants.ts';
import type { KernelRoute, Route } from '../../../src/dataplane/route.ts';

export const kr = (r: Route, protocol = ROUTE_PROTOCOL): KernelRoute => ({
  type: 'unicast',
  metric: 1024,
  scope: 0,
  flags: 0,
  ...r,
  protocol,
});
