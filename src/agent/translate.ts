/**
 * From the model's plan to the kernel's desired state (pure): the plan is lowered to the
 * backend-neutral forwarding intent (dataplane/intent-lower.ts), and the intent to kernel objects by
 * the kernel backend's lowering (dataplane/kernel/lower.ts).
 */

import type { ForwardingIntent } from '../dataplane/intent.ts';
import { intentOf } from '../dataplane/intent-lower.ts';
import { type KernelLoweringOptions, type KernelState, lowerToKernel } from '../dataplane/kernel/lower.ts';
import type { HostPlan } from '../srv6/pathcompute.ts';

export type TranslateOptions = KernelLoweringOptions;

export interface DesiredHost extends KernelState {
  readonly intent: ForwardingIntent;
}

export function toDesiredHost(plan: HostPlan, opts: TranslateOptions): DesiredHost {
  const intent = intentOf(plan);
  return { ...lowerToKernel(intent, opts), intent };
}
