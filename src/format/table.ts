/** Plain text tables for people: columns padded to the widest cell, no borders. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  indent = '',
): string {
  // Loops rather than `Math.max(...rows)`: a plan's table can have more rows than a call has arguments.
  const widths = header.map((h) => h.length);
  for (const r of rows) {
    for (let i = 0; i < widths.length; i++) {
      const n = (r[i] ?? '').length;
      if (n > widths[i]!) widths[i] = n;
    }
  }
  const line = (cells: readonly string[]) => {
    let s = indent;
    const last = cells.length - 1;
    for (let i = 0; i < last; i++) s += `${cells[i]!.padEnd(widths[i]!)}  `;
    if (last >= 0) s += cells[last];
    return s.trimEnd();
  };
  let out = line(header);
  for (const r of rows) out += `\n${line(r)}`;
  return out;
}
