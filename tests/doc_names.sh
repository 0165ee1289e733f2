#!/usr/bin/env bash
# tests/doc_names.sh: the documentation cites code by name, never by line number, so the names
# must stay true. Every `name` in backticks that looks like a C or Python identifier with an
# underscore (attention_forward, infer_step, make_sequence, ...) in README.md, doc/, dev/*.md,
# data/README.md and tests/README.md must occur in the code (train_swat.c, test_swat.c, dev/,
# data/, tests/, fuzz/). A function renamed or removed without its docs fails here.
# Prints one line per missing name and "N passed, M failed".
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
# and no "line N" references into the source
lines=$(grep -n -E '(\(|`, |`\) )lines? [0-9]+' $docs || true)
if [ -n "$lines" ]; then echo "FAIL - line-number references into the code:"; echo "$lines" | head; fail=$((fail + 1))
else pass=$((pass + 1)); fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
