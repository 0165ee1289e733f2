#!/usr/bin/env bash
# tests/naive.sh: the trainer built on the reference kernels (make train_swat_naive: matmul and
# attention as the plain loops of the math) trains like the fast trainer: the same losses, step
# by step, to float32 rounding (the sums are grouped differently). Sigmoid and softmax, a
# window shorter than the sequence. Prints "N passed, M failed".
set -u
export LC_ALL=C OMP_NUM_THREADS=1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh
for b in ./train_swat ./train_swat_naive; do
  [ -x "$b" ] || { fail "$b is not built (make train_swat train_swat_naive)"; finish; }
done
text_shard "$tmp/text.bin" 99 3000 "and the spirit of god moved upon the face of the waters and god said let there be light "
for attn in sigmoid softmax; do
  args="--train $tmp/text.bin --layers 2 --heads 4 --dim 32 --ffn 64 --seq 48 --window 12 --batch 4 --steps 10 --warmup 2
        --attn $attn --val-every 0 --sample-every 0 --shuffle off"
  ./train_swat $args --out "$tmp/fast_$attn" >/dev/null && ./train_swat_naive $args --out "$tmp/naive_$attn" >/dev/null || {
    fail "$attn: a run failed"; continue; }
  d=$(maxdiff <(losses "$tmp/fast_$attn") <(losses "$tmp/naive_$attn"))
  [ "$(losses "$tmp/naive_$attn" | wc -l)" -eq 10 ] || d=inf
  if within "$d" 1e-4; then
    ok "train_swat_naive ($attn) gives the fast trainer's 10 losses (max |difference| $d)"
  else fail "train_swat_naive ($attn): losses differ by $d"; fi
done
finish
