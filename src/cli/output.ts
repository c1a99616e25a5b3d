/** Output helpers: `--json` for programs, tables for people; bigints become strings in JSON. */
import { renderTable } from '../format/table.ts';

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v), 2)}\n`,
  );
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  process.stdout.write(`${renderTable(header, rows)}\n`);
}

/** A protobuf-es message as plain JSON-able data (without its $typeName). */
export function plain<T extends object>(message: T): Omit<T, '$typeName' | '$unknown'> {
  const { $typeName: _t, $unknown: _u, ...rest } = message as T & { $typeName?: string; $unknown?: unknown };
  return rest;
}
