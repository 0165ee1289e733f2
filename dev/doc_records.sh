#!/usr/bin/env bash
# dev/doc_records.sh: the records behind the numbers that README.md and doc/ quote from
# `make train` and `make train-bpe`. It runs the make target's own commands (as `make -n`
# prints them) in a scratch folder laid out like the repository (./train_swat, data/bible,
# out/...), then every command block of the docs marked `<!-- test: record NAME -->` on the
# model just trained, and writes dev/results/NAME/:
#   about.txt    when, where (CPU, cores, compiler) and at which commit it was recorded
#   stdout.txt   what the training printed (its times are that machine's, that day)
#   log.txt      the run's log.txt
#   evals.txt    each marked block ("## FILE: block N"), its text, then every command it ran
#                ("+ ...", expanded) and its output
# dev/test_repro.sh checks every number the docs quote against these files, that each marked
# block is in evals.txt as the docs have it, and that the first steps of the training command
# still give the recorded losses. Run it after changing the trainer's math or a quoted command:
#   bash dev/doc_records.sh make-train            (about 2-4 minutes on 2 idle cores)
#   bash dev/doc_records.sh train-bpe             (SentencePiece on the Bible, then the same)
#   bash dev/doc_records.sh make-train RUN_DIR STDOUT   reuse a finished run of the same
#                                                 command: its folder and what it printed
set -eu
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
case "$name" in
  make-train) target=train; out_rel=out/bible ;;
  train-bpe) target=train-bpe; out_rel=out/bible-bpe ;;
  *) echo "usage: bash dev/doc_records.sh make-train|train-bpe [RUN_DIR STDOUT]" >&2; exit 2 ;;
esac
dest="$root/dev/results/$name"
cd "$root"
make -s train_swat data >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# the make target's commands, continuation lines joined: the data preparation that make
# data already did is left out, the rest runs as printed
make -n -B "$target" | sed -e ':a' -e '/\\$/N; s/\\\n[ \t]*//; ta' |
  grep -E '^(\./train_swat|/usr/bin/python3 data/prepare_bpe\.py) ' >"$work/commands.sh"
[ -s "$work/commands.sh" ] || { echo "doc_records: make -n $target printed no training command" >&2; exit 1; }

# the scratch repository: the trainer, the scripts, the prepared Bible (read only)
box="$work/box"
mkdir -p "$box/data/bible" "$box/out"
ln -s "$root/train_swat" "$box/train_swat"
for f in "$root"/data/*.py; do ln -s "$f" "$box/data/"; done
for f in kjv.txt train.bin val.bin; do ln -s "$root/data/bible/$f" "$box/data/bible/$f"; done
if [ $# -ge 3 ]; then
  cp -r "$2" "$box/$out_rel"
  cp "$3" "$work/stdout.txt"
  grep -v '^\./train_swat --init' "$work/commands.sh" | grep -v '^\./train_swat --train' | (cd "$box" && bash -e) >/dev/null
else
  # training, then (train-bpe) the target's own evaluation, as make runs them
  (cd "$box" && bash -e -x "$work/commands.sh") >"$work/stdout.txt" 2>&1
fi
grep -q '^final_val_loss ' "$box/$out_rel/log.txt" || { echo "doc_records: the run did not finish (no final_val_loss in its log)" >&2; exit 1; }

# every block of the pages marked for this record (dev/doc_check.py lists them), run in the
# scratch repository, each command traced ("+ ...") before its output
/usr/bin/python3 dev/doc_check.py "$root" blocks "$work/blocks" |
  awk -F'\t' -v name="$name" '$2 == "record" && $3 == name' >"$work/mine.txt"
[ -s "$work/mine.txt" ] || { echo "doc_records: no block of README.md or doc/ is marked <!-- test: record $name -->" >&2; exit 1; }
: >"$work/evals.txt"
while IFS=$'\t' read -r n _ _ where; do
  b="$work/blocks/$n.sh"
  { echo "## ${where%%:*}: block $n"; echo '```sh'; cat "$b"; echo '```'
    (cd "$box" && bash -e -x "$b" </dev/null 2>&1) | grep -v '^+ for '; echo; } >>"$work/evals.txt"
done <"$work/mine.txt"

mkdir -p "$dest"
cp "$box/$out_rel/log.txt" "$dest/log.txt"
cp "$work/stdout.txt" "$dest/stdout.txt"
cp "$work/evals.txt" "$dest/evals.txt"
vector_isa() { for f in avx512f avx2 sse2; do grep -qw "$f" /proc/cpuinfo 2>/dev/null && { echo ", ${f%f}" | tr a-z A-Z; return; }; done; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
{ echo "recorded $(date -u +%Y-%m-%d) by bash dev/doc_records.sh $name"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- train_swat.c 2>/dev/null || echo ' (train_swat.c modified)')"
  echo "machine: ${cpu:-unknown CPU}, $(nproc) cores$(vector_isa), $(cc --version | head -n 1)"
  echo "load average at the end (other jobs share the machine, so the times vary):$(uptime | sed 's/.*load average://')"
  echo "commands (from make -n $target):"; sed 's/^/  /' "$work/commands.sh"; } >"$dest/about.txt"
echo "doc_records: wrote $dest (about.txt stdout.txt log.txt evals.txt)"
