#!/usr/bin/env bash
# tests/asan.sh: train_swat under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer
# included, as ASan enables it on Linux).
#
#   bash tests/asan.sh          (from the repo root; needs gcc with libasan/libubsan)
#
# Builds train_swat.c with -fsanitize=address,undefined -fno-omit-frame-pointer -g -O1 into a
# temp dir (SWAT_ASAN_BIN=path uses an existing sanitizer build instead), then runs
#   1. a handful of representative runs: training with val, samples, --save-every, softmax and
#      vanilla variants, --steps 0 --save, --init fine-tuning with another window, --eval,
#      --stream, --generate with top-k, --resume; a start token (--bos) through training,
#      evaluation, streaming and generation; version 1 checkpoints (--init, --stream, --resume);
#   2. the quick subset of tests/reliability.sh against that binary (bit-exact resume, threads,
#      non-finite, the bad-file corpus, bad flags), with SWAT_SANITIZER=1;
# and fails on any sanitizer report (abort_on_error=1, halt_on_error=1). Every check prints
# "ok - ..." or "FAIL - ..."; the last line is "N passed, M failed[, K skipped]".
set -u
export LC_ALL=C
cd "$(dirname "$0")/.." || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_WAIT_POLICY=passive
. tests/lib.sh

TMP=$(mktemp -d "${TMPDIR:-/tmp}/swat_asan.XXXXXX")
trap '[ "${SWAT_KEEP_TMP:-0}" = 1 ] && echo "# scratch kept in $TMP" || rm -rf "$TMP"' EXIT

if [ -n "${SWAT_ASAN_BIN:-}" ]; then
  BIN=$SWAT_ASAN_BIN
else
  BIN=$TMP/train_swat_asan
  OPENMP=$(printf 'int main(void){return 0;}' | gcc -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
  if gcc -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined $OPENMP \
       -o "$BIN" train_swat.c -lm 2>"$TMP/build.err"; then
    ok "sanitizer build (gcc -fsanitize=address,undefined -g -O1 $OPENMP)"
  else
    fail "sanitizer build failed: $(head -c 400 "$TMP/build.err" | tr '\n' '|')"; summary; exit 1
  fi
fi

/usr/bin/python3 tests/make_bad_files.py "$TMP/bad" --valid "$TMP/v" >/dev/null || { fail "make_bad_files.py"; summary; exit 1; }
V=$TMP/v
TINY="--layers 2 --heads 2 --dim 32 --ffn 64 --seq 32 --window 8 --batch 4"
# sane NAME EXPECT-REGEX ARGS...: exit 0, the regex in stdout, no sanitizer report
sane() {
  local name=$1 expect=$2; shift 2
  { OMP_NUM_THREADS=${THREADS:-2} timeout 300 "$BIN" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; } 2>/dev/null
  local rc=$?
  if [ $rc -eq 0 ] && grep -a -q -E -- "$expect" "$TMP/$name.out" &&
     ! grep -a -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$TMP/$name.err"; then
    ok "sanitized: $name"
  else
    fail "sanitized: $name (rc $rc): $(grep -a -m3 -E 'ERROR|SUMMARY|runtime error|error:' "$TMP/$name.err" | tr '\n' '|' | head -c 600)"
  fi
}
sane "train sigmoid, val, samples, save-every, stop-after" "^saved " $TINY --steps 8 --warmup 2 --stop-after 5 \
  --train "$V/small.bin" --val "$V/val.bin" --val-every 2 --val-chunks 3 --sample-every 3 --sample-len 16 --save-every 2 --out "$TMP/a"
sane "train softmax vanilla (window > seq), no rope, alibi 0:0, shuffle off" "^saved " --layers 1 --heads 4 --dim 32 --ffn 48 \
  --seq 24 --window 100 --batch 3 --attn softmax --rope off --alibi 0:0 --shuffle off --steps 4 --warmup 0 \
  --train "$V/small.bin" --val-every 0 --sample-every 0 --out "$TMP/b"
sane "train window 1, odd sizes, V=16" "^saved " --vocab 16 --layers 1 --heads 3 --dim 18 --ffn 7 --seq 5 --window 1 \
  --batch 3 --alibi 1:2 --steps 3 --warmup 1 --train "$V/ok_shard16.bin" --val-every 0 --sample-every 0 --out "$TMP/c"
sane "--steps 0 --save" "^wrote " $TINY --steps 0 --save "$TMP/init.ckpt"
sane "--init fine-tune with another window and seq" "^saved " --init "$TMP/a/model.ckpt" --window 4 --seq 16 --batch 2 \
  --steps 3 --warmup 0 --train "$V/small.bin" --val-every 0 --sample-every 2 --sample-len 5 --out "$TMP/d"
sane "--resume to completion" "^saved " --resume "$TMP/a/model.ckpt" --train "$V/small.bin" --val "$V/val.bin" \
  --val-every 2 --sample-every 3 --sample-len 16 --out "$TMP/a"
sane "a run stopped early" "^saved " $TINY --steps 6 --warmup 1 --stop-after 3 --train "$V/small.bin" --val "$V/val.bin" \
  --val-every 0 --sample-every 0 --out "$TMP/h"
sane "--resume alone: flags from log.txt, into the checkpoint's folder (no leak)" "^saved .*step 6 of 6" --resume "$TMP/h/model.ckpt"
sane "--eval with another length and window" "^eval_loss " --init "$TMP/a/model.ckpt" --eval "$V/val.bin" --eval-len 100 --eval-window 3 --eval-chunks 5
sane "--eval --stream" "^eval_loss " --init "$TMP/a/model.ckpt" --eval "$V/val.bin" --stream --eval-window 12
sane "--generate top-k" "." --init "$TMP/a/model.ckpt" --generate 50 --prompt "in the beginning" --top-k 5 --temperature 1.2
sane "--generate greedy" "." --init "$TMP/a/model.ckpt" --generate 20 --temperature 0
sane "--generate V=16" "." --init "$TMP/c/model.ckpt" --generate 20
THREADS=1 sane "train one thread" "^saved " $TINY --steps 3 --warmup 0 --train "$V/small.bin" --val-every 0 --sample-every 0 --out "$TMP/e"
# checkpoint version 2: a start token through training, evaluation, streaming and sampling;
# version 1 files (no CRC, the old slopes) through --init, --stream and --resume
sane "train with a start token (--vocab 257 --bos 256), samples" "^saved " $TINY --vocab 257 --bos 256 --steps 3 --warmup 0 \
  --train "$V/small.bin" --val "$V/val.bin" --val-every 2 --val-chunks 2 --sample-every 2 --sample-len 8 --out "$TMP/f"
sane "--eval with a start token" "^eval_loss " --init "$TMP/f/model.ckpt" --eval "$V/val.bin" --eval-len 40 --eval-chunks 3
sane "--eval --stream with a start token" "^eval_loss " --init "$TMP/f/model.ckpt" --eval "$V/val.bin" --stream --eval-window 5
sane "--generate with a start token" "." --init "$TMP/f/model.ckpt" --generate 10 --prompt "in the"
if [ -s tests/fixtures/v1_h6.ckpt ]; then
  sane "version 1 fixture --eval" "^eval_loss " --init tests/fixtures/v1_h6.ckpt --eval tests/fixtures/v1_h6_eval.bin --eval-len 32 --eval-window 8
  sane "version 1 fixture --stream" "^eval_loss " --init tests/fixtures/v1_h6.ckpt --eval tests/fixtures/v1_h6_eval.bin --stream --eval-window 8
fi
sane "--resume a version 1 checkpoint" "^saved " --resume "$V/ok_ckpt_state_v1.ckpt" --train "$V/ok_shard16.bin" --val-every 0 --sample-every 0 --out "$TMP/g"

# the quick subset of the reliability suite on the sanitizer build. Error paths exit through
# die() with live allocations by design, so leak detection is off there (it is on above);
# allocator_may_return_null=1 lets an absurd allocation fail into the trainer's own error.
ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0:allocator_may_return_null=1 SWAT_BIN=$BIN SWAT_QUICK=1 SWAT_SANITIZER=1 SWAT_SANITIZER_LOG=$TMP/reliability_sanitizer.txt \
  bash tests/reliability.sh >"$TMP/reliability.out" 2>&1
rel_rc=$?
grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$TMP/reliability.out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$TMP/reliability.out" | tail -n 1)
if [ -z "$line" ]; then
  fail "tests/reliability.sh (quick, sanitized) printed no result line (exit $rel_rc)"
else
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
fi
if [ -s "$TMP/reliability_sanitizer.txt" ]; then
  echo "# first sanitizer reports of the reliability subset:"
  grep -a -E '^== |ERROR: |SUMMARY: |runtime error' "$TMP/reliability_sanitizer.txt" | head -20 | sed 's/^/#   /'
fi
summary
[ "$failed" -eq 0 ]
