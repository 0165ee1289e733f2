#!/usr/bin/env bash
# test_plot_log.sh: tests dev/plot_log.py on the logs of two tiny train_swat runs and on
# hand-written logs (a resumed run, a line still being written, sink lines), and checks
# that every bad input gets a one-line error. Parsing is checked through --print, which
# needs no matplotlib; the drawing checks need it and are SKIPPED (and counted) without it.
# Prints "ok - ..." / "FAIL - ..." / "SKIPPED - ..." per check, then
# "N passed, M failed[, K skipped]".
#   bash dev/test_plot_log.sh            (PYTHON=/path/to/python3 to use another Python)
# shellcheck disable=SC2016,SC2317  # eval strings are expanded when the check runs; helpers called via check
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
plot="$root/dev/plot_log.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
. "$root/tests/lib.sh"
# a check skipped because matplotlib is missing
no_mpl() { skip "$1 (no matplotlib for $py: apt-get install python3-matplotlib)"; }
if "$py" -c 'import matplotlib' 2>/dev/null; then mpl=1; else mpl=0; fi
# draw NAME CMD...: a check that needs matplotlib
draw() { local name="$1"; shift; if [ "$mpl" -eq 1 ]; then check "$name" "$@"; else no_mpl "$name"; fi; }
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

if [ ! -r "$plot" ]; then fail "$plot exists"; finish; fi

# ---- two tiny runs of the trainer: SWAT (w = 8) and vanilla (w = T = 32) ----
runs_ok=0
if make -s -C "$root" train_swat data/prepare_text >"$work/make.log" 2>&1; then
    for i in $(seq 1 120); do echo "Line $i: the quick brown fox jumps over the lazy dog, and the dog sleeps."; done >text.txt
    "$root/data/prepare_text" text.txt shard --val-fraction 0.1 >/dev/null &&
        OMP_NUM_THREADS=1 "$root/train_swat" --train shard/train.bin --val shard/val.bin --out runs/swat \
            --layers 1 --heads 2 --dim 16 --ffn 32 --seq 32 --window 8 --batch 4 --steps 20 --warmup 2 \
            --val-every 10 --sample-every 0 >train1.out 2>&1 &&
        OMP_NUM_THREADS=1 "$root/train_swat" --train shard/train.bin --val shard/val.bin --out runs/vanilla \
            --layers 1 --heads 2 --dim 16 --ffn 32 --seq 32 --window 32 --batch 4 --steps 20 --warmup 2 \
            --val-every 10 --sample-every 0 >train2.out 2>&1 && runs_ok=1
    if [ "$runs_ok" -eq 1 ] && [ "$(grep -c '^step ' runs/swat/log.txt)" -eq 20 ]; then
        ok "two tiny train_swat runs write logs with 20 step lines"
    else
        fail "two tiny train_swat runs: $(tail -n 1 train2.out 2>/dev/null)$(tail -n 1 train1.out 2>/dev/null)"
        runs_ok=0
    fi
else
    fail "make train_swat data/prepare_text: $(tail -n 1 "$work/make.log")"
fi

if [ "$runs_ok" -eq 1 ]; then
    # Parsing: tokens = step * batch * seq = step * 4 * 32; val after 0, 10, 20 steps; sink lines ignored.
    "$py" "$plot" --print runs/swat/log.txt >points.txt 2>points.err
    check "--print: 20 train points and 3 val points, nothing else (sink lines ignored)" \
        eval '[ "$(grep -c "^swat step " points.txt)" -eq 20 ] && [ "$(grep -c "^swat val " points.txt)" -eq 3 ] &&
              [ "$(wc -l <points.txt)" -eq 23 ] && [ ! -s points.err ]'
    check "--print: step 1 is 128 tokens, step 20 is 2560, val 10 is 1280, val 0 is 0" \
        eval 'grep -q "^swat step 1 128 " points.txt && grep -q "^swat step 20 2560 " points.txt &&
              grep -q "^swat val 10 1280 " points.txt && grep -q "^swat val 0 0 " points.txt'
    want=$(awk '$1 == "step" && $2 == 20 { printf "%.6f", $4 }' runs/swat/log.txt)
    check "--print: the loss of step 20 is the log's ($want)" grep -q "^swat step 20 2560 $want\$" points.txt
    check "a run folder stands for its log.txt, labelled with the folder's name" \
        eval '"$py" "$plot" --print runs/swat | cmp -s - points.txt'
    check "--labels names the runs in order" \
        eval '"$py" "$plot" --print runs/swat runs/vanilla/log.txt --labels "SWAT w=8, vanilla" >two.txt &&
              grep -q "^SWAT w=8 step 20 2560 " two.txt && grep -q "^vanilla step 20 2560 " two.txt'

    # Drawing: into a folder that does not exist yet.
    "$py" "$plot" runs/swat/log.txt -o new/deeper/loss.png >plot1.out 2>plot1.err; rc=$?
    draw "one run: exit 0, nothing on stderr" eval '[ "$rc" -eq 0 ] && [ ! -s plot1.err ]'
    draw "one run: the missing output folder is created and holds a PNG" is_png new/deeper/loss.png
    draw "one run: the summary names the run, its tokens and the output" \
        eval 'grep -q "^swat: batch 4 x seq 32, 20 steps = 2.56k tokens" plot1.out && grep -q "wrote new/deeper/loss.png" plot1.out'
    "$py" "$plot" runs/swat runs/vanilla --labels SWAT,vanilla --smooth 0.9 --title "tiny runs" -o two.png >plot2.out 2>plot2.err
    rc=$?
    draw "two runs on one figure, smoothed, labelled: exit 0 and a PNG" eval '[ "$rc" -eq 0 ] && is_png two.png'
    draw "two runs: one summary line each" eval 'grep -q "^SWAT: " plot2.out && grep -q "^vanilla: " plot2.out'
    draw "two runs: the two-run figure differs from the one-run figure" eval '! cmp -s two.png new/deeper/loss.png'
fi

# ---- hand-written logs: the parser's rules, without the trainer ----
# A run stopped at step 5, resumed from its checkpoint of step 4 with twice the batch (so
# tokens continue from step 4's), and a last line still being written.
cat >resumed.txt <<'EOF'
model: V=256 L=1 H=2 C=16 F=32 window=8 attn=sigmoid alibi=1:1 rope=on theta=10000 bos=none version=2
parameters: 10800 (0.01 M)
train: batch=2 seq=10 steps=8 lr=0.002 min_lr_ratio=0.1 warmup=2 wd=0.1 clip=1 seed=1 shuffle=on threads=1
val 0 loss 5.5
sink 0 0 2 0.2329 0.2564
step 1 loss 5.4 lr 1e-3 norm 1 ms 1 tok_s 1
step 2 loss 5.3 lr 1e-3 norm 1 ms 1 tok_s 1
step 3 loss 5.2 lr 1e-3 norm 1 ms 1 tok_s 1
step 4 loss 5.1 lr 1e-3 norm 1 ms 1 tok_s 1
val 4 loss 5.05
sink 4 0 2 0.2329 0.2564
step 5 loss 5.0 lr 1e-3 norm 1 ms 1 tok_s 1
model: V=256 L=1 H=2 C=16 F=32 window=8 attn=sigmoid alibi=1:1 rope=on theta=10000 bos=none version=2
train: batch=4 seq=10 steps=8 lr=0.002 min_lr_ratio=0.1 warmup=2 wd=0.1 clip=1 seed=1 shuffle=on threads=1
resuming runs/x/model.ckpt at step 4 of 8
val 4 loss 5.06
step 5 loss 4.9 lr 1e-3 norm 1 ms 1 tok_s 1
step 6 loss 4.8 lr 1e-3 norm 1 ms 1 tok_s 1
val 6 loss 4.7 chunks 64
final_val_loss 4.7
EOF
printf 'step 7 loss 4.' >>resumed.txt
cat >resumed.want <<'EOF'
r step 1 20 5.400000
r step 2 40 5.300000
r step 3 60 5.200000
r step 4 80 5.100000
r step 5 120 4.900000
r step 6 160 4.800000
r val 0 0 5.500000
r val 4 80 5.060000
r val 6 160 4.700000
EOF
"$py" "$plot" --print resumed.txt --labels r >resumed.got 2>resumed.err
check "resumed log: the resumed part replaces what followed its step, tokens continue, the unfinished last line is left out" \
    eval 'cmp -s resumed.got resumed.want && [ ! -s resumed.err ]'
"$py" "$plot" resumed.txt -o resumed.png >/dev/null 2>&1; rc=$?
draw "resumed log: plotted" eval '[ "$rc" -eq 0 ] && is_png resumed.png'

# ---- errors: non-zero exit, one line on stderr that names the problem, no image ----
# expect_error NAME WORD ARGS...
expect_error() {
    local name="$1" word="$2"; shift 2
    rm -f err.png
    "$py" "$plot" "$@" >err.out 2>err.txt
    local rc=$? lines
    lines=$(wc -l <err.txt)
    if [ "$rc" -eq 0 ]; then fail "$name: exits non-zero (got 0)"; return; fi
    if [ "$lines" -ne 1 ]; then fail "$name: one-line message (got $lines lines: $(head -c 300 err.txt))"; return; fi
    if ! grep -qF -- "$word" err.txt; then fail "$name: message names '$word': $(cat err.txt)"; return; fi
    if [ -e err.png ]; then fail "$name: writes no image"; return; fi
    ok "$name: exit $rc, '$(cat err.txt)'"
}
mkdir -p emptydir
: >empty.txt
head -c 3000 /dev/urandom >garbage.bin 2>/dev/null || printf '\001\002\003\n\377\376\n' >garbage.bin
printf 'not a log at all\njust words\n' >words.txt
printf 'train: batch=2 seq=10\nstep 1 loss 5.4 lr 1\nstep two loss 5.3\n' >badstep.txt
printf 'train: batch=2 seq=10\nval 1 loss abc\n' >badval.txt
printf 'step 1 loss 5.4 lr 1\n' >notrain.txt
printf 'train: batch=2 steps=10\nstep 1 loss 5.4\n' >noseq.txt
printf 'model: V=256\ntrain: batch=2 seq=10 steps=10\n' >nosteps.txt
printf 'a file' >afile
expect_error "missing log" "nope/log.txt" nope/log.txt -o err.png
expect_error "a folder without log.txt" "emptydir" emptydir -o err.png
expect_error "empty log" "empty.txt: empty" empty.txt -o err.png
expect_error "binary garbage" "garbage.bin: not a train_swat log" garbage.bin -o err.png
expect_error "text that is not a log" "words.txt: not a train_swat log" words.txt -o err.png
expect_error "a malformed step line (file:line)" "badstep.txt:3" badstep.txt -o err.png
expect_error "a malformed val line (file:line)" "badval.txt:2" badval.txt -o err.png
expect_error "a step line before the train: line" "notrain.txt:1" notrain.txt -o err.png
expect_error "a train: line without seq=" "noseq.txt:1" noseq.txt -o err.png
expect_error "a log with no step yet" "nosteps.txt: no 'step'" nosteps.txt -o err.png
expect_error "one good log, one missing" "nope.txt" resumed.txt nope.txt -o err.png
expect_error "--labels count differs" "--labels gives 1 name for 2 logs" resumed.txt resumed.txt --labels one -o err.png
expect_error "no -o" "-o OUT.png is required" resumed.txt
expect_error "no LOG" "LOG" -o err.png
expect_error "--smooth 1" "--smooth" resumed.txt --smooth 1 -o err.png
expect_error "--smooth abc" "--smooth" resumed.txt --smooth abc -o err.png
expect_error "unknown flag" "--bogus" resumed.txt --bogus -o err.png
# matplotlib missing (a stand-in package that fails to import): the error says what to install
mkdir -p fakempl/matplotlib
echo 'raise ImportError("simulated: no matplotlib")' >fakempl/matplotlib/__init__.py
PYTHONPATH="$work/fakempl" expect_error "matplotlib missing" "python3-matplotlib" resumed.txt -o err.png
if [ "$mpl" -eq 1 ]; then
    expect_error "output folder cannot be created (a file is in the way)" "afile" resumed.txt -o afile/sub/err.png
    expect_error "an image format matplotlib does not know" "err.xyz" resumed.txt -o err.xyz
else
    no_mpl "output folder cannot be created"; no_mpl "an image format matplotlib does not know"
fi

finish
