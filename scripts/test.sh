#!/usr/bin/env bash
# The whole test suite: set-up, lint, typecheck, unit tests (parallel), system tests (serial, real
# kernel and daemons). Ends with one summary line `N passed, N failed`. With CI=true a system suite
# that would skip itself fails instead.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p .test-results
passed=0
failed=0
skipped=0
failures=()

check() { # name, command...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

check lint biome check --error-on-warnings .
check proto-lint buf lint
check typecheck tsc -p tsconfig.json

vitest_json() { # project name, output, vitest args...: runs vitest, leaves its JSON report in output
  local project=$1 out=$2
  shift 2
  rm -f "$out"
  vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="$out" "$@"
}

vitest_project() { # project name: counts a project that runs in one place (the unit tests)
  local project=$1 out=.test-results/$1.json
  vitest_json "$project" "$out"
  local status=$?
  if [[ ! -f $out ]]; then
    echo "test: vitest ($project) wrote no results (exit $status)"
    failed=$((failed + 1))
    failures+=("vitest $project")
    return
  fi
  read -r p f s < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.numPassedTests, r.numFailedTests, r.numPendingTests + r.numTodoTests);
  ' "$out")
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if ((f > 0)); then failures+=("$f $project test(s)"); fi
  # A run that failed outside any test (an error in a hook or an unhandled rejection) counts too.
  if ((status != 0 && f == 0)); then
    failed=$((failed + 1))
    failures+=("vitest $project exited $status")
  fi
}

# The system tests run where the kernel has what they need (docs/testing.md, "Kernel matrix"): first on
# this host; the suites that need kernel features this kernel lacks (seg6 routes, seg6 HMAC, VRF) then in
# a VM with Debian's kernel where the VM runner exists. scripts/test-summary.ts merges the reports, names
# every suite that could run nowhere and counts each test once.
nowhere=0
vitest_system() {
  local host=.test-results/system.json label
  label="host $(node -e 'import("./test/harness/kernel.ts").then((m) => console.log(m.describeKernel()))')"
  vitest_json system "$host"
  local status=$?
  if [[ ! -f $host ]]; then
    echo "test: vitest (system) wrote no results (exit $status)"
    failed=$((failed + 1))
    failures+=("vitest system")
    return
  fi
  local places=(--place "$label=$host")
  local vm_files
  mapfile -t vm_files < <(node scripts/test-summary.ts --place "host=$host" --files-for-vm)
  if ((${#vm_files[@]} > 0)); then
    if [[ -f scripts/vm-test.sh ]]; then
      local vm=.test-results/system-vm.json
      if bash scripts/vm-test.sh "$vm" "${vm_files[@]}" && [[ -f $vm ]]; then
        places+=(--place "$(cat "$vm.label" 2>/dev/null || echo vm)=$vm")
      elif [[ -f $vm ]]; then
        places+=(--place "$(cat "$vm.label" 2>/dev/null || echo vm)=$vm")
      else
        echo "test: the VM run wrote no results"
        failed=$((failed + 1))
        failures+=("vm run")
      fi
    else
      echo "kernel matrix: no VM runner yet (issue 15): ${#vm_files[@]} files hold suites this kernel cannot run"
    fi
  fi
  local summary
  summary=$(node scripts/test-summary.ts "${places[@]}") || {
    echo "test: test-summary failed"
    failed=$((failed + 1))
    failures+=("test-summary")
    return
  }
  printf '%s\n' "$summary" | grep -v '^counts '
  local p f s n
  read -r _ p f s n < <(printf '%s\n' "$summary" | grep '^counts ')
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  nowhere=$n
  if ((f > 0)); then failures+=("$f system test(s)"); fi
  if ((status != 0 && f == 0)); then
    failed=$((failed + 1))
    failures+=("vitest system exited $status")
  fi
}

vitest_project unit
vitest_system

is_ci() { [[ ${CI:-} != "" && ${CI:-} != "false" && ${CI:-} != "0" ]]; }
if is_ci && ((skipped > 0)); then
  failures+=("$skipped skipped under CI")
  failed=$((failed + skipped))
fi
# Tests that could run nowhere are never counted as passed. While the kernel-matrix issues are open
# (test/kernel-matrix.json) they are named above but do not fail CI; after that they do.
if ((nowhere > 0)); then
  if is_ci && node -e 'process.exit(require("./test/kernel-matrix.json").nowhereFailsCi ? 0 : 1)'; then
    failures+=("$nowhere tests could run nowhere under CI")
    failed=$((failed + nowhere))
  else
    echo "not run: $nowhere tests could run nowhere (named above; test/kernel-matrix.json says why this does not fail CI yet)"
  fi
fi
if ((${#failures[@]} > 0)); then echo "failures: ${failures[*]}"; fi
if ((skipped > 0)); then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
((failed == 0))
