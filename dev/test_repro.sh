#!/usr/bin/env bash
# test_repro.sh: the commands and numbers of README.md and doc/, and the reproduction scripts
# (dev/recall.py, dev/experiments.py) end to end on tiny settings.
# The pages (doc/tests.md, "The documentation is tested too"): every number a command produced
# is one of the file it came from (<!-- numbers: --> and <!-- quote: --> markers); the records
# of make train and make train-bpe (dev/results/make-train/, train-bpe/) hold the pages' record
# blocks as written, and make train's own command still gives the recorded first 20 steps;
# every shell block runs here in a tiny form (sandbox), with make -n, or is named as a suite's
# or a benchmark's; the flags of every command quoted inline exist.
# The scripts, in a copy of the repository's layout made in a temporary directory, as a fresh
# clone has it (the committed tables and logs, no checkpoints, no shards): a run without --out
# trains into a NEW directory and leaves the committed results as they were; the tables are
# written and their numbers finite; several seeds give mean and spread; the committed numbers
# are printed next to the new ones; --out resumes (nothing is retrained, a missing checkpoint
# is retrained, an interrupted training continues); a directory of other settings is refused;
# --plots-only redraws the committed results unchanged.
# Needs the Bible of make data (prepared here if missing), numpy, matplotlib, sentencepiece.
# Prints "ok - ..." / "FAIL - ..." per check, then "N passed, M failed".
#   bash dev/test_repro.sh            (PYTHON=/path/to/python3 to use another Python; KEEP=1 keeps the
#                                      temporary directory; ~4-6 min on 2 busy cores)
#   bash dev/test_repro.sh docs       the checks of the pages only
# shellcheck disable=SC2016  # eval strings are expanded when the check runs
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"
if [ -n "${KEEP:-}" ]; then echo "keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
. "$root/tests/lib.sh"
# the drawing checks need matplotlib (.ci/run installs it; as root it is installed here)
"$py" -c 'import matplotlib' 2>/dev/null || bash "$root/dev/need_matplotlib.sh" "$py" >/dev/null 2>&1
if "$py" -c 'import matplotlib' 2>/dev/null; then mpl=1; else mpl=0; fi
draw() { local name="$1"; shift; if [ "$mpl" -eq 1 ]; then check "$name" "$@"
         else fail "$name: no matplotlib for $py (apt-get install python3-matplotlib)"; fi; }
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

# ================================ README.md and doc/ ================================
# Every command of the pages is run here (in a tiny form) or by a named suite, and every
# number a command produced is checked against the file it came from (doc/tests.md, "The
# documentation is tested too"). dev/doc_check.py finds the markers; the checks are below.
cd "$root" || exit 1
[ -s data/bible/train.bin ] && [ -s data/bible/kjv.txt ] || make -s data >"$work/make_data.log" 2>&1 ||
    { fail "make data (the Bible, for the pages' commands): $(tail -n 1 "$work/make_data.log")"; finish; }
report() { while IFS=$'\t' read -r verdict what; do
             if [ "$verdict" = ok ]; then ok "$what"; else fail "$what"; fi; done; }

# ---- the numbers: each marked block against its files ----
"$py" "$root/dev/doc_check.py" "$root" numbers >"$work/numbers.out" 2>&1 || fail "dev/doc_check.py numbers: $(tail -n 1 "$work/numbers.out")"
report <"$work/numbers.out"
check "the pages mark their numbers: at least 15 numbers markers and 6 quote markers in README.md and doc/" \
    eval '[ "$(grep -c "numbers, each in" "$work/numbers.out")" -ge 15 ] && [ "$(grep -c "lines quoted" "$work/numbers.out")" -ge 6 ]'

# ---- the records are this trainer's: the first steps of make train's own command ----
cat >"$work/same_steps.py" <<'EOF'
"""same_steps.py NEW_LOG RECORD_LOG N: steps 1..N of NEW_LOG (loss, lr, norm) and its step-0 val
and sink lines are those of RECORD_LOG: identical, or within 1e-4 (another CPU may round
differently in the last digits)."""
import sys
n = int(sys.argv[3])
def records(path):
    out = {}
    for line in open(path):
        f = line.split()
        if f and f[0] in ("step", "val", "sink") and int(f[1]) <= n:
            out[(f[0], f[1])] = f[2:9] if f[0] == "step" else f[2:]
    return out
def nums(fs):  # the numbers of a record: a step's loss, lr and norm (not its time); all of val and sink
    out = []
    for x in fs:
        try:
            out.append(float(x))
        except ValueError:
            pass
    return out
new, rec = records(sys.argv[1]), records(sys.argv[2])
steps = [k for k in new if k[0] == "step"]
if len(steps) != n or set(new) != set(rec):
    sys.exit(f"{len(steps)} steps run; records {sorted(set(new) ^ set(rec))[:3]} in one log only")
worst = max(abs(a - b) / max(abs(b), 1e-12) for k in new for a, b in zip(nums(new[k]), nums(rec[k])))
print("identical" if worst == 0 else f"within {worst:.1e} (relative)")
sys.exit(0 if worst <= 1e-4 else 1)
EOF
# first_steps RECORD COMMAND N: run COMMAND (its --out moved to the scratch folder) for N steps
# in the current folder and compare with dev/results/RECORD/log.txt
first_steps() {
    local out="$work/first_$1" rc
    rm -rf "$out"
    eval "$(echo "$2" | sed -E 's|--out [^ ]+|--out "$out"|') --stop-after $3" >"$out.out" 2>&1
    "$py" "$work/same_steps.py" "$out/log.txt" "$root/dev/results/$1/log.txt" "$3" >"$out.cmp" 2>&1
    rc=$?
    check "the first $3 steps of ${2% } (make -n's command of dev/results/$1): loss, lr and norm of every step, the step-0 validation and sink line as the record's log.txt has them: $(tail -n 1 "$out.cmp")" \
        test $rc -eq 0
}
mtcmd=$(make -s -n train | grep '^\./train_swat ')
if [ -z "$mtcmd" ]; then fail "make -n train prints the training command"; else first_steps make-train "$mtcmd" 20; fi
bpecmd=$(make -s -n -B train-bpe | sed -e ':a' -e '/\\$/N; s/\\\n[ \t]*//; ta' | grep '^\./train_swat --train')
check "dev/results/make-train/about.txt records the command make -n train prints" \
    grep -qxF "  $mtcmd" dev/results/make-train/about.txt
check "dev/results/train-bpe/about.txt records the training command make -n train-bpe prints" \
    grep -qxF "  $bpecmd" dev/results/train-bpe/about.txt
for name in make-train train-bpe; do
    "$py" "$root/dev/doc_check.py" "$root" record "$name" | report
done

# ---- the command blocks, each by its marker ----
"$py" "$root/dev/doc_check.py" "$root" blocks "$work/blocks" >"$work/blocks.out" 2>&1 || fail "dev/doc_check.py blocks: $(tail -n 1 "$work/blocks.out")"
grep -v '^[0-9]' "$work/blocks.out" | report

# the scratch repository of the sandbox blocks: the pages' paths, tiny stand-ins for the big runs
box="$work/docbox"
mkdir -p "$box/data/bible" "$box/dev/results" "$box/out" "$box/notes" "$box/fineweb10B"
cp -r dev/results/full "$box/dev/results/"
for f in dev/*.py dev/*.sh data/*.py; do ln -s "$root/$f" "$box/$f"; done
ln -s "$root/data/prepare_text" "$box/data/prepare_text"
for f in kjv.txt train.bin val.bin; do ln -s "$root/data/bible/$f" "$box/data/bible/$f"; done
head -c 300000 data/bible/kjv.txt >"$box/notes/a.txt"
tail -c 100000 data/bible/kjv.txt >"$box/notes/b.txt"
cp data/gpt2/train.bin "$box/fineweb10B/fineweb_train_000001.bin"
cp data/gpt2/train.bin "$box/fineweb10B/fineweb_train_000002.bin"
cp data/gpt2/val.bin "$box/fineweb10B/fineweb_val_000000.bin"
cp data/gpt2/gpt2_tokenizer.bin "$box/gpt2_tokenizer.bin"
# ./train_swat: a training run (no --init, no --resume) becomes a one-layer model of 3 steps,
# except under the experiment scripts, whose tiny modes choose their own settings
cat >"$box/train_swat" <<EOF
#!/usr/bin/env bash
[ -z "\${DOCBOX_AS_IS:-}" ] || exec "$root/train_swat" "\$@"
small=(--steps 3 --layers 1 --heads 2 --dim 16 --ffn 32 --seq 32 --window 8 --batch 2 --val-every 2
       --val-chunks 2 --final-val-chunks 2 --sample-every 2 --sample-len 16 --threads 1)
train=0
for a in "\$@"; do case "\$a" in --train) train=1 ;; --init|--resume) train=0; break ;; esac; done
[ \$train = 1 ] || exec "$root/train_swat" "\$@"
args=(); drop=0
for a in "\$@"; do
  if [ \$drop = 1 ]; then drop=0; continue; fi
  for ((i = 0; i < \${#small[@]}; i += 2)); do [ "\$a" = "\${small[i]}" ] && drop=1; done
  [ \$drop = 1 ] || args+=("\$a")
done
exec "$root/train_swat" "\${args[@]}" "\${small[@]}"
EOF
chmod +x "$box/train_swat"
# what a sandbox block runs instead: make prints its commands; the experiment scripts run tiny
cat >"$work/prelude.sh" <<EOF
set -e
make() { command make -s -n -C "$root" "\$@" >/dev/null; }
/usr/bin/python3() {
  case "\$1" in
    dev/experiments.py|dev/recall.py|dev/sink.py)
      local a=() drop=0
      for x in "\${@:2}"; do
        if [ \$drop = 1 ]; then drop=0; continue; fi
        case "\$x" in --steps|--mode|--threads|--jobs) drop=1 ;; *) a+=("\$x") ;; esac
      done
      DOCBOX_AS_IS=1 command "$py" "\$1" "\${a[@]}" --mode tiny --threads 1 --out "\$PWD/dev/results/tiny-\$(basename "\$1" .py)" ;;
    *) command "$py" "\$@" ;;
  esac
}
EOF
(cd "$box" && ./train_swat --train data/bible/train.bin --val data/bible/val.bin --out out/bible >"$work/box_train.out" 2>&1 &&
 cp out/bible/model.ckpt model.ckpt)
check "the sandbox's stand-in for make train's model (a one-layer model, 3 steps)" test -s "$box/model.ckpt"

while IFS=$'\t' read -r n kind args where; do
    case "$n" in [0-9]*) ;; *) continue ;; esac
    blk=$(ls "$work/blocks/$n".*)
    what="$where: $(grep -v '^ *#' "$blk" | head -n 1 | cut -c1-70)"
    case "$kind" in
    sandbox)
        if [ "${blk##*.}" = py ]; then (cd "$box" && "$py" "$blk") </dev/null >"$work/blk$n.out" 2>&1
        else (cd "$box" && bash -c ". '$work/prelude.sh'; . '$blk'") </dev/null >"$work/blk$n.out" 2>&1; fi
        rc=$?
        check "$what (run in the sandbox, tiny)" eval '[ $rc -eq 0 ] || { tail -n 3 "$work/blk$n.out"; false; }' ;;
    record)
        check "$what (a block of dev/doc_records.sh $args: dev/results/$args/evals.txt, checked above)" \
            test -s "dev/results/$args/evals.txt" ;;
    make)
        check "$what (make -n of each line)" \
            eval 'grep -v "^ *#" "$blk" | grep . | sed "s/ *#.*//" | while read -r line; do
                      case "$line" in make\ *) command make -s -n ${line#make } >/dev/null || exit 1 ;; *) exit 1 ;; esac; done' ;;
    suite)
        check "$what (run by $args, a suite of make test)" \
            eval 'make -s -n test >"$work/make_test.txt" 2>&1; grep -q "$args" "$work/make_test.txt" && for p in $(grep -v "^ *#" "$blk" | grep -o "^[^ ]*\|\./[a-z_]*"); do
                      grep -q -- "${p#./}" "$args" || exit 1; done' ;;
    bench|manual)
        check "$what ($kind, not run by the tests: its make targets print their commands, its scripts exist)" \
            eval 'grep -v "^ *#" "$blk" | grep . | sed "s/ *#.*//" | while read -r line; do
                      case "$line" in make\ *) eval "command make -s -n ${line#make }" >/dev/null || exit 1 ;;
                                      bash\ *) set -- $line; [ -f "$2" ] || exit 1 ;; *) exit 1 ;; esac; done' ;;
    *) fail "$where: unknown test marker '$kind'" ;;
    esac
done <"$work/blocks.out"

# the BPE shards the sandbox made (SentencePiece is deterministic: they are make train-bpe's)
# train its record's first 10 steps
if [ -z "$bpecmd" ]; then fail "make -n train-bpe prints the training command"
else cd "$box" && first_steps train-bpe "${bpecmd/\.\/train_swat/$root/train_swat}" 10; cd "$root" || exit 1; fi

# ---- the commands quoted inline: their flags exist, their make targets and scripts too ----
./train_swat --help >"$work/help.txt" 2>&1
"$py" "$root/dev/doc_check.py" "$root" inline | sort -u >"$work/inline.txt"
bad=""
while IFS=$'\t' read -r page span; do
    case "$span" in
    make\ *) eval "command make -s -n ${span#make }" >/dev/null 2>&1 || bad="$bad; $page: $span" ;;
    *.py*)
        script=$(echo "$span" | grep -o '[a-z_/]*\.py' | head -n 1)
        "$py" "$script" --help >"$work/script_help.txt" 2>&1 || bad="$bad; $page: $span (--help)"
        for f in $(echo "$span" | grep -o -- '--[a-z][a-z-]*'); do grep -q -- "$f" "$work/script_help.txt" || bad="$bad; $page: $span ($f)"; done ;;
    *train_swat*)
        for f in $(echo "$span" | grep -o -- '--[a-z][a-z-]*' | grep -vx -- --help); do
            grep -q -- "$f\b" "$work/help.txt" || bad="$bad; $page: $span ($f)"; done ;;
    *) script=$(echo "$span" | grep -o '[a-z_/]*\.sh' | head -n 1); [ -f "$script" ] || bad="$bad; $page: $span" ;;
    esac
done <"$work/inline.txt"
check "the $(wc -l <"$work/inline.txt") commands quoted inline: make targets that exist, scripts that exist, flags their --help lists${bad}" test -z "$bad"
[ "${1:-}" = docs ] && finish

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
