#!/usr/bin/env bash
# Checkpoints move between the C trainer and the PyTorch reference: a model trained by
# train_swat and evaluated by dev/train_swat.py gives the same eval_loss (1e-5 relative),
# and the reverse, for eval windows below and above the training one, for:
#   sigmoid and softmax (H = 4), version 2 with H = 6 (ALiBi 3:3) and H = 12 (12:0), where
#   the version 2 slopes 2^(-8k/H) differ from version 1's 2^-k, and a start token
#   (--vocab 257 --bos 256 on a byte shard).
# Training with a start token and H = 6 from the same initial weights gives the same losses.
# Then version 1: the committed fixture tests/fixtures/v1_h6.ckpt (made by the version 1
# code, H = 6) evaluates the same in both, and a model fine-tuned from it by either program
# is saved as version 1 and evaluates the same in the other. Both read each other's CRC, a
# flipped byte is rejected by both with the checksum error, and without --eval-len and
# --eval-window both evaluate the same chunks (the checkpoint's T and window).
# Prints ok/FAIL lines and "N passed, M failed[, K skipped]".
set -u
bin=${SWAT_BIN:-./train_swat}
py=${PYTHON:-/usr/bin/python3}
fixture=${SWAT_V1_FIXTURE:-tests/fixtures/v1_h6.ckpt}
fixture_eval=${SWAT_V1_FIXTURE_EVAL:-tests/fixtures/v1_h6_eval.bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "SKIPPED - C <-> PyTorch checkpoint cross-check: no PyTorch for $py (sudo apt-get install python3-torch)"
  echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
ref() { "$py" dev/train_swat.py --threads 1 "$@"; }
# the reference's training defaults before it took train_swat's (issue 25): the checks below
# were made with them, and keep their numbers
old="--lr 1e-3 --shuffle off --param-init torch-randn"
# a small byte shard: some text, repeated with variations
text_shard "$tmp/text.bin" 12345 6000
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; r = d / (b < 0 ? -b : b); exit !(a != "" && b != "" && r <= 1e-5) }'; }
header_int() { od -An -t d4 -j $((4 * $2)) -N 4 "$1" | tr -d ' '; }   # header_int FILE INDEX
flip_byte() { cp "$1" "$2"; printf '\x5a' | dd of="$2" bs=1 seek="$3" conv=notrunc 2>/dev/null; }

# compare WHAT CKPT SHARD EVAL-ARGS...: C and PyTorch eval_loss of CKPT on SHARD agree
compare() {
  local what=$1 ckpt=$2 shard=$3; shift 3
  local c p
  c=$("$bin" --init "$ckpt" --eval "$shard" "$@" 2>&1 | sed -n 's/^eval_loss //p')
  p=$(ref --init "$ckpt" --eval "$shard" "$@" 2>&1 | sed -n 's/^eval_loss //p')
  if close "$c" "$p"; then ok "$what: C $c, PyTorch $p"; else fail "$what ($*): C '$c', PyTorch '$p'"; fi
}

# pair NAME VERSION MODEL-FLAGS...: train the same configuration with both programs (15 steps),
# check both wrote checkpoint version VERSION, evaluate each with both at windows 8 and 100
pair() {
  local name=$1 ver=$2; shift 2
  local run="--batch 4 --seq 64 --steps 15 --warmup 3"
  if ! "$bin" --train "$tmp/text.bin" --out "$tmp/c_$name" $run "$@" --val-every 0 --sample-every 0 >"$tmp/c_$name.log" 2>&1; then
    fail "C training ($name): $(tail -1 "$tmp/c_$name.log")"; return
  fi
  if ! ref --train "$tmp/text.bin" $run "$@" $old --save "$tmp/py_$name.ckpt" >"$tmp/py_$name.log" 2>&1; then
    fail "PyTorch training ($name): $(tail -1 "$tmp/py_$name.log")"; return
  fi
  local vc vp
  vc=$(header_int "$tmp/c_$name/model.ckpt" 1); vp=$(header_int "$tmp/py_$name.ckpt" 1)
  if [ "$vc" = "$ver" ] && [ "$vp" = "$ver" ]; then ok "$name: both write checkpoint version $ver"
  else fail "$name: checkpoint version C '$vc', PyTorch '$vp', expected $ver"; fi
  for who in C PyTorch; do
    local ckpt=$tmp/py_$name.ckpt
    [ $who = C ] && ckpt=$tmp/c_$name/model.ckpt
    for ew in 8 100; do
      compare "$who-trained $name model, eval window $ew" "$ckpt" "$tmp/text.bin" --eval-len 200 --eval-window $ew --eval-chunks 20
    done
  done
}

shape="--layers 2 --heads 4 --dim 32 --ffn 64"
pair sigmoid 2 --vocab 256 $shape --window 16 --attn sigmoid --alibi 2:2
pair softmax 2 --vocab 256 $shape --window 16 --attn softmax --alibi 2:2
pair h6 2 --vocab 256 --layers 2 --heads 6 --dim 48 --ffn 64 --window 16 --attn sigmoid --alibi 3:3 --rope on
pair h12 2 --vocab 256 --layers 2 --heads 12 --dim 48 --ffn 64 --window 16 --attn sigmoid --alibi 12:0 --rope on
pair bos 2 --vocab 257 --bos 256 $shape --window 16 --attn sigmoid --alibi 2:2 --rope on
for name in bos; do
  b=$(header_int "$tmp/c_$name/model.ckpt" 16 2>/dev/null); pb=$(header_int "$tmp/py_$name.ckpt" 16 2>/dev/null)
  if [ "$b" = 256 ] && [ "$pb" = 256 ]; then ok "bos: both store the start token 256 in header[16]"
  else fail "bos: header[16] C '$b', PyTorch '$pb', expected 256"; fi
done

# training with a start token and H = 6 from the same initial weights (a PyTorch checkpoint
# after 0 steps), unshuffled: the losses of 3 steps agree, so both build the same batches
# ([bos, t[p+bT] .. t[p+bT+T-2]] against t[p+bT] .. t[p+bT+T-1], cursor + B*T) with the same slopes
init="--vocab 257 --bos 256 --layers 1 --heads 6 --dim 24 --ffn 32 --window 16 --alibi 3:3"
steps="--train $tmp/text.bin --batch 2 --seq 64 --steps 3 --warmup 0 --lr 1e-3"
if ref --train "$tmp/text.bin" $init --seq 64 --steps 0 $old --save "$tmp/init_bos.ckpt" >"$tmp/init.log" 2>&1 &&
   "$bin" --init "$tmp/init_bos.ckpt" $steps --shuffle off --out "$tmp/c_tr" --val-every 0 --sample-every 0 >"$tmp/c_tr.out" 2>&1; then
  c=$(sed -n 's/^step \([0-9]*\) loss \([^ ]*\) .*/\2/p' "$tmp/c_tr/log.txt" | tr '\n' ' ')
  p=$(ref --init "$tmp/init_bos.ckpt" $steps $old --dtype float64 2>&1 | sed -n 's/^step [0-9/]* loss \([^ ]*\) .*/\1/p' | tr '\n' ' ')
  c=$(echo $c); p=$(echo $p); same=1; set -- $p
  for x in $c; do close "$x" "${1:-}" || same=0; shift; done
  if [ "$same" = 1 ] && [ -n "$c" ] && [ "$(echo $c | wc -w)" = 3 ] && [ $# = 0 ]; then ok "start token + H = 6, 3 training steps from the same init: C $c, PyTorch $p"
  else fail "start token + H = 6, 3 training steps from the same init: C '$c', PyTorch '$p'"; fi
else fail "start-token training from a PyTorch init: $(tail -1 "$tmp/c_tr.out" 2>/dev/null || tail -1 "$tmp/init.log")"; fi

# CRC: a byte flipped in the weights (and one in header[13], still a plausible T) is rejected by the other program
msg="checksum mismatch: the file is corrupt or was modified"
if [ -f "$tmp/py_h6.ckpt" ] && [ -f "$tmp/c_h6/model.ckpt" ]; then
  for off in 52 5000; do
    flip_byte "$tmp/py_h6.ckpt" "$tmp/bad_py.ckpt" $off
    flip_byte "$tmp/c_h6/model.ckpt" "$tmp/bad_c.ckpt" $off
    if "$bin" --init "$tmp/bad_py.ckpt" --eval "$tmp/text.bin" >"$tmp/out" 2>&1; then fail "C accepted a PyTorch checkpoint with byte $off changed"
    elif grep -q "$msg" "$tmp/out"; then ok "C rejects a PyTorch checkpoint with byte $off changed: $(grep "$msg" "$tmp/out" | head -1)"
    else fail "C rejects a changed PyTorch checkpoint without the checksum message: $(head -1 "$tmp/out")"; fi
    if ref --init "$tmp/bad_c.ckpt" --eval "$tmp/text.bin" >"$tmp/out" 2>&1; then fail "PyTorch accepted a C checkpoint with byte $off changed"
    elif grep -q "$msg" "$tmp/out"; then ok "PyTorch rejects a C checkpoint with byte $off changed: $(grep "$msg" "$tmp/out" | head -1)"
    else fail "PyTorch rejects a changed C checkpoint without the checksum message: $(head -1 "$tmp/out")"; fi
  done
  # defaults: E = the checkpoint's T (64), W = its window (16); both say what they evaluate
  c=$("$bin" --init "$tmp/c_h6/model.ckpt" --eval "$tmp/text.bin" 2>&1 | sed -n 's/^\(eval: [0-9]* chunks of [0-9]* tokens, window [0-9]*\).*/\1/p')
  p=$(ref --init "$tmp/c_h6/model.ckpt" --eval "$tmp/text.bin" 2>&1 | sed -n 's/^\(eval: [0-9]* chunks of [0-9]* tokens, window [0-9]*\).*/\1/p')
  if [ -n "$c" ] && [ "$c" = "$p" ] && [ "${c#*of 64 tokens, window 16}" != "$c" ]; then ok "default eval length and window: both '$c'"
  else fail "default eval length and window: C '$c', PyTorch '$p' (expected 64 tokens, window 16)"; fi
  compare "default eval length and window" "$tmp/c_h6/model.ckpt" "$tmp/text.bin"
fi

# version 1: the committed fixture, and models fine-tuned from it by each program
if [ ! -f "$fixture" ] || [ ! -f "$fixture_eval" ]; then
  skip "version 1 checks: $fixture or $fixture_eval is missing"
else
  compare "version 1 fixture (H = 6, 3:3), eval length 32, window 8" "$fixture" "$fixture_eval" --eval-len 32 --eval-window 8
  compare "version 1 fixture, eval length 256, window 256" "$fixture" "$fixture_eval" --eval-len 256 --eval-window 256
  tune="--train $fixture_eval --batch 4 --seq 32 --steps 3 --warmup 0"
  if "$bin" --init "$fixture" $tune --out "$tmp/c_v1" --val-every 0 --sample-every 0 >"$tmp/c_v1.log" 2>&1; then
    v=$(header_int "$tmp/c_v1/model.ckpt" 1)
    if [ "$v" = 1 ]; then ok "C fine-tuned from version 1 saves version 1"; else fail "C fine-tuned from version 1 saves version '$v'"; fi
    compare "C-fine-tuned version 1 model, eval length 32, window 8" "$tmp/c_v1/model.ckpt" "$fixture_eval" --eval-len 32 --eval-window 8
  else fail "C fine-tuning from version 1: $(tail -1 "$tmp/c_v1.log")"; fi
  if ref --init "$fixture" $tune $old --save "$tmp/py_v1.ckpt" >"$tmp/py_v1.log" 2>&1; then
    v=$(header_int "$tmp/py_v1.ckpt" 1)
    if [ "$v" = 1 ]; then ok "PyTorch fine-tuned from version 1 saves version 1"; else fail "PyTorch fine-tuned from version 1 saves version '$v'"; fi
    compare "PyTorch-fine-tuned version 1 model, eval length 256, window 256" "$tmp/py_v1.ckpt" "$fixture_eval" --eval-len 256 --eval-window 256
  else fail "PyTorch fine-tuning from version 1: $(tail -1 "$tmp/py_v1.log")"; fi
fi
finish
