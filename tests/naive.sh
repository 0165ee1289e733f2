#!/usr/bin/env bash
# tests/naive.sh: the trainer built on the reference kernels (make train_swat_naive: matmul and
# attention as the plain loops of the math) trains like the fast trainer: the same losses, step
# by step, to float32 rounding (the sums are grouped differently). Sigmoid and softmax, a
# window shorter than the sequence. Prints "N passed, M failed".
set -u
export LC_ALL=C OMP_NUM_THREADS=1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
for b in ./train_swat ./train_swat_naive; do
  [ -x "$b" ] || { echo "FAIL - $b is not built (make train_swat train_swat_naive)"; echo "0 passed, 1 failed"; exit 1; }
done
/usr/bin/python3 - "$tmp/text.bin" <<'PY'
import struct, sys
words = b"and the spirit of god moved upon the face of the waters and god said let there be light ".split()
out, x = [], 99
for i in range(3000):
    x = (x * 1103515245 + 12345) % 2**31
    out.append(words[x % len(words)])
data = b" ".join(out)
open(sys.argv[1], "wb").write(struct.pack("<256i", *([20240520, 1, len(data)] + [0] * 253)) + struct.pack("<%dH" % len(data), *data))
PY
for attn in sigmoid softmax; do
  args="--train $tmp/text.bin --layers 2 --heads 4 --dim 32 --ffn 64 --seq 48 --window 12 --batch 4 --steps 10 --warmup 2
        --attn $attn --val-every 0 --sample-every 0 --shuffle off"
  ./train_swat $args --out "$tmp/fast_$attn" >/dev/null && ./train_swat_naive $args --out "$tmp/naive_$attn" >/dev/null || {
    echo "FAIL - $attn: a run failed"; fail=$((fail + 1)); continue; }
  d=$(paste <(awk '$1 == "step" { print $4 }' "$tmp/fast_$attn/log.txt") <(awk '$1 == "step" { print $4 }' "$tmp/naive_$attn/log.txt") |
      awk 'NF != 2 { print "inf"; exit } { x = $1 - $2; if (x < 0) x = -x; if (x > m) m = x } END { if (NR != 10) print "inf"; else printf "%.2g\n", m }')
  if awk -v d="$d" 'BEGIN { exit !(d != "inf" && d + 0 <= 1e-4) }'; then
    echo "ok - train_swat_naive ($attn) gives the fast trainer's 10 losses (max |difference| $d)"; pass=$((pass + 1))
  else echo "FAIL - train_swat_naive ($attn): losses differ by $d"; fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
