#!/usr/bin/env bash
# The committed attention figures in dev/results/attention/, from two checkpoints:
#   out/bible/model.ckpt                                  `make train` (SWAT: sigmoid, ALiBi 4:4, RoPE, w=64)
#   dev/results/full/runs/vanilla-softmax-rope/model.ckpt `dev/experiments.py --mode full` (w = T = 32)
# The text is the start of the validation part of the Bible (Colossians 1:17), unseen in training.
set -eu
py=${PYTHON:-/usr/bin/python3}
out=dev/results/attention
mkdir -p "$out"
offset=$("$py" -c "print(open('data/bible/kjv.txt','rb').read().find(b'  17 And he is before all things'))")
[ "$offset" -ge 0 ] || { echo "error: the passage is not in data/bible/kjv.txt (run: make data)" >&2; exit 1; }
swat=out/bible/model.ckpt
vanilla=dev/results/full/runs/vanilla-softmax-rope/model.ckpt
if [ -f "$swat" ]; then
  "$py" dev/attention_maps.py --ckpt "$swat" --out "$out/swat" --layer all --offset "$offset" --len 128
else echo "skipped the SWAT maps: $swat is missing (run: make train)"; fi
if [ -f "$vanilla" ]; then
  "$py" dev/attention_maps.py --ckpt "$vanilla" --out "$out/vanilla_softmax" --layer all --offset "$offset" --len 32
else echo "skipped the vanilla maps: $vanilla is missing (run: $py dev/experiments.py --mode full)"; fi
