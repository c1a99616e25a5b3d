/**
 * From the model's plan to the kernel's desired state (pure): the plan is lowered to the
 * backend-neutral forwarding intent (dataplane/intent-lower.ts), and the intent to kernel objects by
 * the kernel backend's lowering (dataplane/kernel/lower.ts). Between two desired states, the intent's
 * one diff engine says what changed and the kernel backend which writes that takes.
 */

import { diffIntents, type ForwardingIntent } from '../dataplane/intent.ts';
import { intentOf } from '../dataplane/intent-lower.ts';
import { type KernelDelta, kernelDelta } from '../dataplane/kernel/delta.ts';
import { type KernelLoweringOptions, type KernelState, lowerToKernel } from '../dataplane/kernel/lower.ts';
import type { HostPlan } from '../srv6/pathcompute.ts';

export type TranslateOptions = KernelLoweringOptions;

export interface DesiredHost extends KernelState {
  readonly intent: ForwardingIntent;
  readonly options: TranslateOptions;
}

export function toDesiredHost(plan: HostPlan, opts: TranslateOptions): DesiredHost {
  const intent = intentOf(plan);
  return { ...lowerToKernel(intent, opts), intent, options: opts };
}

/**
 * The reconcile fast path: the kernel writes from the desired state last applied to the one wanted
 * now, without asking the kernel; undefined when they cannot be expressed as a delta (other lowering
 * options, or route identities that collide). The agent applies such a delta for the changes gossip
 * and BGP bring and falls back to the data plane's full dump-and-diff otherwise.
 */
export function desiredDelta(applied: DesiredHost, wanted: DesiredHost): KernelDelta | undefined {
  const a = applied.options;
  const w = wanted.options;
  if (a.underlayDevice !== w.underlayDevice || (a.sidCounters ?? false) !== (w.sidCounters ?? false))
    return undefined;
  const delta = diffIntents(applied.intent.items, wanted.intent.items);
  return kernelDelta(applied.intent, wanted.intent, delta, w);
}
