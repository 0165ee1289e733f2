#!/usr/bin/env bash
# tests/subword.sh: a subword model of one's own text, end to end, as a new user meets it
# (issue 24): a text file where a shard belongs is named as text; data/prepare_bpe.py makes a
# vocabulary; the training samples mark where their prompt ends; --init finds the run's
# tokenizer; a model with a start token generates without a prompt (one without says what to
# pass); --prompt TEXT is encoded exactly as data/prepare_bpe.py --encode TEXT (200 prompts cut
# from the val text, and odd ones); dev/attention_maps.py labels a subword model's maps with its
# pieces. A tiny model: well under a minute.
#   bash tests/subword.sh            (from the repo root; uses ./train_swat, SWAT_BIN to override)
# Needs /usr/bin/python3 with sentencepiece (Debian's python3-sentencepiece) and data/bible/kjv.txt
# (make data); matplotlib for the maps (SKIPPED without it). Prints ok/FAIL/SKIPPED lines and
# "N passed, M failed[, K skipped]".
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
BIN=${SWAT_BIN:-./train_swat}
py=/usr/bin/python3
export OMP_NUM_THREADS=1
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

[ -x "$BIN" ] || { fail "trainer $BIN not found (make train_swat)"; finish; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -s data/bible/kjv.txt ] || { fail "data/bible/kjv.txt is missing (make data)"; finish; }
"$py" -c 'import sentencepiece' 2>/dev/null || "$py" data/prepare_bpe.py --check-deps >/dev/null 2>&1
"$py" -c 'import sentencepiece' 2>/dev/null ||
    { fail "no sentencepiece for $py (sudo apt-get install python3-sentencepiece)"; finish; }

# one_line_error NAME WORD... -- ARGS: train_swat ARGS exits 1 with one stderr line holding every WORD
one_line_error() {
    local name=$1 words=() w; shift
    while [ "$1" != -- ]; do words+=("$1"); shift; done; shift
    "$BIN" "$@" >"$work/out" 2>"$work/err"
    local rc=$? bad=""
    [ $rc -eq 1 ] || bad="exit $rc"
    [ "$(wc -l <"$work/err")" -eq 1 ] || bad="$bad; $(wc -l <"$work/err") lines"
    for w in "${words[@]}"; do grep -qF -- "$w" "$work/err" || bad="$bad; no '$w'"; done
    check "$name: '$(head -c 300 "$work/err")'${bad:+ ($bad)}" test -z "$bad"
}

# ---- the text: 200 KB of the Bible stands for one's own files ----
head -c 200000 data/bible/kjv.txt >"$work/own.txt"
one_line_error "--train a text file: named as text, with the two tools that make shards" \
    "looks like text" "data/prepare_text" "data/prepare_bpe.py" -- --train "$work/own.txt"

bpe="$work/bpe"
"$py" data/prepare_bpe.py --vocab-size 600 "$work/own.txt" "$bpe" >"$work/prep.out" 2>&1
check "prepare_bpe.py --vocab-size 600 on the text" test -s "$bpe/tokenizer.bin"
tiny=(--layers 1 --heads 2 --dim 32 --ffn 64 --seq 64 --window 16 --batch 4 --threads 1)
"$BIN" --train "$bpe/train.bin" --val "$bpe/val.bin" --vocab 600 --bos 1 --tokenizer "$bpe/tokenizer.bin" \
    --out "$work/run" "${tiny[@]}" --steps 4 --val-every 2 --val-chunks 2 --final-val-chunks 2 \
    --sample-every 2 --sample-len 8 >"$work/train.out" 2>&1
check "a tiny subword model with start token 1 trains" test -s "$work/run/model.ckpt"
"$BIN" --train "$bpe/train.bin" --vocab 600 --tokenizer "$bpe/tokenizer.bin" --out "$work/nobos" "${tiny[@]}" \
    --steps 0 --save "$work/nobos.ckpt" >/dev/null 2>&1
check "... and one without a start token (--steps 0 --save)" test -s "$work/nobos.ckpt"
ck="$work/run/model.ckpt"

# ---- the training samples: the validation text's first 16 tokens, '>>>', the model's ----
check "a training sample is the first 16 tokens of val.bin as text, then '>>>', then the model's" \
    "$py" - "$work/train.out" "$bpe" <<'EOF'
import struct, sys
out, bpe = open(sys.argv[1], "rb").read(), sys.argv[2]
raw = open(f"{bpe}/tokenizer.bin", "rb").read()
pieces, pos = [], 1024
for _ in range(struct.unpack_from("<3I", raw)[2]):
    pieces.append(raw[pos + 1:pos + 1 + raw[pos]]); pos += 1 + raw[pos]
val = open(f"{bpe}/val.bin", "rb").read()
first = b"".join(pieces[t] for t in struct.unpack_from("<16H", val, 1024))
want = b"---- sample ----\n" + first + b">>>"
sys.exit(0 if out.count(want) == 2 else f"{want!r} found {out.count(want)} times, not 2")
EOF

# ---- --init takes the run's tokenizer from the log.txt beside the checkpoint ----
"$BIN" --init "$ck" --generate 6 --prompt "And the LORD" --temperature 0 >"$work/gen_log" 2>"$work/err_log"
rc=$?
"$BIN" --init "$ck" --generate 6 --prompt "And the LORD" --temperature 0 --tokenizer "$bpe/tokenizer.bin" \
    >"$work/gen_given" 2>"$work/err_given"
check "--init without --tokenizer: takes the run's, says so in one line on stderr ('init: from ...')" \
    eval '[ $rc -eq 0 ] && grep -qxF "init: from $work/run/log.txt: --tokenizer $bpe/tokenizer.bin" "$work/err_log" &&
          [ "$(grep -c "^init: " "$work/err_log")" -eq 1 ]'
check "... and prints what --tokenizer FILE prints (the prompt's text, then the model's)" \
    eval 'cmp -s "$work/gen_log" "$work/gen_given" && head -c 12 "$work/gen_log" | grep -qx "And the LORD"'
check "--tokenizer given: no 'init:' line" eval '! grep -q "^init: " "$work/err_given"'

# ---- no prompt: the start token alone; without one, the error says what to pass ----
"$BIN" --init "$ck" --generate 5 --temperature 0 >"$work/gen_none" 2>"$work/err_none"
rc=$?
check "--generate without a prompt, a model with a start token: starts from it ('after a 0-token prompt')" \
    eval '[ $rc -eq 0 ] && grep -q "after a 0-token prompt" "$work/err_none" && [ -s "$work/gen_none" ]'
one_line_error "--generate without a prompt, a subword model without a start token" \
    "no start token" "--prompt TEXT" "--prompt-ids" -- --init "$work/nobos.ckpt" --generate 5

# ---- --prompt TEXT feeds the ids data/prepare_bpe.py --encode TEXT prints ----
# 200 prompts cut from the val text (1 to 160 bytes at fixed pseudo-random offsets) and a few
# odd ones: characters the vocabulary has no piece for, U+2581, bytes that are not UTF-8, a tab,
# a line of 5000 characters (prepare_bpe encodes a line in pieces of 4096). The ids the model is
# fed are those --dump-attn writes.
"$py" - "$BIN" "$work/nobos.ckpt" "$bpe" "$work" <<'EOF' >"$work/prompts.out" 2>&1
import random, struct, subprocess, sys
bin_, ckpt, bpe, work = sys.argv[1:]
val = open(f"{bpe}/val.bin", "rb").read()
ids = struct.unpack_from(f"<{(len(val) - 1024) // 2}H", val, 1024)
raw = open(f"{bpe}/tokenizer.bin", "rb").read()
pieces, pos = [], 1024
for _ in range(struct.unpack_from("<3I", raw)[2]):
    pieces.append(raw[pos + 1:pos + 1 + raw[pos]]); pos += 1 + raw[pos]
text = b"".join(pieces[t] for t in ids)
r = random.Random(24)
prompts = []
for _ in range(200):
    a = r.randrange(len(text) - 1)
    prompts.append(text[a:a + r.randint(1, 160)])
prompts += ["Caf\u00e9 na\u00efve \u65e5\u672c \u2014 ok".encode(), "x\u2581y \u2581\u2581 z".encode(),
            b"bad \xff\xfe bytes \xc3( \xe2\x82 \xed\xa0\x80 end", b"tab\there\r\n\n  two spaces",
            b"and " * 1250]
bad = 0
for p in prompts:
    p = p.replace(b"\0", b" ") if p != b"-" else b"- "  # "-" would be --encode's stdin
    want = subprocess.run([sys.executable, "data/prepare_bpe.py", "--encode", p, bpe], capture_output=True)
    dump = f"{work}/attn.bin"
    got = subprocess.run([bin_, "--init", ckpt, "--dump-attn", dump, "--prompt", p, "--tokenizer",
                          f"{bpe}/tokenizer.bin"], capture_output=True)
    if want.returncode or got.returncode:
        print(f"{p[:40]!r}: exit {want.returncode}, {got.returncode}: {want.stderr[-200:]}{got.stderr[-200:]}")
        bad += 1
        continue
    d = open(dump, "rb").read()
    T = struct.unpack_from("<6i", d, 8)[3]
    fed = list(struct.unpack_from(f"<{T}i", d, 32))
    if fed != [int(x) for x in want.stdout.split()]:
        print(f"{p[:60]!r}: fed {fed[:12]}, --encode {want.stdout.split()[:12]}")
        bad += 1
print(f"{len(prompts) - bad} of {len(prompts)} prompts fed exactly --encode's ids")
sys.exit(bad != 0)
EOF
rc=$?
check "--prompt TEXT --tokenizer FILE: $(tail -n 1 "$work/prompts.out")" \
    eval '[ $rc -eq 0 ] || { head -n 5 "$work/prompts.out"; false; }'

# ---- dev/attention_maps.py: a subword model's maps, labelled with its pieces ----
if ! "$py" -c 'import matplotlib, numpy' 2>/dev/null; then bash dev/need_matplotlib.sh "$py" >/dev/null 2>&1; fi
if "$py" -c 'import matplotlib, numpy' 2>/dev/null; then
    words="In the beginning God created the heaven"
    want=$("$py" data/prepare_bpe.py --encode "$words" "$bpe")
    labels=$("$py" -c 'import sys, struct
raw = open(sys.argv[1], "rb").read(); pieces, pos = [], 1024
for _ in range(struct.unpack_from("<3I", raw)[2]):
    pieces.append(raw[pos + 1:pos + 1 + raw[pos]]); pos += 1 + raw[pos]
print(" ".join(["<bos>"] + [pieces[int(t)].decode().replace(" ", "_") for t in sys.argv[2].split()]))' "$bpe/tokenizer.bin" "$want")
    "$py" dev/attention_maps.py --ckpt "$ck" --out "$work/maps/bpe" --layer 0 --text "$words" --bin "$BIN" \
        >"$work/maps.out" 2>&1
    check "attention_maps.py on the subword model (its tokenizer from the run's log): the maps' labels are its pieces" \
        eval 'grep -qxF "the $(($(echo "$want" | wc -w) + 1)) tokens: $labels" "$work/maps.out" &&
              grep -q "^tokenizer: $bpe/tokenizer.bin" "$work/maps.out" &&
              [ "$(head -c 4 "$work/maps/bpe_layer0.png" | od -An -c | tr -d " ")" = "211PNG" ] &&
              [ -s "$work/maps/bpe_layer0_distance.png" ] || { cat "$work/maps.out"; false; }'
    "$py" dev/attention_maps.py --ckpt "$work/nobos.ckpt" --out "$work/maps/nobos" --layer 0 --text "$words" \
        --bin "$BIN" >"$work/maps2.out" 2>&1
    rc=$?
    check "attention_maps.py --tokenizer not given, none in the log: says to pass it" \
        eval '[ $rc -ne 0 ] && grep -q "pass its tokenizer file, --tokenizer FILE" "$work/maps2.out"'
    "$py" dev/attention_maps.py --ckpt "$work/nobos.ckpt" --out "$work/maps/nobos" --layer 0 --text "$words" \
        --tokenizer "$bpe/tokenizer.bin" --bin "$BIN" >"$work/maps3.out" 2>&1
    check "attention_maps.py --tokenizer FILE: the pieces without a start token" \
        eval 'grep -qxF "the $(echo "$want" | wc -w) tokens: ${labels#<bos> }" "$work/maps3.out"'
else
    skip "attention_maps.py on a subword model: no matplotlib/numpy for $py (apt-get install python3-matplotlib)"
fi

finish
