/**
 * Reads vitest's JSON reports of the system project (one per place it ran: the host, the VM with
 * Debian's kernel) and prints what ran where, what could run nowhere, and the counts for the summary.
 *
 *   node scripts/test-summary.ts --place "host 6.18 ..."=PATH [--place "vm ..."=PATH] [--files-for-vm]
 *
 * A suite that needs kernel features its kernel lacks carries the marker `[needs kernel: a, b]` in its
 * name (or a test its title, `kernelIt`) and is reported skipped. Each test counts once: where it first
 * ran (passed or failed); a later place runs whole files, and its results for tests that already ran
 * are not counted again, except that a test that passed in one place and failed in another counts as
 * one failure (and the difference is printed). A test no place ran for want of kernel
 * features could run nowhere. Plain skips (a missing tool outside CI) stay skips. Last line, for
 * scripts/test.sh: `counts PASSED FAILED SKIPPED NOWHERE`.
 *
 * --files-for-vm prints only the test files (one a line) that hold a test needing a kernel feature the
 * first place lacks and that test/kernel-matrix.json lets the VM run (`vm.include`): what the runner
 * hands to the VM.
 */
import { readFileSync } from 'node:fs';

interface Assertion {
  readonly ancestorTitles: readonly string[];
  readonly title: string;
  readonly status: string;
}
interface FileResult {
  readonly name: string;
  readonly status: string;
  readonly message?: string;
  readonly assertionResults: readonly Assertion[];
}
interface Report {
  readonly testResults: readonly FileResult[];
}

const MARKER = /\[needs kernel: ([a-z0-9, -]+)\]/;

interface Place {
  readonly label: string;
  readonly report: Report;
}

function parseArgs(argv: readonly string[]): { places: Place[]; filesForVm: boolean; root: string } {
  const places: Place[] = [];
  let filesForVm = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--files-for-vm') filesForVm = true;
    else if (a === '--place') {
      const spec = argv[++i] ?? '';
      const eq = spec.lastIndexOf('=');
      const label = spec.slice(0, eq);
      const path = spec.slice(eq + 1);
      places.push({ label, report: JSON.parse(readFileSync(path, 'utf8')) as Report });
    } else throw new Error(`test-summary: unknown argument ${a}`);
  }
  return { places, filesForVm, root: process.cwd() };
}

/** A test's identity across places: file relative to the project, suite path without marker, title. */
function testId(root: string, file: string, a: Assertion): string {
  const rel = file.startsWith(`${root}/`)
    ? file.slice(root.length + 1)
    : file.replace(/^.*?\/test\//, 'test/');
  const titles = [...a.ancestorTitles, a.title].map((t) => t.replace(MARKER, '').trim());
  return `${rel} > ${titles.join(' > ')}`;
}

function relFile(root: string, file: string): string {
  return file.startsWith(`${root}/`) ? file.slice(root.length + 1) : file.replace(/^.*?\/test\//, 'test/');
}

function needsOf(a: Assertion): string | undefined {
  for (const t of [...a.ancestorTitles, a.title]) {
    const m = MARKER.exec(t);
    if (m) return m[1];
  }
  return undefined;
}

function main(): void {
  const { places, filesForVm, root } = parseArgs(process.argv.slice(2));
  if (places.length === 0) throw new Error('test-summary: give at least one --place LABEL=REPORT.json');

  if (filesForVm) {
    // Only files under the folders test/kernel-matrix.json lets the VM run (its `vm.include`).
    const matrix = JSON.parse(readFileSync(`${root}/test/kernel-matrix.json`, 'utf8')) as {
      vm?: { include?: string[] };
    };
    const include = matrix.vm?.include ?? [];
    const files = new Set<string>();
    for (const f of places[0]!.report.testResults) {
      const rel = relFile(root, f.name);
      if (!include.some((prefix) => rel.startsWith(prefix))) continue;
      if (f.assertionResults.some((a) => needsOf(a) !== undefined)) files.add(rel);
    }
    for (const f of [...files].sort()) console.log(f);
    return;
  }

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  // Tests waiting for a kernel: id -> what they need; a later place that ran them takes them off.
  const waiting = new Map<string, { needs: string; suite: string; file: string }>();
  // Tests that ran somewhere, with their outcome: counted once.
  const ran = new Map<string, { status: string; place: string }>();
  const skippedIds = new Set<string>();
  const perPlace: string[] = [];
  for (const place of places) {
    let p = 0;
    let f = 0;
    let s = 0;
    let elsewhere = 0;
    for (const file of place.report.testResults) {
      // A file that failed outside any test (an import error, a hook) counts as one failure.
      if (file.status === 'failed' && file.assertionResults.every((a) => a.status !== 'failed')) {
        f++;
        console.log(
          `failed outside a test: ${relFile(root, file.name)}: ${(file.message ?? '').split('\n')[0]}`,
        );
      }
      for (const a of file.assertionResults) {
        const id = testId(root, file.name, a);
        const needs = needsOf(a);
        if (a.status === 'passed' || a.status === 'failed') {
          const before = ran.get(id);
          if (before) {
            if (before.status !== a.status) {
              console.log(
                `differs: ${id}: ${before.status} on ${before.place}, ${a.status} on ${place.label}`,
              );
              // A test that failed on any kernel has failed: it still counts once, as a failure.
              if (a.status === 'failed') {
                ran.set(id, { status: 'failed', place: place.label });
                passed--;
                f++;
              }
            }
            continue;
          }
          ran.set(id, { status: a.status, place: place.label });
          waiting.delete(id);
          if (a.status === 'passed') p++;
          else f++;
        } else if (needs !== undefined) {
          if (ran.has(id)) continue;
          elsewhere++;
          if (!waiting.has(id)) {
            const suite = a.ancestorTitles.map((t) => t.replace(MARKER, '').trim()).join(' > ');
            waiting.set(id, { needs, suite, file: relFile(root, file.name) });
          }
        } else if (!ran.has(id) && !waiting.has(id) && !skippedIds.has(id)) {
          skippedIds.add(id);
          s++;
        }
      }
    }
    passed += p;
    failed += f;
    skipped += s;
    perPlace.push(
      `${place.label}: ${p} passed, ${f} failed${s ? `, ${s} skipped` : ''}${elsewhere ? `, ${elsewhere} need another kernel` : ''}`,
    );
  }
  console.log(`kernel matrix: ${perPlace.join('; ')}`);

  // Group what could run nowhere by suite.
  const bySuite = new Map<string, { needs: string; file: string; tests: number }>();
  for (const w of waiting.values()) {
    const key = `${w.file} > ${w.suite}`;
    const entry = bySuite.get(key) ?? { needs: w.needs, file: w.file, tests: 0 };
    entry.tests++;
    bySuite.set(key, entry);
  }
  if (bySuite.size > 0) {
    console.log(
      `could run nowhere: ${waiting.size} tests in ${bySuite.size} suites (no place with the kernel features they need):`,
    );
    for (const [key, e] of [...bySuite].sort()) console.log(`  ${key}: ${e.tests} tests, needs ${e.needs}`);
  } else {
    console.log('could run nowhere: none');
  }
  console.log(`counts ${passed} ${failed} ${skipped} ${waiting.size}`);
}

main();
