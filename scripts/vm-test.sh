#!/usr/bin/env bash
# Runs system test files in the VM with Debian's kernel (seg6, seg6local, seg6 HMAC, VRF), for the
# suites this host's kernel cannot run (docs/testing.md, "Kernel matrix"):
#   bash scripts/vm-test.sh OUT.json FILE...
# Writes vitest's JSON report to OUT.json (through the VM's writable results share) and the place's
# label (`vm debian <kernel> (...)`) to OUT.json.label. Exit status: vitest's, or 125 when the VM could
# not run it (the reason and the console tail on stderr).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
results=$(dirname "$out")
mkdir -p "$results"
rm -f "$out" "$out.label" "$out.kernel"
# The label comes from the guest itself: its kernel release and the features the harness finds there.
node scripts/vm-run.ts --results "$results" --timeout 2400 -- sh -c '
  node -e "import(\"./test/harness/kernel.ts\").then((m) => console.log(m.describeKernel()))" >"$0.kernel"
  exec vitest run --project system "$@" --reporter=default --reporter=json --outputFile.json="$0"
' "$out" "$@"
status=$?
echo "vm debian $(cat "$out.kernel" 2>/dev/null || echo '(kernel unknown)')" >"$out.label"
exit $status
