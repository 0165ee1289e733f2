#!/usr/bin/env bash
# tests/sink_chapter.sh: every number in the tables of doc/sink.md is the one
# dev/results/sink/results.json gives (issue 23). dev/sink.py --check-chapter makes the tables
# from results.json (chapter_tables, as `dev/sink.py` writes them into results.md) and compares
# each <!-- sink-table: NAME --> table of the chapter line for line; a table without a marker
# fails. Then the check itself: a copy of the chapter with one number changed must fail.
# Prints "ok - ..." / "FAIL - ..." and "N passed, M failed". Needs /usr/bin/python3 and numpy.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
py="${PYTHON:-/usr/bin/python3}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! "$py" -c 'import numpy' 2>/dev/null; then
    fail "$py imports numpy (needed by dev/sink.py)"; finish
fi
"$py" dev/sink.py --check-chapter >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
line=$(tail -n 1 "$tmp/out")
p=$(echo "$line" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')
f=$(echo "$line" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
[ -n "$p" ] && [ "$rc" -eq $(( ${f:-1} > 0 ? 1 : 0 )) ] ||
    fail "dev/sink.py --check-chapter: exit $rc, last line '$line'"
# the check can fail: change the first number of the first table row after a marker
awk 'BEGIN { done = 0 } /^<!-- sink-table: / { want = 3 }
     want && /^\|/ { want--; if (want == 0 && !done && sub(/\| [0-9]+ \|/, "| 99 |")) done = 1 }
     { print }' doc/sink.md >"$tmp/changed.md"
if cmp -s doc/sink.md "$tmp/changed.md"; then
    fail "could not change a number of doc/sink.md's tables for the self-check"
else
    "$py" dev/sink.py --check-chapter "$tmp/changed.md" >"$tmp/out2" 2>&1
    rc2=$?
    check "a copy of the chapter with a seed count changed to 99 fails the check (exit 1, FAIL)" \
        eval '[ $rc2 -ne 0 ] && grep -q "^FAIL - .*table" "$tmp/out2"'
fi
finish
