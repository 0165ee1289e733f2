#!/usr/bin/env bash
# tests/doc_names.sh: the documentation cites code by name, never by line number, so the names
# must stay true. Every `name` in backticks that looks like a C or Python identifier with an
# underscore (attention_forward, infer_step, make_sequence, ...) in README.md, doc/, dev/*.md,
# data/README.md and tests/README.md must occur in the code (train_swat.c, test_swat.c, dev/,
# data/, tests/, fuzz/). A function renamed or removed without its docs fails here.
# Also checks the layout the docs describe: the model first, the machinery (section 12) after
# main, and dev/READING.md's steps in the order of the file. Prints one line per missing name
# and "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
docs=$(ls README.md doc/*.md dev/*.md data/README.md tests/README.md 2>/dev/null)
code=$(ls train_swat.c test_swat.c dev/*.py dev/*.c dev/*.sh data/*.py data/*.c data/*.sh tests/*.sh tests/*.py fuzz/*.c fuzz/*.h fuzz/*.py Makefile 2>/dev/null)
pass=0; fail=0
names=$(grep -oh '`[a-z][a-z0-9]*_[a-z0-9_]*`' $docs | tr -d '`' | sort -u)
for n in $names; do
  if grep -qw -- "$n" $code; then pass=$((pass + 1))
  else echo "FAIL - \`$n\` is named in $(grep -l "\`$n\`" $docs | tr '\n' ' ')but occurs in no code file"; fail=$((fail + 1)); fi
done
# and no line-number references into the source ("line 120", "lines ~40-60", "train_swat.c:120")
lines=$(grep -n -E '\blines? ~?[0-9]+|\.(c|h|py|sh):[0-9]+' $docs || true)
if [ -n "$lines" ]; then echo "FAIL - line-number references into the code:"; echo "$lines" | head; fail=$((fail + 1))
else pass=$((pass + 1)); fi
# the layout the docs describe (issue 16): the model before the machinery. The first model layer
# in the first quarter of train_swat.c, and the machinery of section 12 defined after main.
total=$(wc -l < train_swat.c)
def() { # the line where function $1 is defined (not declared): its signature ends in "{"
  awk -v f="$1" '!sig && $0 ~ "^static [^(]*[ *]" f "\\(" { sig = NR }
                 sig && /[{;][ \t]*$/ { if ($0 ~ /[{][ \t]*$/) { print sig; exit } sig = 0 }' train_swat.c; }
first=$(def matmul_forward_naive); main_at=$(grep -n -m1 '^int main(' train_swat.c | cut -d: -f1)
late=""
for f in exp_approx gemm gemm_serial scratch_floats pack_model infer_step_all; do
  at=$(def "$f"); if [ -z "$at" ] || [ -z "$main_at" ] || [ "$at" -lt "$main_at" ]; then late="$late $f(line ${at:-none})"; fi
done
if [ -n "$first" ] && [ $((first * 4)) -le "$total" ] && [ -z "$late" ]; then
  echo "ok - train_swat.c: the first model layer at $first of $total lines, the machinery of section 12 after main"
  pass=$((pass + 1))
else echo "FAIL - train_swat.c's layout: matmul_forward_naive at ${first:-none} of $total lines; before main:$late"; fail=$((fail + 1)); fi
# dev/READING.md reads the file top to bottom: the names in bold in its numbered list (one step
# a section) are defined in train_swat.c in the order of the list
defined_at() { # the line of function $1's definition, or of struct $1's closing "} $1;"
  local at; at=$(def "$1"); [ -n "$at" ] || at=$(grep -n -m1 "^} $1;" train_swat.c | cut -d: -f1)
  [ -n "$at" ] || { [ "$1" = main ] && at=$main_at; }; echo "$at"; }
order=$(awk '/^## The order/ { on = 1; next } /^## / { on = 0 } on && /^ *[0-9]+\. \*\*/ {
               split($0, bold, /\*\*/); n = split(bold[2], parts, "`"); names = ""
               for (i = 2; i <= n; i += 2) names = names " " parts[i]
               if (names != "") print $1 names }' dev/READING.md)
prev_name=""; prev_at=0; bad=""
while read -r step names; do
  last=0; last_name=""
  for n in $names; do
    at=$(defined_at "$n")
    if [ -z "$at" ]; then bad="$bad; step ${step%.}: $n is not defined in train_swat.c"; continue; fi
    if [ "$at" -lt "$prev_at" ]; then bad="$bad; step ${step%.}: $n (line $at) before $prev_name (line $prev_at)"; fi
    if [ "$at" -gt "$last" ]; then last=$at; last_name=$n; fi
  done
  if [ "$last" -gt 0 ]; then prev_at=$last; prev_name=$last_name; fi
done <<< "$order"
if [ -z "$order" ]; then echo "FAIL - dev/READING.md has no numbered steps under '## The order'"; fail=$((fail + 1))
elif [ -n "$bad" ]; then echo "FAIL - dev/READING.md's order is not train_swat.c's${bad}"; fail=$((fail + 1))
else echo "ok - dev/READING.md's steps follow train_swat.c top to bottom ($(echo "$order" | wc -l) steps)"; pass=$((pass + 1)); fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
