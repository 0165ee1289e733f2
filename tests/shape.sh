#!/usr/bin/env bash
# tests/shape.sh: train_swat.c keeps the shape that lets a student read it in an evening
# (issue 22): no line over 100 columns, no function over 120 lines, no comment block over 12
# lines, and no more lines than MAX_LINES. Issue 22 asks for 3,000; the file is not there yet,
# so MAX_LINES holds it where it is (it may shrink, not grow). Prints "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
f=${1:-train_swat.c}
MAX_LINES=4550
lines=$(wc -l < "$f")
check "$f has $lines lines (at most $MAX_LINES; the goal is 3000)" test "$lines" -le "$MAX_LINES"
long=$(awk -v f="$f" 'length > 100 { n++; if (n <= 5) print "  " f ":" NR ": " length " columns" }
                      END { if (n > 5) print "  ... " n " lines in all" }' "$f")
check "$f: no line over 100 columns${long:+:
$long}" test -z "$long"
# a function starts with a line at column 0 that ends in "{" and is not a struct or an enum,
# and ends at the next "}" in column 0
funcs=$(awk '/^[A-Za-z].*\) *\{$/ && !/^(typedef|struct|enum|union)/ { name = $0; at = NR; next }
             /^}/ && at { n = NR - at + 1; if (n > 120) { sub(/\(.*/, "", name); print "  " name ": " n " lines" }
                          at = 0 }' "$f")
check "$f: no function over 120 lines${funcs:+:
$funcs}" test -z "$funcs"
blocks=$(awk '{ s = $0; sub(/^[ \t]+/, "", s) }
              s ~ /^(\/\*|\*|\/\/)/ { if (!run) first = NR; run++; next }
              { if (run > 12) print "  a comment of " run " lines at " first; run = 0 }' "$f")
check "$f: no comment block over 12 lines${blocks:+:
$blocks}" test -z "$blocks"
finish
