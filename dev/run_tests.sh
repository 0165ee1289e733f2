#!/usr/bin/env bash
# Runs each test suite given as an argument, shows its output, and ends with one line that
# adds up their "N passed, M failed[, K skipped]" lines. Exit status: non-zero if any suite
# failed or did not report.
set -u
passed=0; failed=0; skipped=0; status=0
for suite in "$@"; do
  out=$(mktemp)
  $suite 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$line" ]; then
    echo "FAIL - suite '$suite' printed no result line (exit $rc)"; failed=$((failed + 1)); status=1; continue
  fi
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then status=1; fi
done
echo
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
exit $status
