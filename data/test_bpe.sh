#!/usr/bin/env bash
# test_bpe.sh: tests for data/prepare_bpe.py (BPE vocabularies with SentencePiece) and the
# committed GPT-2 test set in data/gpt2/. Every file is read back with a small reader of its
# own below (not prepare_bpe.py's), so a mistake shared by writer and reader cannot hide.
# Prints "ok - ..." / "FAIL - ..." per check, then "N passed, M failed". Offline; needs
# /usr/bin/python3 (override with PYTHON=), python3-sentencepiece for the prepare_bpe checks
# (installed as root, else those checks fail and say so) and the Bible of make data (make test
# prepares it) for a round trip on a slice of real text.
# shellcheck disable=SC2016,SC2317  # eval strings; functions called inside them
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-/usr/bin/python3}"
tool="$here/prepare_bpe.py"
gpt2="$here/gpt2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

if ! "$py" -c 'import sys; assert sys.version_info >= (3, 7)' 2>/dev/null; then
    fail "$py is a Python 3.7 or later"
    finish
fi

# ---- an independent reader: tokenizer files, shards, decoding ----
cat >"$work/reader.py" <<'EOF'
"""reader.py COMMAND ARGS: small checks on llm.c-format files; exit 1 with a reason on failure.
  tokenizer FILE V EOT         header [20240328, 2, V, EOT, 0...], lengths >= 1, no bytes left over
  token FILE ID HEXBYTES       token ID's bytes are HEXBYTES
  bytes FILE FIRST             ids FIRST..FIRST+255 are the single bytes 0..255 in order
  shard FILE V [FIRST]         header [20240520, 1, N, 0...], size 1024 + 2N, ids < V, N >= 2 (first id FIRST)
  noids FILE ID...             the shard holds none of these ids
  decode TOKENIZER SHARD...    write the concatenated bytes of the shards' tokens to stdout
  ids SHARD                    print the shard's ids, space-separated
"""
import struct, sys

def fail(msg):
    sys.stderr.write(msg + "\n"); sys.exit(1)

def tokenizer(path):
    raw = open(path, "rb").read()
    h = struct.unpack_from("<256I", raw)
    if h[0] != 20240328 or h[1] not in (1, 2): fail("bad magic/version %r" % (h[:2],))
    toks, pos = [], 1024
    for i in range(h[2]):
        n = raw[pos]
        if n == 0: fail("token %d has length 0" % i)
        toks.append(raw[pos + 1:pos + 1 + n]); pos += 1 + n
        if pos > len(raw): fail("truncated at token %d" % i)
    if pos != len(raw): fail("%d bytes after the last token" % (len(raw) - pos))
    return h, toks

def shard(path):
    raw = open(path, "rb").read()
    h = struct.unpack_from("<256i", raw)
    if h[0] != 20240520 or h[1] != 1: fail("bad shard magic/version %r" % (h[:2],))
    if any(h[3:]): fail("shard header ints 3..255 are not all 0")
    if len(raw) != 1024 + 2 * h[2]: fail("size %d != 1024 + 2*%d" % (len(raw), h[2]))
    return list(struct.unpack_from("<%dH" % h[2], raw, 1024))

cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "tokenizer":
    h, toks = tokenizer(a[0])
    want = [20240328, 2, int(a[1]), int(a[2])] + [0] * 252
    if list(h) != want: fail("header %r..., expected %r..." % (h[:5], want[:5]))
elif cmd == "token":
    got = tokenizer(a[0])[1][int(a[1])]
    if got != bytes.fromhex(a[2]): fail("token %s is %r" % (a[1], got))
elif cmd == "bytes":
    toks, first = tokenizer(a[0])[1], int(a[1])
    if toks[first:first + 256] != [bytes([b]) for b in range(256)]: fail("byte tokens out of order")
elif cmd == "shard":
    ids = shard(a[0])
    if len(ids) < 2: fail("fewer than 2 tokens")
    if max(ids) >= int(a[1]): fail("id %d >= V %s" % (max(ids), a[1]))
    if len(a) > 2 and ids[0] != int(a[2]): fail("first id %d, expected %s" % (ids[0], a[2]))
elif cmd == "noids":
    ids = set(shard(a[0]))
    hit = [x for x in a[1:] if int(x) in ids]
    if hit: fail("shard holds id %s" % hit[0])
elif cmd == "decode":
    toks = tokenizer(a[0])[1]
    sys.stdout.buffer.write(b"".join(toks[t] for s in a[1:] for t in shard(s)))
elif cmd == "ids":
    print(" ".join(map(str, shard(a[0]))))
else:
    fail("unknown command " + cmd)
EOF
rd() { "$py" "$work/reader.py" "$@"; }

# expect_error NAME WORD ARGS...: prepare_bpe.py ARGS fails with one stderr line
# "prepare_bpe: ..." containing WORD, prints nothing on stdout and writes nothing in $errdir.
errdir="$work/out_err"
mkdir -p "$errdir"
expect_error() {
    local name="$1" word="$2"; shift 2
    rm -rf "${errdir:?}"/*
    "$py" "$tool" "$@" >"$work/stdout" 2>"$work/stderr" </dev/null
    local rc=$?
    if [ "$rc" -eq 0 ]; then fail "$name: exits non-zero (got 0)"; return; fi
    local lines; lines=$(wc -l <"$work/stderr")
    if [ "$lines" -ne 1 ] || ! grep -q '^prepare_bpe: ' "$work/stderr"; then
        fail "$name: one line 'prepare_bpe: ...' on stderr (got $lines lines: $(head -c 300 "$work/stderr"))"; return
    fi
    if ! grep -qF -- "$word" "$work/stderr"; then fail "$name: message names '$word': $(cat "$work/stderr")"; return; fi
    if [ -s "$work/stdout" ] || [ -n "$(ls -A "$errdir")" ]; then fail "$name: writes nothing"; return; fi
    ok "$name: exit $rc, '$(cat "$work/stderr")'"
}

# ================================================================ the GPT-2 test set
# data/gpt2/ was made by data/make_gpt2_testset.py from GPT-2's encoder.json; these checks
# need only the committed files.
tok="$gpt2/gpt2_tokenizer.bin"
check "gpt2_tokenizer.bin: header [20240328, 2, 50257, 50256, 0...], every length >= 1, nothing left over" \
    rd tokenizer "$tok" 50257 50256
check "gpt2_tokenizer.bin: end-of-text 50256 is '<|endoftext|>'" rd token "$tok" 50256 "$(printf '<|endoftext|>' | od -An -v -tx1 | tr -d ' \n')"
check "gpt2_tokenizer.bin: known GPT-2 ids (15496 'Hello', 995 ' world', 262 ' the', 198 newline, 220 space, 0 '!')" \
    eval 'rd token "$tok" 15496 48656c6c6f && rd token "$tok" 995 20776f726c64 && rd token "$tok" 262 20746865 &&
          rd token "$tok" 198 0a && rd token "$tok" 220 20 && rd token "$tok" 0 21'
check "gpt2_tokenizer.bin: its one-byte tokens are the 256 bytes, each once" \
    "$py" -c 'import struct,sys
raw=open(sys.argv[1],"rb").read(); pos=1024; one=[]
while pos < len(raw):
    n=raw[pos]; one += [raw[pos+1:pos+1+n]] if n == 1 else []; pos += 1+n
sys.exit(sorted(one) != [bytes([b]) for b in range(256)])' "$tok"
for s in train val; do
    check "gpt2/$s.bin: shard header, ids < 50257, starts with end-of-text 50256" rd shard "$gpt2/$s.bin" 50257 50256
    rd decode "$tok" "$gpt2/$s.bin" >"$work/gpt2_$s.txt" 2>"$work/err"
    check "gpt2/$s.bin decoded with gpt2_tokenizer.bin is gpt2/$s.txt exactly" cmp -s "$work/gpt2_$s.txt" "$gpt2/$s.txt"
    "$py" "$tool" --decode-shard "$gpt2/$s.bin" "$tok" >"$work/gpt2_tool_$s.txt" 2>"$work/err"
    check "prepare_bpe.py --decode-shard gpt2/$s.bin gives the same bytes" cmp -s "$work/gpt2_tool_$s.txt" "$gpt2/$s.txt"
done
check "gpt2/train.txt holds the train documents, each after '<|endoftext|>'" \
    eval 'for f in "$gpt2"/docs/[0-9]*.txt; do printf "<|endoftext|>"; cat "$f"; done | cmp -s - "$gpt2/train.txt"'
check "prepare_bpe.py --decode '15496 11 995 13 198' with gpt2_tokenizer.bin is 'Hello, world.\\n'" \
    eval '[ "$("$py" "$tool" --decode "15496 11 995 13 198" "$tok" | od -An -c | tr -s " ")" = " H e l l o , w o r l d . \\n" ]'

# Corrupt tokenizer files: the tool's reader says which file and what is wrong.
corrupt() { # corrupt NAME PYTHON-EXPR-ON-raw: write $work/NAME from gpt2_tokenizer.bin
    "$py" -c 'import struct,sys
raw=bytearray(open(sys.argv[1],"rb").read())
exec(sys.argv[3])
open(sys.argv[2],"wb").write(raw)' "$tok" "$work/$1" "$2"
}
corrupt bad_magic.bin 'raw[0] ^= 1'
corrupt bad_version.bin 'struct.pack_into("<I", raw, 4, 3)'
corrupt eot_too_big.bin 'struct.pack_into("<I", raw, 12, 50257)'
corrupt zero_length.bin 'raw[1024] = 0'
corrupt truncated.bin 'del raw[-5:]'
corrupt extra_byte.bin 'raw.append(0)'
corrupt header_only.bin 'del raw[1000:]'
corrupt version1.bin 'struct.pack_into("<I", raw, 4, 1)'
check "a version 1 tokenizer file (no end-of-text id) decodes too" \
    eval '"$py" "$tool" --decode-shard "$gpt2/val.bin" "$work/version1.bin" | cmp -s - "$gpt2/val.txt"'
expect_error "tokenizer file with a bad magic" "bad magic" --decode 1 "$work/bad_magic.bin"
expect_error "tokenizer file of version 3" "version 3" --decode 1 "$work/bad_version.bin"
expect_error "tokenizer file whose end-of-text id is V" "end-of-text id 50257" --decode 1 "$work/eot_too_big.bin"
expect_error "tokenizer file with a zero-length token" "token 0 has length 0" --decode 1 "$work/zero_length.bin"
expect_error "truncated tokenizer file" "truncated" --decode 1 "$work/truncated.bin"
expect_error "tokenizer file with a byte after the last token" "1 bytes after the last token" --decode 1 "$work/extra_byte.bin"
expect_error "tokenizer file shorter than its header" "too short" --decode 1 "$work/header_only.bin"
expect_error "--decode an id >= V" "not below the vocabulary size 50257" --decode "5 50257" "$tok"
expect_error "--decode a word that is not an id" "'x7'" --decode "5 x7" "$tok"
expect_error "--decode-shard a file that is not a shard" "not a shard" --decode-shard "$tok" "$tok"
expect_error "missing tokenizer file" "$work/nope.bin" --decode 1 "$work/nope.bin"

# ================================================================ prepare_bpe.py
if ! "$py" -c 'import sentencepiece' 2>/dev/null; then
    "$py" "$tool" --check-deps >/dev/null 2>&1 # installs python3-sentencepiece as root
fi
if ! "$py" -c 'import sentencepiece' 2>/dev/null; then
    fail "prepare_bpe.py checks: no sentencepiece module for $py (sudo apt-get install python3-sentencepiece; .ci/run installs it)"
    check "without sentencepiece, prepare_bpe.py exits 1 and says how to install it" \
        eval '! "$py" "$tool" "$tok" "$errdir" >/dev/null 2>"$work/stderr" &&
              tail -n 1 "$work/stderr" | grep -q "apt-get install python3-sentencepiece"' 
    finish
fi

# Another interpreter than Debian's cannot import Debian's python3-sentencepiece: the error
# says first to run the script with /usr/bin/python3, and nothing is installed (a stand-in
# apt-get records any call); neither when the package is installed but fails to import.
mkdir -p "$work/bin" "$work/fakesp/sentencepiece"
printf '#!/bin/sh\ntouch "%s/apt-get-called"\nexit 1\n' "$work" >"$work/bin/apt-get"
chmod +x "$work/bin/apt-get"
echo 'raise ImportError("simulated: a broken sentencepiece")' >"$work/fakesp/sentencepiece/__init__.py"
cp "$(readlink -f /usr/bin/python3)" "$work/bin/python3" # a copy: another interpreter, run with -S (no dist-packages)
PATH="$work/bin:$PATH" "$work/bin/python3" -S "$tool" --encode x "$work" >/dev/null 2>"$work/stderr"
check "another Python without sentencepiece: one line, first 'run it with /usr/bin/python3 (this is ...)', apt-get not run" \
    eval '[ "$(wc -l <"$work/stderr")" -eq 1 ] && grep -q "^prepare_bpe: sentencepiece: run it with /usr/bin/python3 (this is $work/bin/python3" "$work/stderr" &&
          [ ! -e "$work/apt-get-called" ]'
if [ "$(dpkg-query -W -f='${Status}' python3-sentencepiece 2>/dev/null)" = "install ok installed" ]; then
    PATH="$work/bin:$PATH" PYTHONPATH="$work/fakesp" /usr/bin/python3 "$tool" --encode x "$work" >/dev/null 2>"$work/stderr"
    check "python3-sentencepiece installed but not importable: says so in one line, apt-get not run" \
        eval '[ "$(wc -l <"$work/stderr")" -eq 1 ] && grep -q "python3-sentencepiece is installed but cannot be imported (simulated" "$work/stderr" &&
              [ ! -e "$work/apt-get-called" ]'
else
    skip "python3-sentencepiece installed but not importable: dpkg does not list python3-sentencepiece as installed"
fi

# A small text of our own (about 120 KB): sentences of English-like words with numbers,
# punctuation, indentation and blank lines, a few non-ASCII lines, tabs and CRLF.
"$py" - "$work/text.txt" <<'EOF'
import random, sys
r = random.Random(17)
words = ("the and of to in that he shall unto for his a they be is lord not him them with all thou "
         "thy was which my me said but ye their have will god israel were son from king upon when "
         "this out people house by day land hand there before came against men made if an every "
         "whom sons these children into jerusalem then brought also what city saying earth").split()
out = []
for line in range(2400):
    n = r.randint(4, 14)
    ws = [r.choice(words) for _ in range(n)]
    ws[0] = ws[0].capitalize()
    if r.random() < 0.2: ws.insert(r.randint(1, n), str(r.randint(1, 999)))
    s = " ".join(ws) + r.choice([".", ",", ";", ":", "?"])
    if line % 37 == 0: s = "  " + s
    if line % 50 == 0: s += "\n"
    if line % 97 == 0: s = "Caf\u00e9 na\u00efve \u00fcber \u65e5\u672c \u2014 " + s
    if line % 131 == 0: s = s.replace(" ", "\t", 1) + "\r"
    out.append(s)
open(sys.argv[1], "w", encoding="utf-8", newline="").write("\n".join(out) + "\n")
EOF
input="$work/text.txt"
size=$(wc -c <"$input")
val_bytes=$(((size * 5 + 50) / 100)) # round(size * 0.05), prepare_text's split

out="$work/bpe512"
"$py" "$tool" --vocab-size 512 "$input" "$out" >"$work/stdout" 2>"$work/stderr"
rc=$?
check "prepare $size bytes at V = 512: exit 0, one summary line, nothing on stderr" \
    test "$rc" -eq 0 -a "$(wc -l <"$work/stdout")" -eq 1 -a ! -s "$work/stderr"
[ "$rc" -eq 0 ] || { echo "  stderr: $(cat "$work/stderr")"; finish; }
check "OUTDIR holds train.bin val.bin tokenizer.bin spm.model and no .tmp file" \
    test "$(cd "$out" && printf '%s ' *)" = "spm.model tokenizer.bin train.bin val.bin "
check "tokenizer.bin: header [20240328, 2, 512, 1, 0...], every length >= 1, nothing left over" rd tokenizer "$out/tokenizer.bin" 512 1
check "tokenizer.bin: id 0 is '<unk>', id 1 '<s>'" eval 'rd token "$out/tokenizer.bin" 0 3c756e6b3e && rd token "$out/tokenizer.bin" 1 3c733e'
check "tokenizer.bin: ids 2..257 are the bytes 0..255" rd bytes "$out/tokenizer.bin" 2
for s in train val; do
    check "$s.bin: shard header, size 1024 + 2N, ids < 512" rd shard "$out/$s.bin" 512
    check "$s.bin: no <unk> (0) or <s> (1)" rd noids "$out/$s.bin" 0 1
done
rd decode "$out/tokenizer.bin" "$out/train.bin" "$out/val.bin" >"$work/back.txt"
check "round trip: train.bin + val.bin decoded with tokenizer.bin alone is the input exactly" cmp -s "$work/back.txt" "$input"
rd decode "$out/tokenizer.bin" "$out/val.bin" >"$work/val_back.txt"
check "val.bin is the last round(0.05 * $size) = $val_bytes bytes, prepare_text's split" \
    eval 'tail -c "$val_bytes" "$input" | cmp -s - "$work/val_back.txt"'
check "subwords: fewer tokens than bytes (train.bin under 1024 + 2 * 0.7 * bytes)" \
    test "$(wc -c <"$out/train.bin")" -lt $((1024 + 14 * (size - val_bytes) / 10))
tail -c "$val_bytes" "$input" >"$work/val_text.txt"
check "--encode - of the val text gives val.bin's ids (the canonical encoding)" \
    eval '[ "$("$py" "$tool" --encode - "$out" <"$work/val_text.txt")" = "$(rd ids "$out/val.bin")" ]'
check "--encode TEXT then --decode gives TEXT back" \
    eval '[ "$("$py" "$tool" --decode "$("$py" "$tool" --encode "And the king said unto them" "$out/spm.model")" "$out")" = "And the king said unto them" ]'
check "--encode 'the king' uses fewer ids than bytes" \
    eval '[ "$("$py" "$tool" --encode "the king" "$out" | wc -w)" -lt 8 ]'
check "--decode-shard agrees with the independent reader" \
    eval '"$py" "$tool" --decode-shard "$out/val.bin" "$out" | cmp -s - "$work/val_back.txt"'

# Deterministic; several inputs are concatenated like cat; "-" reads stdin.
"$py" "$tool" --vocab-size 512 "$input" "$work/again" >/dev/null 2>&1
check "a second run writes identical files" \
    eval 'for f in train.bin val.bin tokenizer.bin spm.model; do cmp -s "$out/$f" "$work/again/$f" || exit 1; done'
head -c 50000 "$input" >"$work/part1"
tail -c +50001 "$input" >"$work/part2"
"$py" "$tool" --vocab-size 512 "$work/part1" "$work/part2" "$work/two" >/dev/null 2>&1
check "two input files give the same files as their concatenation" \
    eval 'for f in train.bin val.bin tokenizer.bin spm.model; do cmp -s "$out/$f" "$work/two/$f" || exit 1; done'
"$py" "$tool" --vocab-size 512 - "$work/stdin" <"$input" >/dev/null 2>&1
check "'-' reads stdin: same files" \
    eval 'for f in train.bin val.bin tokenizer.bin spm.model; do cmp -s "$out/$f" "$work/stdin/$f" || exit 1; done'

# Bytes SentencePiece cannot carry round-trip as byte pieces: invalid UTF-8, every byte value,
# NUL, U+2581 (SentencePiece's own space mark), a long line, a space-free training text.
"$py" - "$input" "$work/odd.txt" <<'EOF'
import random, sys
r = random.Random(5)
base = open(sys.argv[1], "rb").read()[:60000]
odd = (bytes(range(256)) + b"\xff\xfe\xc3\x28\xe2\x82\n\xed\xa0\x80\xf4\x90\x80\x80 \x00\x00 "
       + "\u2581x \u2581\u2581 y\u2581\n".encode() + b"w" * 9000 + b" long line\n"
       + bytes(r.randrange(256) for _ in range(3000)))
open(sys.argv[2], "wb").write(base[:30000] + odd + base[30000:] + odd)
EOF
"$py" "$tool" --vocab-size 600 "$work/odd.txt" "$work/odd" >"$work/stdout" 2>"$work/stderr"
check "non-UTF-8 bytes, NUL, U+2581, random bytes: exit 0" test $? -eq 0 -a ! -s "$work/stderr"
check "... and the round trip is exact" \
    eval 'rd decode "$work/odd/tokenizer.bin" "$work/odd/train.bin" "$work/odd/val.bin" | cmp -s - "$work/odd.txt"'
printf 'U+2581 alone: \xe2\x96\x81 and invalid \xff' >"$work/odd_prompt"
check "--encode of non-UTF-8 text with U+2581 round-trips through --decode" \
    eval '"$py" "$tool" --decode "$("$py" "$tool" --encode - "$work/odd" <"$work/odd_prompt")" "$work/odd" | cmp -s - "$work/odd_prompt"'
head -c 40000 /dev/zero | tr '\0' 'a' >"$work/nospace.txt"
printf 'b c  d\n' >>"$work/nospace.txt"
check "a training text without spaces, spaces only in val: round trip exact" \
    eval '"$py" "$tool" --vocab-size 265 --val-fraction 0.5 "$work/nospace.txt" "$work/nospace" >/dev/null 2>&1 &&
          rd decode "$work/nospace/tokenizer.bin" "$work/nospace/train.bin" "$work/nospace/val.bin" | cmp -s - "$work/nospace.txt"'
check "smallest vocabulary, V = 260: round trip exact" \
    eval '"$py" "$tool" --vocab-size 260 "$input" "$work/v260" >/dev/null 2>&1 &&
          rd tokenizer "$work/v260/tokenizer.bin" 260 1 &&
          rd decode "$work/v260/tokenizer.bin" "$work/v260/train.bin" "$work/v260/val.bin" | cmp -s - "$input"'
check "--val-fraction 0.5 and --vocab-size=300 forms" \
    eval '"$py" "$tool" --val-fraction 0.5 --vocab-size=300 "$input" "$work/half" >/dev/null 2>&1 &&
          rd decode "$work/half/tokenizer.bin" "$work/half/val.bin" | cmp -s - <(tail -c $(((size + 1) / 2)) "$input")'
if [ -s "$here/bible/kjv.txt" ]; then
    head -c 200000 "$here/bible/kjv.txt" >"$work/kjv.txt"
    check "the first 200 KB of the Bible at V = 1024: round trip exact" \
        eval '"$py" "$tool" --vocab-size 1024 "$work/kjv.txt" "$work/kjv" >/dev/null 2>&1 &&
              rd decode "$work/kjv/tokenizer.bin" "$work/kjv/train.bin" "$work/kjv/val.bin" | cmp -s - "$work/kjv.txt"'
else
    fail "the first 200 KB of the Bible at V = 1024: $here/bible/kjv.txt is missing (make data writes it; make test runs make data first)"
fi
check "--help prints the usage and exits 0" eval '"$py" "$tool" --help | grep -q "^usage: prepare_bpe.py"'

# ---- bad input: one line on stderr naming the culprit, nothing written ----
: >"$work/empty.txt"
printf 'abc' >"$work/three.txt"
printf 'not a dir' >"$work/afile"
expect_error "missing input file" "$work/nope.txt" "$work/nope.txt" "$errdir"
expect_error "input is a directory" "$work" "$work" "$errdir"
expect_error "empty input" "input is empty" "$work/empty.txt" "$errdir"
expect_error "empty stdin" "input is empty" - "$errdir"
expect_error "3-byte input (val would be 0 bytes)" "too small to split" "$work/three.txt" "$errdir"
expect_error "stdin named twice" "stdin" - - "$errdir"
for v in 259 65537 0 -5 abc 4096.5 ''; do
    expect_error "--vocab-size '$v' (out of range 260..65536)" "--vocab-size" --vocab-size "$v" "$input" "$errdir"
done
expect_error "--vocab-size larger than the text can fill" "too high" --vocab-size 16384 "$input" "$errdir"
for v in 0 1 nan abc; do
    expect_error "--val-fraction '$v'" "--val-fraction" --val-fraction "$v" "$input" "$errdir"
done
expect_error "--character-coverage 0" "--character-coverage" --character-coverage 0 "$input" "$errdir"
expect_error "--vocab-size without a value" "missing value" "$input" "$errdir" --vocab-size
expect_error "unknown option" "--bogus" --bogus "$input" "$errdir"
expect_error "only one argument" "usage" "$input"
expect_error "OUTDIR's parent is a file" "$work/afile/sub" --vocab-size 512 "$input" "$work/afile/sub"
expect_error "OUTDIR is a file" "$work/afile" --vocab-size 512 "$input" "$work/afile"
expect_error "--encode without MODEL" "MODEL" --encode "x"
expect_error "--encode with a file that is not a model" "not a SentencePiece model" --encode "x" "$tok"
expect_error "--encode and --decode together" "cannot be combined" --encode "x" --decode 1 "$out"
# A write failure (a 16 KiB file size limit; Python ignores SIGXFSZ, so write() fails).
limit_16k() { (ulimit -f 16; exec "$@"); }
check "a write failure (16 KiB file size limit): exit 1, one line naming a .tmp file, no file left" \
    eval '! limit_16k "$py" "$tool" --vocab-size 512 "$input" "$errdir" >/dev/null 2>"$work/stderr" &&
          [ "$(wc -l <"$work/stderr")" -eq 1 ] && grep -q "\.bin\.tmp: File too large" "$work/stderr" &&
          [ -z "$(ls -A "$errdir")" ]'

cp "$out/train.bin" "$work/train.keep"
"$py" "$tool" "$work/three.txt" "$out" >/dev/null 2>&1
check "a failed run leaves existing files untouched" cmp -s "$out/train.bin" "$work/train.keep"

finish
