#!/usr/bin/env bash
# tests/dev_tools.sh: the developer tools that include train_swat.c still build and run, so a
# change to the trainer cannot silently break them (dev/kernel_bench.c once stopped at its
# first line when ModelConfig gained a field). A tiny shape: seconds, not a benchmark.
# Prints ok/FAIL lines and "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if make -s dev/kernel_bench >"$tmp/build.log" 2>&1; then
  ok "make dev/kernel_bench builds"
  if OMP_NUM_THREADS=1 timeout 120 dev/kernel_bench 1 16 4 >"$tmp/kb.out" 2>&1 && grep -q '^step (forward+backward)' "$tmp/kb.out" &&
     grep -q '^all matrix products' "$tmp/kb.out"; then
    ok "dev/kernel_bench 1 16 4 runs to its end ($(grep -c ' ms' "$tmp/kb.out") timed lines)"
  else fail "dev/kernel_bench 1 16 4: $(tail -n 2 "$tmp/kb.out" | tr '\n' ' ')"; fi
else fail "make dev/kernel_bench: $(tail -n 2 "$tmp/build.log" | tr '\n' ' ')"; fi
finish
