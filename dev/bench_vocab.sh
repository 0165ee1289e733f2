#!/usr/bin/env bash
# make bench's large-vocabulary rows: peak resident memory of the default model shape with
# GPT-2's vocabulary (V = 50257, data/gpt2/ shards) for training at B*T = 4096 (2 steps) and
# evaluation at E = 1024 x 8 chunks and E = 256 x 16. The classifier runs in chunks of
# positions (logit_rows), so the logits never take B*T*V floats. A benchmark: it asserts nothing.
set -u
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rss() { awk '/Maximum resident set size/ { printf "%.0f MB", $NF / 1024 }' "$1"; }
if [ ! -x /usr/bin/time ]; then echo "large vocabulary: SKIPPED (no /usr/bin/time: apt-get install time)"; exit 0; fi
/usr/bin/time -v ./train_swat --train data/gpt2/train.bin --vocab 50257 --steps 2 --warmup 0 --batch 16 --seq 256 \
  --val-every 0 --final-val-chunks -1 --sample-every 0 --out "$tmp/run" > /dev/null 2> "$tmp/train.time" || { echo "training failed"; exit 1; }
/usr/bin/time -v ./train_swat --init "$tmp/run/model.ckpt" --eval data/gpt2/train.bin --eval-len 1024 --eval-chunks 7 > /dev/null 2> "$tmp/e1.time"
/usr/bin/time -v ./train_swat --init "$tmp/run/model.ckpt" --eval data/gpt2/train.bin --eval-len 256 --eval-chunks 16 > /dev/null 2> "$tmp/e2.time"
echo "large vocabulary (V = 50257, the default model shape), peak RSS:"
echo "  training, B*T = 16 x 256 = 4096 : $(rss "$tmp/train.time")"
echo "  --eval, E = 1024, 7 chunks      : $(rss "$tmp/e1.time")"
echo "  --eval, E = 256, 16 chunks      : $(rss "$tmp/e2.time")"
