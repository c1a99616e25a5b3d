/**
 * The seg6 kernel VM (src/vm) for tests: named with the run prefix, its processes recorded for the
 * sweeper, its console and output in the run's log folder.
 */
import { ensureVmImage, type VmImage } from '../../src/vm/image.ts';
import { runInVm, Vm, type VmOptions, type VmResult } from '../../src/vm/vm.ts';
import { objectName, recordProcess, runLogDir } from './run.ts';

export type TestVmOptions = Omit<VmOptions, 'name' | 'image' | 'logDir' | 'onProcess'> & {
  /** Suffix after the run prefix (e.g. "vm1"). */
  readonly suffix: string;
};

let image: Promise<VmImage> | undefined;
/** Builds the image once per test process (cached on disk across runs). */
export function testVmImage(): Promise<VmImage> {
  image ??= ensureVmImage({ progress: (l) => process.stderr.write(`${l}\n`) });
  return image;
}

function options(opts: TestVmOptions, img: VmImage): VmOptions {
  const name = objectName(opts.suffix);
  return { ...opts, name, image: img, logDir: `${runLogDir()}/${name}`, onProcess: recordProcess };
}

/** Boots a VM; the caller must `stop()` it (in afterAll/finally). */
export async function startTestVm(opts: TestVmOptions): Promise<Vm> {
  return Vm.start(options(opts, await testVmImage()));
}

/** Boots a VM, runs its command, stops it. */
export async function runInTestVm(opts: TestVmOptions): Promise<VmResult> {
  return runInVm(options(opts, await testVmImage()));
}
