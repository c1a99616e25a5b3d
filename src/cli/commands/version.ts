/** `segmesh version`: this build's version and the runtime it runs on. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

export function versionCommand(): Command {
  return new Command('version')
    .description('print the version of segmesh and of its runtime')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      const info = {
        segmesh: pkg.version,
        node: process.versions.node,
        platform: `${process.platform}/${process.arch}`,
      };
      process.stdout.write(
        opts.json
          ? `${JSON.stringify(info)}\n`
          : `segmesh ${info.segmesh} (node ${info.node}, ${info.platform})\n`,
      );
    });
}
