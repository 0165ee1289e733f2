#!/usr/bin/env bash
# test_prepare.sh: build data/prepare_text.c with $CC (default cc) in a temp dir and
# check that it round-trips a small text, that several files and standard input give the
# shards of their concatenation, and that it rejects bad input with a one-line error.
# Prints "ok - ..." / "FAIL - ..." per check, then "N passed, M failed".
# Needs only bash, coreutils, awk and cmp; not the bible package.
# shellcheck disable=SC2002,SC2016,SC2059,SC2317  # cat | (a pipe on purpose), eval strings, octal printf formats, indirect calls
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$here/../tests/lib.sh"

# ---- build ----
cc="${CC:-cc}"
bin="$work/prepare_text"
if $cc -std=c11 -O2 -Wall -Wextra -o "$bin" "$here/prepare_text.c" 2>"$work/build.log" && [ ! -s "$work/build.log" ]; then
    ok "build with $cc (no warnings)"
elif [ -x "$bin" ]; then
    fail "build with $cc has warnings: $(head -n 1 "$work/build.log")"
else
    fail "build with $cc: $(head -n 1 "$work/build.log")"
    finish
fi

cd "$work" || exit 1 # relative names a run might create (a folder called -) land in the temp dir

# ---- helpers ----
# Little-endian int32 at byte offset $2 of file $1.
le32() { od -An -v -tu1 -j "$2" -N 4 "$1" | awk '{ v = $1 + 256*$2 + 65536*$3 + 16777216*$4; if (v >= 2147483648) v -= 4294967296; print v }'; }
# Byte values of a file, one per line.
bytes() { od -An -v -tu1 "$1" | tr -s ' \n' '\n' | sed '/^$/d'; }
# Token values of a shard, one per line; fails if a token's high byte is not 0 (token >= 256).
tokens() {
    tail -c +1025 "$1" | od -An -v -tu1 | tr -s ' \n' '\n' | sed '/^$/d' |
        awk 'NR % 2 == 1 { print; next } $1 != 0 { exit 1 }'
}
# No *.tmp file in directory $1.
no_tmp() { local f; for f in "$1"/*.tmp; do [ -e "$f" ] && return 1; done; return 0; }
# Header right: magic, version, count $2, the other 253 ints zero, file size 1024 + 2*N.
header_ok() {
    local f="$1" n="$2"
    [ "$(le32 "$f" 0)" = 20240520 ] && [ "$(le32 "$f" 4)" = 1 ] && [ "$(le32 "$f" 8)" = "$n" ] &&
        [ -z "$(od -An -v -tu1 -j 12 -N 1012 "$f" | tr -d ' 0\n')" ] &&
        [ "$(wc -c <"$f")" -eq $((1024 + 2 * n)) ]
}

# ---- round trip ----
# A small text plus every byte value 0..255 (tokens must cover the whole vocabulary).
input="$work/small.txt"
for i in $(seq 1 40); do echo "Line $i: the quick brown fox jumps over the lazy dog."; done >"$input"
for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >>"$input"
size=$(wc -c <"$input")

# roundtrip NAME EXPECTED_VAL [ARGS...]: run on $input and check both shards.
roundtrip() {
    local name="$1" want_val="$2"; shift 2
    local out="$work/out_$name"
    mkdir -p "$out"
    if ! "$bin" "$input" "$out" "$@" >"$work/stdout" 2>"$work/stderr"; then
        fail "$name: exit status 0 ($(head -n 1 "$work/stderr"))"
        return
    fi
    local want_train=$((size - want_val))
    check "$name: one-line summary on stdout, nothing on stderr" \
        test "$(wc -l <"$work/stdout")" -eq 1 -a ! -s "$work/stderr"
    check "$name: train.bin header [20240520, 1, $want_train], size 1024+2N" header_ok "$out/train.bin" "$want_train"
    check "$name: val.bin header [20240520, 1, $want_val], size 1024+2N" header_ok "$out/val.bin" "$want_val"
    { tokens "$out/train.bin" && tokens "$out/val.bin"; } >"$work/tokens" || true
    bytes "$input" >"$work/bytes"
    check "$name: tokens < 256 and train+val tokens equal the input bytes exactly" cmp -s "$work/tokens" "$work/bytes"
    tail -c "$want_val" "$input" >"$work/tail"
    check "$name: val is the last $want_val bytes of the input" \
        cmp -s <(tokens "$out/val.bin") <(bytes "$work/tail")
    check "$name: no .tmp files left" no_tmp "$out"
}
# Expected val size: round(size * fraction), e.g. 2,407 bytes * 0.05 = 120.35 -> 120.
roundtrip default $(((size * 5 + 50) / 100))
roundtrip half $(((size + 1) / 2)) --val-fraction 0.5
roundtrip equals-form $(((size * 25 + 50) / 100)) --val-fraction=0.25
roundtrip option-first $(((size * 5 + 50) / 100)) --val-fraction 0.05

# Smallest splittable input: 4 bytes at 0.5 -> 2 + 2 tokens.
printf 'abcd' >"$work/four.txt"
mkdir -p "$work/out_four"
check "4-byte input with --val-fraction 0.5 gives 2 + 2 tokens" \
    eval '"$bin" "$work/four.txt" "$work/out_four" --val-fraction 0.5 >/dev/null 2>&1 &&
          header_ok "$work/out_four/train.bin" 2 && header_ok "$work/out_four/val.bin" 2'

# --help
check "--help prints usage and exits 0" eval '"$bin" --help | grep -q "^usage: prepare_text"'

# ---- errors: exit non-zero, exactly one line on stderr naming the culprit, no output ----
: >"$work/empty.txt"
printf 'x' >"$work/one.txt"
printf 'just twenty bytes..\n' >"$work/twenty.txt" # 5% of 20 = 1 val token: too small
printf 'not a dir' >"$work/afile"
errdir="$work/out_err"
mkdir -p "$errdir"

# expect_error NAME WORD ARGS...: fails with one stderr line containing WORD, writes nothing.
# If $wrap is set, the program is run as: $wrap prepare_text ARGS...
expect_error() {
    local name="$1" word="$2"; shift 2
    rm -f "$errdir"/*
    ${wrap-} "$bin" "$@" >"$work/stdout" 2>"$work/stderr"
    local rc=$?
    if [ "$rc" -eq 0 ]; then fail "$name: exits non-zero (got 0)"; return; fi
    local lines; lines=$(wc -l <"$work/stderr")
    if [ "$lines" -ne 1 ]; then fail "$name: one-line message (got $lines lines)"; return; fi
    if ! grep -qF -- "$word" "$work/stderr"; then fail "$name: message names '$word': $(cat "$work/stderr")"; return; fi
    if [ -s "$work/stdout" ] || [ -n "$(ls "$errdir")" ]; then fail "$name: writes nothing"; return; fi
    ok "$name: exit $rc, '$(cat "$work/stderr")'"
}
expect_error "missing input file" "$work/nope.txt" "$work/nope.txt" "$errdir"
expect_error "input is a directory" "$work" "$work" "$errdir"
expect_error "empty input" "$work/empty.txt" "$work/empty.txt" "$errdir"
expect_error "1-byte input" "$work/one.txt" "$work/one.txt" "$errdir"
expect_error "20-byte input (val would be 1 token)" "$work/twenty.txt" "$work/twenty.txt" "$errdir"
for v in 0 1 -1 abc 0.5x '' nan 1e400; do
    expect_error "--val-fraction '$v'" "--val-fraction" "$input" "$errdir" --val-fraction "$v"
done
expect_error "--val-fraction without a value" "--val-fraction" "$input" "$errdir" --val-fraction
expect_error "unwritable out dir (parent is a file)" "$work/afile/sub" "$input" "$work/afile/sub"
expect_error "out dir is a file" "$work/afile" "$input" "$work/afile"
truncate -s 3G "$work/huge.txt" # sparse: no disk used; train would be ~2.85e9 tokens
expect_error "file too large for an int32 token count" "$work/huge.txt" "$work/huge.txt" "$errdir"
# Write failure: a 1 KiB file size limit (SIGXFSZ ignored, so write() fails with EFBIG).
limit_1k() { (ulimit -f 1; trap '' XFSZ; exec "$@"); }
wrap=limit_1k expect_error "write failure (1 KiB file size limit)" "train.bin.tmp" "$input" "$errdir"
expect_error "unknown option" "--bogus" "$input" "$errdir" --bogus
expect_error "missing OUTDIR argument" "usage" "$input"
expect_error "no arguments" "usage"

# ---- several inputs and standard input: the shards equal those of the concatenated text ----
# Three pieces of $input (the last one short, so that val starts inside the second piece),
# and an empty file, which adds nothing.
head -c 1000 "$input" >"$work/p1.txt"
tail -c +1001 "$input" | head -c 1300 >"$work/p2.txt"
tail -c +2301 "$input" >"$work/p3.txt"
: >"$work/p0.txt"
ref="$work/out_default" # the shards of $input itself, from the round trip above

# same_as_ref NAME DIR [WORD]: the last run succeeded, DIR holds the reference shards, and its
# one-line summary names WORD (what the input was called).
same_as_ref() {
    local name="$1" dir="$2" word="${3-}"
    if [ "$rc" -ne 0 ]; then fail "$name: exit status 0 (got $rc: $(head -n 1 "$work/stderr"))"; return; fi
    check "$name: train.bin equals that of the concatenated file" cmp -s "$dir/train.bin" "$ref/train.bin"
    check "$name: val.bin equals that of the concatenated file" cmp -s "$dir/val.bin" "$ref/val.bin"
    check "$name: one-line summary naming '$word' ($size bytes), nothing on stderr" \
        eval '[ "$(wc -l <"$work/stdout")" -eq 1 ] && [ ! -s "$work/stderr" ] &&
              grep -qF -- "$word ($size bytes)" "$work/stdout"'
    check "$name: no .tmp files left" no_tmp "$dir"
}
run() { "$bin" "$@" >"$work/stdout" 2>"$work/stderr"; rc=$?; }

run "$work/p1.txt" "$work/p2.txt" "$work/p3.txt" "$work/multi"
same_as_ref "three files" "$work/multi" "3 inputs"
run "$work/p1.txt" "$work/p0.txt" "$work/p2.txt" "$work/p0.txt" "$work/p3.txt" "$work/multi5" --val-fraction 0.05
same_as_ref "five files, two of them empty, option last" "$work/multi5" "5 inputs"
run --val-fraction=0.05 "$work/p1.txt" "$work/p2.txt" "$work/p3.txt" "$work/multi_opt"
same_as_ref "three files, option first" "$work/multi_opt" "3 inputs"
cat "$work/p1.txt" "$work/p2.txt" "$work/p3.txt" | { run - "$work/pipe"; same_as_ref "standard input from a pipe" "$work/pipe" "standard input"; }
run - "$work/redirect" <"$input"
same_as_ref "standard input redirected from a file" "$work/redirect" "standard input"
cat "$work/p2.txt" | { run "$work/p1.txt" - "$work/p3.txt" "$work/mix"; same_as_ref "file, standard input, file" "$work/mix" "3 inputs"; }
run "$work/p1.txt" <(cat "$work/p2.txt") "$work/p3.txt" "$work/procsub"
same_as_ref "a pipe given as a path, <(...)" "$work/procsub" "3 inputs"
printf 'abcd' | { run - "$work/stdin_four" --val-fraction 0.5; check "4 bytes on standard input give 2 + 2 tokens" \
    eval '[ "$rc" -eq 0 ] && header_ok "$work/stdin_four/train.bin" 2 && header_ok "$work/stdin_four/val.bin" 2'; }
# --help shows the several-input form
check "--help shows INPUT... and -" eval '"$bin" --help | grep -q "INPUT\.\.\. OUTDIR" && "$bin" --help | grep -q "prepare_text - out"'

# ---- errors with several inputs or standard input ----
mkdir -p "$work/adir"
printf 'some text that is long enough to split into two shards\n' >"$work/wo.txt"
expect_error "missing file among several" "$work/nope.txt" "$work/p1.txt" "$work/nope.txt" "$work/p3.txt" "$errdir"
printf 'x%.0s' $(seq 1 100) | expect_error "missing file after standard input" "$work/nope.txt" - "$work/nope.txt" "$errdir"
expect_error "a directory among several inputs" "$work/adir" "$work/p1.txt" "$work/adir" "$errdir"
expect_error "empty standard input (/dev/null)" "standard input" - "$errdir" </dev/null
printf '' | expect_error "empty standard input (pipe)" "standard input" - "$errdir"
expect_error "empty standard input (empty file)" "standard input" - "$errdir" <"$work/empty.txt"
expect_error "several inputs, all empty" "all empty" "$work/empty.txt" "$work/p0.txt" "$errdir"
printf 'ab' | expect_error "several inputs too small to split" "3 inputs: too small" "$work/one.txt" - "$work/one.txt" "$errdir"
expect_error "- given twice" "more than once" - "$work/p1.txt" - "$errdir" <"$input"
expect_error "OUTDIR is -" "output folder" "$work/p1.txt" -
expect_error "standard input is a directory" "standard input" - "$errdir" <"$work/adir"
expect_error "standard input closed" "standard input" - "$errdir" <&-
# Unreadable: standard input open for writing only, as a regular file and as a pipe.
expect_error "standard input unreadable (write-only file)" "standard input" - "$errdir" 0>>"$work/wo.txt"
expect_error "standard input unreadable (write end of a pipe)" "standard input" - "$errdir" 0> >(cat >/dev/null)
if [ "$(id -u)" -ne 0 ]; then # root reads any file: this one only means something for users
    cp "$work/p1.txt" "$work/noperm.txt" && chmod 000 "$work/noperm.txt"
    expect_error "unreadable file (mode 000)" "$work/noperm.txt" "$work/p2.txt" "$work/noperm.txt" "$errdir"
fi

# A failed run must not clobber existing shards.
keep="$work/out_default"
cp "$keep/train.bin" "$work/train.keep"
"$bin" "$work/one.txt" "$keep" >/dev/null 2>&1
check "failed run leaves existing shards untouched" cmp -s "$keep/train.bin" "$work/train.keep"
"$bin" "$work/p1.txt" "$work/nope.txt" "$keep" >/dev/null 2>&1 </dev/null
printf '' | "$bin" "$work/empty.txt" - "$keep" >/dev/null 2>&1
check "failed runs with several inputs leave existing shards untouched" cmp -s "$keep/train.bin" "$work/train.keep"

# Out dir is created if missing (one level).
check "missing OUTDIR is created" eval '"$bin" "$input" "$work/newdir" >/dev/null && test -s "$work/newdir/val.bin"'

finish
