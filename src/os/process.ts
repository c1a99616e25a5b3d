/**
 * Process identity from /proc (a PID alone is reused): the kernel start time of a process, or undefined
 * for no such process and for a zombie or dead one, which holds nothing (a container's PID 1 that
 * reaps no children, e.g. `sleep infinity`, keeps a killed agent as a zombie, which blocked its
 * restart). Shared by the agent's lock, the VM service and the test harness.
 */
import { readFileSync } from 'node:fs';

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19]; // field 22, starttime
  } catch {
    return undefined;
  }
}
