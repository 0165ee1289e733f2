#!/usr/bin/env bash
# Checkpoints move between the C trainer and the PyTorch reference: a model trained by
# train_swat and evaluated by dev/train_swat.py gives the same eval_loss (1e-5 relative),
# and the reverse, for sigmoid and softmax, eval windows below and above the training one.
# Prints ok/FAIL lines and "N passed, M failed[, K skipped]".
set -u
bin=${SWAT_BIN:-./train_swat}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0; skip=0
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "SKIPPED - C <-> PyTorch checkpoint cross-check: no PyTorch for $py (sudo apt-get install python3-torch)"
  echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
# a small byte shard: some text, repeated with variations
"$py" - "$tmp/text.bin" <<'PY'
import struct, sys
words = b"in the beginning was the word and the word was with god and the light shineth in darkness ".split()
out, x = [], 12345
for i in range(6000):
    x = (x * 1103515245 + 12345) % 2**31
    out.append(words[x % len(words)])
data = b" ".join(out)
open(sys.argv[1], "wb").write(struct.pack("<256i", *([20240520, 1, len(data)] + [0] * 253)) + struct.pack("<%dH" % len(data), *data))
PY
shape="--layers 2 --heads 4 --dim 32 --ffn 64 --seq 64 --batch 4"
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; r = d / (b < 0 ? -b : b); exit !(a != "" && b != "" && r <= 1e-5) }'; }
for attn in sigmoid softmax; do
  "$bin" --train "$tmp/text.bin" --out "$tmp/c_$attn" $shape --window 16 --attn $attn --alibi 2:2 --steps 15 --warmup 3 \
    --val-every 0 --sample-every 0 >/dev/null || { echo "FAIL - C training ($attn)"; fail=$((fail + 1)); continue; }
  "$py" dev/train_swat.py --train "$tmp/text.bin" --vocab 256 $shape --window 16 --attn $attn --alibi 2:2 --steps 15 \
    --warmup 3 --save "$tmp/py_$attn.ckpt" >/dev/null || { echo "FAIL - PyTorch training ($attn)"; fail=$((fail + 1)); continue; }
  for ckpt in "$tmp/c_$attn/model.ckpt" "$tmp/py_$attn.ckpt"; do
    for ew in 8 100; do
      args="--init $ckpt --eval $tmp/text.bin --eval-len 200 --eval-window $ew --eval-chunks 20"
      c=$("$bin" $args | sed -n 's/^eval_loss //p')
      p=$("$py" dev/train_swat.py $args | sed -n 's/^eval_loss //p')
      who=$([ "$ckpt" = "$tmp/py_$attn.ckpt" ] && echo "PyTorch-trained" || echo "C-trained")
      if close "$c" "$p"; then echo "ok - $who $attn model, eval window $ew: C $c, PyTorch $p"; pass=$((pass + 1))
      else echo "FAIL - $who $attn model, eval window $ew: C '$c', PyTorch '$p'"; fail=$((fail + 1)); fi
    done
  done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
