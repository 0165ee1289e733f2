#!/usr/bin/env bash
# make bench's data-parallel rows: the default model (B16 T256 w64), one process with 2 threads
# against 2 MPI ranks with 1 thread each (the same global batch and the same steps), tokens/s
# as the median step time after warm-up, and the time spent summing the gradients over the
# ranks. A benchmark: it asserts nothing. Skipped with a note without mpirun/train_swat_mpi.
set -u
cd "$(dirname "$0")/.." || exit 1
STEPS=${BENCH_MPI_STEPS:-12}
if ! command -v mpirun >/dev/null || [ ! -x ./train_swat_mpi ]; then
  echo "data parallel: SKIPPED (no mpirun or ./train_swat_mpi: make train_swat_mpi, needs openmpi-bin libopenmpi-dev)"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
RUN="--train data/bible/train.bin --steps $STEPS --warmup 2 --val-every 0 --final-val-chunks -1 --sample-every 0"
median_ms() { awk '$1 == "step" { print $(NF - 2) }' "$1/log.txt" | tail -n +3 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
./train_swat $RUN --threads 2 --out "$tmp/one" > "$tmp/one.out" 2>&1 || { echo "one process failed"; cat "$tmp/one.out"; exit 1; }
mpirun --allow-run-as-root --oversubscribe -np 2 ./train_swat_mpi $RUN --threads 1 --out "$tmp/two" > "$tmp/two.out" 2>&1 \
  || { echo "2 ranks failed"; tail -5 "$tmp/two.out"; exit 1; }
a=$(median_ms "$tmp/one"); b=$(median_ms "$tmp/two")
sum=$(grep -o "took [0-9.]* ms a step" "$tmp/two.out" | awk '{ print $2 }')
awk -v a="$a" -v b="$b" -v s="$sum" 'BEGIN {
  printf "data parallel, default model, 4096 tokens a step (median step after 2 warm-up steps):\n"
  printf "  1 process x 2 threads : %7.1f ms/step  %6.0f tok/s\n", a, 4096 / a * 1000
  printf "  2 ranks x 1 thread    : %7.1f ms/step  %6.0f tok/s  = %.0f%% of one process (summing the gradients: %s ms a step)\n", b, 4096 / b * 1000, 100 * a / b, s }'
