#!/usr/bin/env bash
# Generation benchmark: tokens per second and peak resident memory for 1k, 8k and 64k
# generated tokens with the default model (out/bible/model.ckpt if `make train` has run,
# else a freshly initialised model of the same shape: speed and memory do not depend on the
# weights). With the ring buffers, both must stay flat as the count grows.
set -eu
bin=${SWAT_BIN:-./train_swat}
ckpt=out/bible/model.ckpt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$ckpt" ]; then
  ckpt=$tmp/init.ckpt
  "$bin" --steps 0 --save "$ckpt" >/dev/null
fi
echo "generation benchmark: $ckpt, $(nproc) cores"
printf '%8s %12s %12s %14s\n' tokens seconds tokens/s peak_RSS_MB
first_rate=""; first_rss=""
for n in 1000 8000 64000; do
  line=$("$bin" --init "$ckpt" --generate "$n" --prompt "And God said" --seed 1 2>&1 >/dev/null | grep '^generated')
  secs=$(echo "$line" | sed -E 's/.* in ([0-9.]+) s.*/\1/')
  rate=$(echo "$line" | sed -E 's/.*: ([0-9.]+) tokens\/s.*/\1/')
  rss=$(echo "$line" | sed -E 's/.*peak RSS ([0-9.]+) MB.*/\1/')
  printf '%8d %12s %12s %14s\n' "$n" "$secs" "$rate" "$rss"
  if [ -z "$first_rate" ]; then first_rate=$rate; first_rss=$rss; fi
done
awk -v r1="$first_rate" -v r2="$rate" -v m1="$first_rss" -v m2="$rss" 'BEGIN {
  printf "from 1k to 64k tokens: per-token time %+.1f%%, peak memory %+.1f%%\n", (r1 / r2 - 1) * 100, (m2 / m1 - 1) * 100 }'
