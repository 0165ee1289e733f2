#!/usr/bin/env bash
# fuzz/run.sh [SECONDS]: build the three libFuzzer targets and run each for SECONDS (default 60).
#
#   bash fuzz/run.sh 120          two minutes each
#   bash fuzz/run.sh 600          the issue's ten minutes each
#
# Targets: fuzz_checkpoint (checkpoint_load and what is done with a loaded checkpoint),
# fuzz_shard (shard_load, the batch loader, evaluation), fuzz_args (parse_args and main's
# flag checks). Built with clang -g -O1 -fsanitize=fuzzer,address,undefined
# -fno-sanitize-recover=all (no OpenMP), into FUZZ_OUT (default fuzz/build, git-ignored by
# nobody: it is scratch). Seeds: fuzz/corpus/<target>/ (valid inputs, see make_corpus.py)
# and, for the two file targets, tests/bad/. New inputs go to FUZZ_OUT/corpus_<target>/,
# crashes to FUZZ_OUT/crash-<target>-*, logs to FUZZ_OUT/<target>.log.
# Environment: SWAT_SOURCE_FILE=path fuzzes another copy of train_swat.c; FUZZ_TARGETS="a b"
# runs a subset; FUZZ_JOBS=N runs N targets at once (default 1).
# Prints "ok - <target>: ... no crash" or "FAIL - <target>: crash ..." per target and ends
# with "N passed, M failed"; exit status non-zero iff a target crashed or did not build.
set -u
cd "$(dirname "$0")/.." || exit 1
SECS=${1:-60}
OUT=${FUZZ_OUT:-fuzz/build}
CC=${FUZZ_CC:-clang}
TARGETS=${FUZZ_TARGETS:-fuzz_checkpoint fuzz_shard fuzz_args}
JOBS=${FUZZ_JOBS:-1}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
passed=0; failed=0
SRCDEF=()
if [ -n "${SWAT_SOURCE_FILE:-}" ]; then
  SRCDEF=("-DSWAT_SOURCE=\"$(cd "$(dirname "$SWAT_SOURCE_FILE")" && pwd)/$(basename "$SWAT_SOURCE_FILE")\"")
fi

build() {
  "$CC" -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Wno-unknown-pragmas "${SRCDEF[@]}" -o "$OUT/$1" "fuzz/$1.c" -lm
}

fuzz_one() {  # runs one target; writes its verdict to $OUT/$1.verdict
  local t=$1 seeds=("fuzz/corpus/$t")
  case $t in fuzz_checkpoint|fuzz_shard) seeds+=(tests/bad) ;; esac
  mkdir -p "$OUT/corpus_$t"
  rm -f "$OUT/crash-$t-"*
  local t0=$SECONDS
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$OUT/$t" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -max_len=16384 -detect_leaks=0 \
    -print_final_stats=1 -artifact_prefix="$OUT/crash-$t-" "$OUT/corpus_$t" "${seeds[@]}" >"$OUT/$t.log" 2>&1
  local rc=$? dt=$((SECONDS - t0))
  local execs cov crash
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$OUT/$t.log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$OUT/$t.log" | tail -1 | sed -nE 's/.*cov: ([0-9]+) ft: ([0-9]+).*/cov \1, ft \2/p')
  crash=$(ls "$OUT/crash-$t-"* 2>/dev/null | head -1)
  if [ $rc -eq 0 ] && [ -z "$crash" ]; then
    echo "ok - $t: ${dt}s, ${execs:-?} execs, ${cov:-?}, corpus $(ls "$OUT/corpus_$t" | wc -l) files, no crash" >"$OUT/$t.verdict"
  else
    local why
    why=$(grep -a -m1 -E 'ERROR: |runtime error|fuzz: |deadly signal|out-of-memory|timeout' "$OUT/$t.log" | cut -c1-200)
    echo "FAIL - $t: crash after ${dt}s, ${execs:-?} execs (exit $rc): ${why:-see log}; input ${crash:-none}; log $OUT/$t.log" >"$OUT/$t.verdict"
  fi
}

built=()
for t in $TARGETS; do
  if build "$t" 2>"$OUT/$t.build.log"; then built+=("$t")
  else echo "FAIL - $t: does not build ($(head -c 300 "$OUT/$t.build.log" | tr '\n' '|'))"; failed=$((failed + 1)); fi
done
running=0
for t in "${built[@]}"; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
for t in "${built[@]}"; do
  v=$(cat "$OUT/$t.verdict" 2>/dev/null || echo "FAIL - $t: no verdict")
  echo "$v"
  case $v in ok*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
