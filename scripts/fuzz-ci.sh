#!/usr/bin/env bash
# Runs every fuzzer for FUZZTIME (default 3s) after the tests, as CI does.
# A fuzzer that finds a crasher fails the run: Go writes the input under
# testdata/fuzz/<Fuzzer>/ ("Failing input written to"); commit it with the
# fix, as a seed. On these 2 cores the harness itself sometimes ends a
# short run with "context deadline exceeded" and no input (see
# ../shared/COMPONENTS.md): that is retried once and then reported as a
# warning, not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
failed=0
for pkg in $(go list ./...); do
  for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    for try in 1 2; do
      out=$(go test -run='^$' -fuzz="^$f\$" -fuzztime="$fuzztime" "$pkg" 2>&1)
      rc=$?
      if [ $rc -eq 0 ]; then
        echo "ok   $pkg $f"
        break
      fi
      if grep -q "Failing input written to" <<<"$out"; then
        echo "FAIL $pkg $f: a crasher (commit its input under testdata/fuzz/$f with the fix)"
        echo "$out" | tail -30
        failed=1
        break
      fi
      if grep -q "context deadline exceeded" <<<"$out" && [ $try -eq 1 ]; then
        echo "...  $pkg $f: harness time-out without a failing input, once more"
        continue
      fi
      if grep -q "context deadline exceeded" <<<"$out"; then
        echo "warn $pkg $f: harness time-out twice without a failing input (not a crasher)"
        break
      fi
      echo "FAIL $pkg $f"
      echo "$out" | tail -30
      failed=1
      break
    done
  done
done
exit $failed
