#!/usr/bin/env bash
# Runs system test files in the VM with Debian's kernel (seg6, seg6local, seg6 HMAC, VRF), for the
# suites this host's kernel cannot run (docs/testing.md, "Kernel matrix"):
#   bash scripts/vm-test.sh OUT.json FILE...
# Writes vitest's JSON report to OUT.json (through the VM's writable results share) and the place's
# label (`vm debian <kernel> (...)`) to OUT.json.label. Exit status: vitest's, or 125 when the VM could
# not run it (the reason and the console tail on stderr).
# The files are dealt round-robin to SEGMESH_VM_JOBS VMs (default 2) that run side by side: a VM under
# TCG keeps one host core busy, and each VM has a kernel of its own, so files in different VMs do not
# share a network stack. The reports are merged into OUT.json; when any VM wrote none, OUT.json is not
# written (the runner counts a failed VM run).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/vm-test.sh OUT.json FILE...}
shift
(($# > 0)) || { echo "vm-test: no test files given" >&2; exit 2; }
results=$(dirname "$out")
mkdir -p "$results"
rm -f "$out" "$out.label" "$out.kernel" "$out".part*
jobs=${SEGMESH_VM_JOBS:-2}
((jobs >= 1)) || jobs=1
(($# < jobs)) && jobs=$#
declare -a groups=()
i=0
# The agent suites are the long ones under TCG (several agents start in each): dealt first, so that
# each VM gets at most one of them before the short files are shared out.
ordered=()
for f in "$@"; do [[ $f == test/system/agent/* ]] && ordered+=("$f"); done
for f in "$@"; do [[ $f == test/system/agent/* ]] || ordered+=("$f"); done
for f in "${ordered[@]}"; do
  groups[i % jobs]+="$f"$'\n'
  i=$((i + 1))
done
pids=()
for ((j = 0; j < jobs; j++)); do
  mapfile -t files < <(printf '%s' "${groups[j]}")
  part=$out.part$j
  # The label comes from the guest itself: its kernel release and the features the harness finds there.
  node scripts/vm-run.ts --results "$results" --timeout 3600 -- sh -c '
    node -e "import(\"./test/harness/kernel.ts\").then((m) => console.log(m.describeKernel()))" >"$0.kernel"
    exec vitest run --project system "$@" --reporter=default --reporter=json --outputFile.json="$0"
  ' "$part" "${files[@]}" > >(sed -u "s/^/[vm$j] /") 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid"
  s=$?
  ((s == 125 || status == 0)) && ((s != 0)) && status=$s
done
[[ -f $out.part0.kernel ]] && cp "$out.part0.kernel" "$out.kernel"
echo "vm debian $(cat "$out.kernel" 2>/dev/null || echo '(kernel unknown)')" >"$out.label"
parts=()
for ((j = 0; j < jobs; j++)); do
  if [[ -f $out.part$j ]]; then
    parts+=("$out.part$j")
  else
    echo "vm-test: VM $j wrote no report" >&2
    ((status == 0)) && status=125
  fi
done
if ((${#parts[@]} == jobs)); then
  node -e '
    const fs = require("fs");
    const [out, ...parts] = process.argv.slice(1);
    const rs = parts.map((p) => JSON.parse(fs.readFileSync(p, "utf8")));
    const m = { ...rs[0], testResults: rs.flatMap((r) => r.testResults) };
    for (const k of Object.keys(rs[0])) if (typeof rs[0][k] === "number" && k.startsWith("num")) m[k] = rs.reduce((a, r) => a + r[k], 0);
    m.startTime = Math.min(...rs.map((r) => r.startTime));
    m.success = rs.every((r) => r.success);
    fs.writeFileSync(out, JSON.stringify(m));
  ' "$out" "${parts[@]}" || status=125
fi
rm -f "$out".part*
exit $status
