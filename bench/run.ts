/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts in its own process (a clean heap per benchmark).
 * Each benchmark prints a readable table and, as its last line, one JSON object `{"bench":"NAME",...}`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const here = new URL('.', import.meta.url).pathname;
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [args]\nbenchmarks: ${available.join(', ')}\n`);
  process.exit(name ? 1 : 0);
}
const result = spawnSync(process.execPath, ['--expose-gc', `${here}${name}.ts`, ...args], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
