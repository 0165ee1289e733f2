#!/usr/bin/env bash
# test_repro.sh: the reproduction commands of the README (dev/recall.py, dev/experiments.py) end
# to end on tiny settings (--mode tiny), in a copy of the repository's layout made in a temporary
# directory, as a fresh clone has it: the committed tables and logs, no checkpoints, no shards.
# Checks: a run without --out trains into a NEW directory and leaves the committed results as
# they were; the tables are written and their numbers finite; several seeds give mean and
# spread; the committed numbers are printed next to the new ones; --out resumes (nothing is
# retrained, a missing checkpoint is retrained, an interrupted training continues); a directory
# of other settings is refused; --plots-only redraws the committed results unchanged.
# Prints "ok - ..." / "FAIL - ..." / "SKIPPED - ..." per check, then "N passed, M failed[, K skipped]".
#   bash dev/test_repro.sh            (PYTHON=/path/to/python3 to use another Python; KEEP=1 keeps the
#                                      temporary directory; ~2-3 min on 2 busy cores)
# shellcheck disable=SC2016  # eval strings are expanded when the check runs
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then echo "keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
. "$root/tests/lib.sh"
# a check skipped because matplotlib is missing
no_mpl() { skip "$1 (no matplotlib for $py: apt-get install python3-matplotlib)"; }
if "$py" -c 'import matplotlib' 2>/dev/null; then mpl=1; else mpl=0; fi
draw() { local name="$1"; shift; if [ "$mpl" -eq 1 ]; then check "$name" "$@"; else no_mpl "$name"; fi; }
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
export OMP_NUM_THREADS=1

if ! "$py" -c 'import numpy' 2>/dev/null; then fail "$py imports numpy"; finish; fi
if [ ! -x "$root/train_swat" ] || [ ! -x "$root/data/prepare_text" ]; then
    make -s -C "$root" train_swat data/prepare_text >"$work/make.log" 2>&1 ||
        { fail "make train_swat data/prepare_text: $(tail -n 1 "$work/make.log")"; finish; }
fi

# ---- a fresh clone's layout: the scripts, the trainer, the committed results without checkpoints ----
clone="$work/clone"
mkdir -p "$clone/dev/results" "$clone/data"
cp "$root/dev/recall.py" "$root/dev/experiments.py" "$root/dev/runs.py" "$clone/dev/"
cp "$root/data/make_recall.py" "$root/data/shards.py" "$clone/data/"
ln -s "$root/train_swat" "$clone/train_swat"
# the committed results as of HEAD (others may be rewriting dev/results/full in the work tree)
if git -C "$root" cat-file -e HEAD:dev/results/recall/recall.csv 2>/dev/null &&
   git -C "$root" cat-file -e HEAD:dev/results/full/results.csv 2>/dev/null; then
    git -C "$root" archive HEAD dev/results/recall dev/results/full | tar -x -C "$clone"
else   # not a git checkout: the files as they are
    cp -r "$root/dev/results/recall" "$root/dev/results/full" "$clone/dev/results/"
    find "$clone/dev/results" \( -name model.ckpt -o -name data -o -name seeds \) -prune -exec rm -rf {} +
fi
rm -rf "$clone/dev/results/recall/seeds"   # only the one-seed reference of the clone's top level
(cd "$clone/dev/results" && find recall full -type f -exec md5sum {} + | sort -k 2) >"$work/committed.md5"
committed_same() { (cd "$clone/dev/results" && find recall full -type f -exec md5sum {} + | sort -k 2) | cmp -s - "$work/committed.md5"; }
new_dirs() { find "$clone/dev/results" -mindepth 1 -maxdepth 1 -type d -name "$1" | sort; }

# csv_ok FILE ROWS PYEXPR: FILE has ROWS data rows and PYEXPR holds for every row r (a dict of strings)
csv_ok() {
    "$py" - "$1" "$2" "$3" <<'EOF'
import csv, math, sys
path, n, expr = sys.argv[1], int(sys.argv[2]), " ".join(sys.argv[3].split())
rows = list(csv.DictReader(open(path)))
fin = lambda v: math.isfinite(float(v))
good = lambda r: eval(expr, dict(math=math, fin=fin, float=float, r=r))
ok = len(rows) == n and all(good(r) for r in rows)
if not ok:
    print(f"  {path}: {len(rows)} rows (want {n}), first failing: {next((r for r in rows if not good(r)), None)}")
sys.exit(0 if ok else 1)
EOF
}

# ================================ dev/recall.py ================================
cd "$clone" || exit 1
"$py" dev/recall.py --mode tiny --seeds 1,2 --jobs 2 --threads 1 >"$work/r1.out" 2>"$work/r1.err"
rc=$?
check "recall.py --mode tiny --seeds 1,2 without --out: exit 0" eval '[ $rc -eq 0 ] || { tail -n 5 "$work/r1.err"; false; }'
rdir=$(new_dirs 'recall-*')
check "recall.py: the results go to one new directory dev/results/recall-TIMESTAMP" \
    eval '[ "$(echo "$rdir" | grep -c .)" -eq 1 ] && grep -q "results go to dev/results/$(basename "$rdir")" "$work/r1.out"'
check "recall.py: the committed dev/results/recall is left as it was" committed_same
check "recall.py: the new directory's .gitignore keeps the shards and checkpoints out of git" \
    eval 'grep -qx "data/" "$rdir/.gitignore" && grep -qx "\*.ckpt" "$rdir/.gitignore" && [ -s "$rdir/data/train.bin" ]'
check "recall.py: 6 trainings (3 models x 2 seeds), each with a log ending in final_val_loss and a checkpoint" \
    eval '[ "$(grep -c "\] training:" "$work/r1.out")" -eq 6 ] &&
          for m in swat-L4 swat-L2 full-L2 swat-L4-seed2 swat-L2-seed2 full-L2-seed2; do
              tail -n 1 "$rdir/$m/log.txt" | grep -q "^final_val_loss " && [ -s "$rdir/$m/model.ckpt" ] || exit 1; done'
check "recall.csv: 3 models x 28 distances, seeds \"1 2\", recall and probability finite in [0, 1], spread >= 0" \
    csv_ok "$rdir/recall.csv" 84 'r["seeds"] == "1 2" and all(fin(r[k]) and 0 <= float(r[k]) <= 1 for k in
        ("recall", "mean_symbol_prob", "recall_sd", "recall_min", "recall_max", "mean_symbol_prob_sd"))
        and float(r["recall_min"]) <= float(r["recall"]) <= float(r["recall_max"])'
check "recall_seeds.csv: one row per model, seed and distance (168), numbers finite" \
    csv_ok "$rdir/recall_seeds.csv" 168 'r["seed"] in ("1", "2") and fin(r["recall"]) and fin(r["mean_symbol_prob"])'
check "recall.csv's mean is the mean of recall_seeds.csv's two seeds" "$py" - "$rdir" <<'EOF'
import csv, sys
d = sys.argv[1]
per = {}
for r in csv.DictReader(open(f"{d}/recall_seeds.csv")):
    per.setdefault((r["model"], r["d"]), []).append(float(r["recall"]))
sys.exit(0 if all(abs(sum(per[r["model"], r["d"]]) / 2 - float(r["recall"])) < 1e-3
                  for r in csv.DictReader(open(f"{d}/recall.csv"))) else 1)
EOF
check "recall.md: the table says mean over 2 seeds and ± the spread" \
    eval 'grep -q "Mean over 2 training seeds" "$rdir/recall.md" && grep -q "^| 61 | .* ±" "$rdir/recall.md"'
check "recall.py prints the committed numbers next to the new ones (also in comparison.md)" \
    eval 'grep -q "^| d | swat-L4 reference | swat-L4 new | swat-L2 reference" "$work/r1.out" &&
          grep -q "^| 61 | 0.83 | " "$work/r1.out" && grep -q "cells\? differs\? by 0.10 or more" "$work/r1.out" &&
          grep -q "reference \`dev/results/recall\` (1 seed)" "$rdir/comparison.md"'
check "the comparison names the settings that differ from the reference's and the checkpoint version" \
    eval 'grep -q "swat-L4: made with other settings than the reference: --steps 40 (reference 8000)" "$work/r1.out" &&
          grep -q "Checkpoint version: reference not recorded, new [12]" "$work/r1.out"'
draw "recall.py draws recall_vs_distance.png" is_png "$rdir/recall_vs_distance.png"

cp "$rdir/recall.csv" "$work/r1.csv"
"$py" dev/recall.py --mode tiny --seeds 1,2 --out "$rdir" >"$work/r2.out" 2>&1
check "recall.py --out the same directory again: nothing retrained, the same numbers" \
    eval '[ "$(grep -c "already trained" "$work/r2.out")" -eq 6 ] && ! grep -q "\] training:" "$work/r2.out" &&
          cmp -s "$rdir/recall.csv" "$work/r1.csv"'

rm "$rdir/swat-L2-seed2/model.ckpt"
"$py" dev/recall.py --mode tiny --seeds 1,2 --out "$rdir" >"$work/r3.out" 2>&1
check "a checkpoint missing (as in a clone): that model alone is trained again, and says why" \
    eval '[ "$(grep -c "\] training:" "$work/r3.out")" -eq 1 ] && grep -q "\[swat-L2-seed2\] training:" "$work/r3.out" &&
          grep -q "swat-L2-seed2/model.ckpt is missing" "$work/r3.out" && [ -s "$rdir/swat-L2-seed2/model.ckpt" ]'

"$py" dev/recall.py --mode tiny --seeds 1 --out "$rdir" >"$work/r4.out" 2>&1
check "--seeds 1 on the same directory: the one-seed table says it is one seed" \
    eval 'grep -q "One training seed (1)" "$rdir/recall.md" && csv_ok "$rdir/recall.csv" 84 "r[\"seeds\"] == \"1\"" &&
          grep -q "^| d | swat-L4 reference | swat-L4 new |" "$work/r4.out"'

cp -r "$rdir" "$work/before_steps"
"$py" dev/recall.py --mode tiny --steps 30 --out "$rdir" >"$work/r5.out" 2>&1
rc=$?
check "other settings into the same directory: refused with a message, before any training" \
    eval '[ $rc -ne 0 ] && grep -q "was made with other settings" "$work/r5.out" && ! grep -q "\] training:" "$work/r5.out" &&
          diff -rq "$work/before_steps" "$rdir" >/dev/null'

"$py" dev/recall.py --mode tiny --out "$clone/dev/results/recall" >"$work/r6.out" 2>&1
rc=$?
check "tiny settings into the committed directory: refused, and the committed files are unchanged" \
    eval '[ $rc -ne 0 ] && grep -q "was made with other settings" "$work/r6.out" && rm -rf "$clone/dev/results/recall/data" &&
          committed_same'

"$py" dev/recall.py --seeds 1,x >"$work/r7.out" 2>&1
rc=$?
check "--seeds 1,x: a one-line error" eval '[ $rc -ne 0 ] && grep -q "error: --seeds 1,x" "$work/r7.out"'

# Ctrl-C: the trainings save their checkpoints, the message says how to continue, the command continues them
idir="$work/interrupt"
setsid "$py" dev/recall.py --mode tiny --steps 150 --jobs 2 --out "$idir" >"$work/i1.out" 2>"$work/i1.err" &
ipid=$!
for _ in $(seq 1 300); do   # wait until the first training has made some steps (at most 60 s)
    n=$(grep -c '^step ' "$idir/swat-L4/log.txt" 2>/dev/null)
    [ "${n:-0}" -ge 10 ] && break
    sleep 0.2
done
kill -INT -- -"$ipid" 2>/dev/null
wait "$ipid"; rc=$?
check "recall.py interrupted (SIGINT): exit 130, checkpoints saved, the message gives the command to continue" \
    eval '[ $rc -eq 130 ] && [ -s "$idir/swat-L4/model.ckpt" ] && ! grep -q final_val_loss "$idir/swat-L4/log.txt" &&
          grep -q "to continue: .*dev/recall.py --mode tiny --steps 150 --jobs 2 --out $idir" "$work/i1.err"'
"$py" dev/recall.py --mode tiny --steps 150 --jobs 2 --out "$idir" >"$work/i2.out" 2>&1
rc=$?
check "the same command again resumes the interrupted training and finishes" \
    eval '[ $rc -eq 0 ] && grep -q "\[swat-L4\] resuming from" "$work/i2.out" &&
          [ "$(grep -c "^step 150 " "$idir/swat-L4/log.txt")" -ge 1 ] && csv_ok "$idir/recall.csv" 84 "fin(r[\"recall\"])"'

cp -r "$clone/dev/results/recall" "$work/recall_committed"
"$py" dev/recall.py --plots-only --out "$work/recall_committed" >"$work/r8.out" 2>&1
rc=$?
check "--plots-only on the committed one-seed results (no seed columns): the same numbers, one seed said" \
    eval '[ $rc -eq 0 ] && grep -q "One training seed (1)" "$work/recall_committed/recall.md" &&
          diff <(tr -d "\r" <"$clone/dev/results/recall/recall.csv" | cut -d, -f1-8) \
               <(tr -d "\r" <"$work/recall_committed/recall.csv" | cut -d, -f1-8) >/dev/null'

# ================================ dev/experiments.py ================================
cat "$root/README.md" "$root/doc/SPEC.md" "$root/train_swat.c" >"$work/text.txt" 2>/dev/null
"$root/data/prepare_text" "$work/text.txt" "$work/shard" >/dev/null 2>&1
runs="vanilla-softmax-rope,swat,swat-T64"
"$py" dev/experiments.py --mode tiny --only "$runs" --threads 1 --train "$work/shard/train.bin" \
    --val "$work/shard/val.bin" >"$work/e1.out" 2>"$work/e1.err"
rc=$?
check "experiments.py --mode tiny without --out: exit 0" eval '[ $rc -eq 0 ] || { tail -n 5 "$work/e1.err"; false; }'
edir=$(new_dirs 'tiny-*')
check "experiments.py: the results go to one new directory dev/results/tiny-TIMESTAMP" \
    eval '[ "$(echo "$edir" | grep -c .)" -eq 1 ] && grep -q "results go to dev/results/$(basename "$edir")" "$work/e1.out"'
check "experiments.py: the committed dev/results/full is left as it was" committed_same
check "results.csv: the 3 runs, 6 steps, every loss finite" \
    csv_ok "$edir/results.csv" 3 'r["steps"] == "6" and r["status"] == "ok" and all(fin(r[k]) for k in r if
        k.startswith("eval_") or k in ("final_val_loss", "last_train_loss"))'
check "results.md: the table and the one-seed statement" \
    eval 'grep -q "^| swat | 256 | " "$edir/results.md" && grep -q "One training seed per run (1337)" "$edir/results.md"'
check "experiments.py prints the committed numbers next to the new ones (also in comparison.md)" \
    eval 'grep -q "^| vanilla-softmax-rope | 1.302 / " "$work/e1.out" && grep -q "^| sliding-softmax-rope | 1.217 / – |" "$work/e1.out" &&
          grep -q "not expected to agree" "$edir/comparison.md" && grep -q "New minus reference over the 24 evaluations" "$work/e1.out"'
draw "experiments.py draws its 3 plots" \
    eval 'is_png "$edir/train_curves.png" && is_png "$edir/length_extrapolation.png" && is_png "$edir/swat_train_length.png"'

"$py" dev/experiments.py --mode tiny --only "$runs" --threads 1 --train "$work/shard/train.bin" \
    --val "$work/shard/val.bin" --out "$edir" >"$work/e2.out" 2>&1
rc=$?
check "experiments.py --out the same directory again: nothing trained or evaluated again" \
    eval '[ $rc -eq 0 ] && ! grep -q "\] training:" "$work/e2.out" && ! grep -q "eval E=" "$work/e2.out" &&
          grep -q "^| swat | 256 | " "$work/e2.out"'

"$py" dev/experiments.py --mode quick --only swat --threads 1 --train "$work/shard/train.bin" \
    --val "$work/shard/val.bin" --out "$edir" >"$work/e3.out" 2>&1
rc=$?
check "experiments.py: other settings into the same directory are refused" \
    eval '[ $rc -ne 0 ] && grep -q "was started with other settings" "$work/e3.out"'

cp "$clone/dev/results/full/results.csv" "$work/full_results.csv"
"$py" dev/experiments.py --mode full --plots-only --out "$clone/dev/results/full" >"$work/e4.out" 2>&1
rc=$?
check "--mode full --plots-only redraws the committed results: results.csv byte for byte, nothing compared" \
    eval '[ $rc -eq 0 ] && cmp -s "$work/full_results.csv" "$clone/dev/results/full/results.csv" && ! grep -q "Reference" "$work/e4.out"'

finish
