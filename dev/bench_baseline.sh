#!/usr/bin/env bash
# make bench BASELINE=<commit>: the training step of that commit's train_swat.c against this
# tree's trainer, both built with the Makefile's CC, CFLAGS, NATIVE and OPENMP, in one run on
# the same data (issue 16: a reorganisation must lose no speed and keep results bit-identical).
# Two configurations: the default model of `make train` (B=16 T=256 w=64) and long context
# (B=2 T=4096 w=64, about 0.5 s a step on 2 idle cores). The builds alternate (old, new, then
# new, old, ...) over ROUNDS rounds; each run trains WARMUP+STEPS steps and its step time is the
# median of the last STEPS (the trainer's own "ms" in log.txt). A build's time is the minimum
# over the rounds of these medians: a neighbour on the shared machine only ever adds time (one
# holding a core doubles a step), so the least disturbed round is the best estimate of the
# code's own speed; the median over rounds is printed beside it. Then new/old and whether the
# new build is at most 3% slower, and whether every run's final checkpoint is the same bytes.
# Environment: BASELINE (required), ROUNDS (default 5), STEPS (timed steps, default 5), WARMUP
# (excluded steps, default 2), THREADS (--threads for both; default the trainer's own, all
# cores; THREADS=1 is steadier while a neighbour holds a core). The new trainer is this tree's
# ./train_swat (built here by make train_swat), or SWAT_BIN (a trainer as it is), or NEW_SRC
# (built here from that file, e.g. a copy of train_swat.c taken while someone edits the tree).
# CC CFLAGS NATIVE OPENMP LDLIBS: make passes them; run by hand, unset ones come from the Makefile.
set -euo pipefail
me=bench_baseline.sh
die() { echo "$me: $*" >&2; exit 1; }
[ -n "${BASELINE:-}" ] || die "set BASELINE=<commit>, e.g. make bench BASELINE=HEAD~3"
[ -z "${NEW_SRC:-}" ] || [ -f "$NEW_SRC" ] || die "NEW_SRC=$NEW_SRC: no such file"
[ -z "${NEW_SRC:-}" ] || NEW_SRC=$(cd "$(dirname "$NEW_SRC")" && pwd)/$(basename "$NEW_SRC")
rounds=${ROUNDS:-5} steps=${STEPS:-5} warmup=${WARMUP:-2} threads=${THREADS:-}
for n in "$rounds" "$steps" "$warmup" ${threads:+"$threads"}; do
  [[ $n =~ ^[0-9]+$ ]] || die "ROUNDS, STEPS, WARMUP and THREADS must be whole numbers (got '$n')"
done
[ "$rounds" -ge 1 ] && [ "$steps" -ge 1 ] || die "ROUNDS and STEPS must be at least 1"
cd "$(dirname "$0")/.."
commit=$(git rev-parse --verify --quiet "$BASELINE^{commit}") ||
  die "BASELINE=$BASELINE is not a commit of this repository"
git cat-file -e "$commit:train_swat.c" 2>/dev/null || die "commit $BASELINE has no train_swat.c"
short=$(git rev-parse --short "$commit")
shard=data/bible/train.bin
[ -f "$shard" ] || "${MAKE:-make}" -s data

# the Makefile's value of a variable, for a run by hand (evaluates the Makefile, builds nothing)
makevar() { "${MAKE:-make}" -s --no-print-directory --eval 'bench-baseline-var-%: ; @echo $($*)' "bench-baseline-var-$1"; }
for v in CC CFLAGS NATIVE OPENMP LDLIBS; do
  [ -n "${!v+set}" ] || printf -v "$v" '%s' "$(makevar "$v")"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# build SRC OUT: the Makefile's train_swat recipe ($CFLAGS etc. split into words on purpose)
# shellcheck disable=SC2086
build() {
  $CC $CFLAGS $NATIVE $OPENMP -o "$2" "$1" $LDLIBS 2> "$2.cc.txt" || { cat "$2.cc.txt" >&2; die "cannot build $1"; }
}
# the commit's top-level C files (train_swat.c and any header beside it), built there
mkdir "$tmp/old"
# shellcheck disable=SC2046 # file names without spaces
git archive "$commit" -- $(git ls-tree --name-only "$commit" | grep -E '\.[ch]$') | tar -x -C "$tmp/old"
build "$tmp/old/train_swat.c" "$tmp/old/train_swat"
if [ -n "${NEW_SRC:-}" ]; then
  new_name="NEW_SRC=$NEW_SRC"
  cp "$NEW_SRC" "$tmp/new.c"
  build "$tmp/new.c" "$tmp/new"
  new=$tmp/new
elif [ -n "${SWAT_BIN:-}" ]; then
  new=$SWAT_BIN new_name=$SWAT_BIN
else
  "${MAKE:-make}" -s train_swat
  new=./train_swat new_name="./train_swat (this tree, make train_swat)"
fi
old=$tmp/old/train_swat

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== make bench BASELINE=$BASELINE ($short): $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(load)"
echo "old: $short's train_swat.c; new: $new_name"
echo "built with: $CC $CFLAGS $NATIVE $OPENMP ... $LDLIBS"
echo "$rounds rounds alternating the builds; per run $warmup warm-up + $steps timed steps on $shard," \
  "${threads:-the default} threads"

configs=("default B=16 T=256 w=64:" "long B=2 T=4096 w=64:--batch 2 --seq 4096")
same=yes
# run BUILD(old|new) CONFIG_INDEX ROUND -> prints the run's median ms; keeps the first checkpoint
# of each configuration (the reference), compares every later one with it and deletes it
run() {
  local bin=$old out=$tmp/run-$1-$2-$3 ref=$tmp/ref-$2.ckpt
  [ "$1" = old ] || bin=$new
  # shellcheck disable=SC2086 # the flags of the configuration are words
  "$bin" --train "$shard" --out "$out" --steps $((warmup + steps)) --sample-every 0 ${threads:+--threads "$threads"} ${configs[$2]#*:} \
    > "$out.txt" 2>&1 || { tail -5 "$out.txt" >&2; die "$1 build failed (config ${configs[$2]%%:*})"; }
  awk '$1 == "step" && $3 == "loss" { print $2, $4 }' "$out/log.txt" | tail -1 > "$tmp/loss-$1-$2"
  if [ ! -f "$ref" ]; then mv "$out/model.ckpt" "$ref"
  elif ! cmp -s "$ref" "$out/model.ckpt"; then echo no > "$tmp/differs"; fi
  rm -f "$out/model.ckpt"
  awk -v w="$warmup" '$1 == "step" && $2 > w { for (i = 3; i < NF; i++) if ($i == "ms") print $(i + 1) }' "$out/log.txt" |
    sort -n | awk '{ a[++k] = $1 } END { if (!k) exit 1; printf "%.2f\n", (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }' ||
    die "no step times in $1's log.txt"
}
for ((r = 1; r <= rounds; r++)); do
  order="old new"; [ $((r % 2)) = 1 ] || order="new old"
  line="round $r:"
  for c in "${!configs[@]}"; do
    for b in $order; do
      ms=$(run "$b" "$c" "$r")
      echo "$ms" >> "$tmp/ms-$b-$c"
      line+=" ${configs[$c]%% *} $b $ms"
    done
  done
  echo "$line   (load $(load))"
  cut -d' ' -f1 /proc/loadavg >> "$tmp/loads"
done
[ ! -f "$tmp/differs" ] || same=no

echo
printf '%-24s %9s %9s %9s %10s %10s  %s\n' configuration old_ms new_ms new/old old_median new_median "within 3%"
# min_median BUILD CONFIG_INDEX -> "minimum median" of the build's run times
min_median() { sort -n "$tmp/ms-$1-$2" | awk '{ a[++k] = $1 } END { printf "%.1f %.1f\n", a[1], (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }'; }
for c in "${!configs[@]}"; do
  read -r omin omed <<< "$(min_median old "$c")"
  read -r nmin nmed <<< "$(min_median new "$c")"
  awk -v n="${configs[$c]%%:*}" -v a="$omin" -v b="$nmin" -v c="$omed" -v d="$nmed" 'BEGIN {
    printf "%-24s %9.1f %9.1f %9.3f %10.1f %10.1f  %s%s\n", n, a, b, b / a, c, d, (b <= 1.03 * a) ? "yes" : "no",
      (c > 1.1 * a || d > 1.1 * b) ? " (noisy)" : "" }'
done
echo "(ms per step: the minimum over $rounds rounds of each run's median step; within 3%: new at most 3% slower"
echo " than old; noisy: a build's median over the rounds is over 10% above its minimum)"
maxload=$(sort -n "$tmp/loads" | tail -1)
if awk -v l="$maxload" -v n="$(nproc)" 'BEGIN { exit !(l > n + 0.5) }'; then
  echo "the machine was busy: load average up to $maxload on $(nproc) cores, this benchmark's threads included;"
  echo " the times are not an idle machine's: trust new/old only without 'noisy' (THREADS=1 is steadier)"
fi
for c in "${!configs[@]}"; do
  read -r s lo < "$tmp/loss-old-$c"; read -r _ ln < "$tmp/loss-new-$c"
  echo "loss after step $s, ${configs[$c]%%:*}: old $lo, new $ln"
done
echo "bit-identical: $same (every run's final model.ckpt, both builds, compared with cmp per configuration)"
echo "load average at the end: $(load)"
