#!/usr/bin/env bash
# The same training step (dev/kernel_bench.c: forward + backward of the make-bench default
# model) built by gcc and clang for three vector widths, and with gemm's plain C tile:
# the trainer should be fast whichever compiler and machine a reader has, not only with the
# one it was tuned on. Builds that the machine cannot run are reported and skipped.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
threads=${THREADS:-$(nproc)}
printf '%-8s %-54s %10s %9s\n' compiler flags ms/step GFLOP/s
for cc in gcc clang; do
  command -v "$cc" >/dev/null || { echo "$cc: not installed, skipped"; continue; }
  for flags in "-march=native -mprefer-vector-width=512" "-march=x86-64-v3" "-march=x86-64" \
               "-march=native -mprefer-vector-width=512 -DSWAT_PLAIN_C"; do
    bin="$tmp/kb"
    if ! $cc -std=c11 -O3 -ffp-contract=fast -fopenmp $flags -o "$bin" dev/kernel_bench.c -lm 2>/dev/null; then
      printf '%-8s %-54s %s\n' "$cc" "$flags" "does not build here, skipped"; continue
    fi
    out=$(OMP_NUM_THREADS=$threads "$bin" 2>&1); rc=$?
    line=$(echo "$out" | grep '^step') || { # a CPU without the instructions dies by SIGILL (rc 132)
      printf '%-8s %-54s %s\n' "$cc" "$flags" "does not run here (exit $rc: $(echo "$out" | tail -n 1 | cut -c1-60))"; continue; }
    printf '%-8s %-54s %10s %9s\n' "$cc" "$flags" "$(echo "$line" | awk '{print $3}')" "$(echo "$line" | awk '{print $5}')"
  done
done
echo "(x86-64-v3: AVX2 + FMA, as on most laptops; x86-64: SSE2 only; SWAT_PLAIN_C: gemm's fallback tile)"
