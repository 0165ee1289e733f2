#!/usr/bin/env bash
# tests/retnet.sh: the retention baseline of doc/linear.md (dev/retnet.py): its recurrent and
# chunked forms against its parallel form, its gradient against finite differences (float64),
# its sizes; then the chapter's numbers against dev/results/retnet/results.json.
# Prints "N passed, M failed" (SKIPPED and counted without PyTorch).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
PY=${PYTHON:-/usr/bin/python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  skip "retention tests: $PY cannot import torch (sudo apt-get install python3-torch)"
  finish
fi
# suite NAME CMD...: run a Python check that prints ok/FAIL lines and "N passed, M failed",
# echo its lines and add its counts to this suite's
suite() {
  local name=$1 out line f
  shift
  out=$("$@" 2>&1)
  echo "$out" | grep -E '^(ok|FAIL) - '
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    fail "$name printed no result line: $(echo "$out" | tail -n 3)"
  else
    passed=$((passed + ${line%% passed*})); f=${line#*passed, }; failed=$((failed + ${f%% failed*}))
  fi
}
suite dev/test_retnet.py env OMP_NUM_THREADS=1 "$PY" dev/test_retnet.py
# doc/linear.md's tables and noted numbers against the committed results.json
suite "dev/linear.py --check-doc" "$PY" dev/linear.py --check-doc
finish
