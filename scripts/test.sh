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

vitest_project() { # project name
  local project=$1 out=.test-results/$1.json
  rm -f "$out"
  vitest run --project "$project" --reporter=default --reporter=json --outputFile.json="$out"
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
vitest_project unit
vitest_project system

if [[ ${CI:-} != "" && ${CI:-} != "false" && ${CI:-} != "0" ]] && ((skipped > 0)); then
  failures+=("$skipped skipped under CI")
  failed=$((failed + skipped))
fi
if ((${#failures[@]} > 0)); then echo "failures: ${failures[*]}"; fi
if ((skipped > 0)); then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
((failed == 0))
