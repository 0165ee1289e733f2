#!/usr/bin/env bash
# tests/attention_page.sh: the attention explorer (dev/attention_page.py) in headless Chromium
# (Debian's chromium: installed here with apt-get when root, else SKIPPED with the reason).
# Pages of three tiny models trained here (sigmoid bytes; softmax with a start token; subword
# with a tokenizer file written here), at 8 bits, of 2,047 tokens, and the committed examples
# (dev/attention_page_example.sh, made from today's template) run their self-test (URL
# #selftest&...: a head and a token chosen) in a browser with no network (unshare -n, when
# allowed). Checked: no script or console error, nothing fetched, no URL in the file, the
# choice changes the drawing, the weights shown for the query equal the dump's to 1e-3
# (train_swat --dump-attn read here with struct; for the committed pages, the rows recorded
# with them), subword pieces as labels, drawn in under a second, one-line errors for bad input.
# Prints one line per check and "N passed, M failed[, K skipped]".
set -u
export LC_ALL=C OMP_NUM_THREADS=1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh
py=/usr/bin/python3
BIN=${SWAT_BIN:-./train_swat}
EXAMPLE=dev/results/attention/page.html

[ -x "$BIN" ] || { fail "$BIN is not built (make train_swat)"; finish; }
"$py" -c 'import numpy, matplotlib' 2>/dev/null || bash dev/need_matplotlib.sh "$py" >/dev/null 2>&1
"$py" -c 'import numpy, matplotlib' 2>/dev/null ||
  { fail "$py cannot import numpy and matplotlib (dev/attention_maps.py needs them)"; finish; }

# ---- the pages need no network: no URL, no script or stylesheet from elsewhere ----
offline() {  # FILE: nothing that would fetch
  ! grep -Eiq 'https?:|<script[^>]*src=|<link[^>]*href=|<img |@import|url\(' "$1"
}
if [ -s "$EXAMPLE" ]; then check "$EXAMPLE references no URL and loads no file" offline "$EXAMPLE"
else fail "$EXAMPLE is missing (bash dev/attention_page_example.sh)"; fi
current() {  # PAGE: made from today's template (else: make attention-page)
  "$py" -c 'import sys; t, p = open(sys.argv[1]).read(), open(sys.argv[2]).read()
a, b = t.split("/*PAGE_DATA*/null"); sys.exit(not (p.startswith(a) and p.endswith(b)))' \
    dev/attention_page.html "$1"
}
for f in dev/results/attention/*.html; do
  check "$f is made from today's dev/attention_page.html (else: make attention-page)" current "$f"
done

# ---- three tiny models, trained in seconds ----
text_shard "$tmp/text.bin" 7 4000 \
  "and the spirit of god moved upon the face of the waters and god said let there be light "
tiny="--train $tmp/text.bin --layers 2 --heads 4 --dim 32 --ffn 64 --seq 64 --window 16 --batch 4
      --steps 30 --warmup 5 --val-every 0 --sample-every 0 --threads 1"
# shellcheck disable=SC2086
"$BIN" $tiny --out "$tmp/swat" >"$tmp/train1.log" 2>&1 &&
"$BIN" $tiny --attn softmax --alibi 0:0 --vocab 257 --bos 256 --out "$tmp/soft" \
  >"$tmp/train2.log" 2>&1 &&
"$BIN" $tiny --vocab 266 --out "$tmp/sub" >"$tmp/train3.log" 2>&1 ||
  { fail "training the tiny models: $(tail -n 1 "$tmp"/train*.log)"; finish; }
# a tokenizer of the subword model (llm.c's format): the 256 bytes and 10 pieces in BPE's merge
# order (train_swat encodes a prompt as SentencePiece does: a pair joins if it is a piece)
"$py" - "$tmp/tok.bin" <<'EOF'
import struct, sys
pieces = [bytes([i]) for i in range(256)] + [b"th", b"the", b"the ", b"an", b"and", b"and ",
                                            b"go", b"god", b" o", b" of"]
open(sys.argv[1], "wb").write(struct.pack("<256I", 20240328, 1, len(pieces), *[0] * 253) +
                              b"".join(bytes([len(p)]) + p for p in pieces))
EOF

PROMPT="and god said let there be light and there was light and god saw the light that it was good"
page() {
  "$py" dev/attention_page.py "$@" >"$tmp/page.log" 2>&1 || { cat "$tmp/page.log"; false; }
}
check "a page of two models (sigmoid, softmax with a start token)" \
  page "$tmp/swat/model.ckpt" "$tmp/soft/model.ckpt" --prompt "$PROMPT" -o "$tmp/two.html"
check "a page of a subword model (--tokenizer)" \
  page "$tmp/sub/model.ckpt" --prompt "$PROMPT" --tokenizer "$tmp/tok.bin" -o "$tmp/sub.html"
check "a page at 8 bits (--bits 8, --layers 1)" \
  page "$tmp/swat/model.ckpt" --prompt "$PROMPT" --bits 8 --layers 1 -o "$tmp/eight.html"
head -c 2047 data/bible/kjv.txt | tr '\n' ' ' >"$tmp/long.txt"   # no newline: it is a --prompt too
check "a page of 2,047 bytes (--text FILE)" \
  page "$tmp/swat/model.ckpt" --text "$tmp/long.txt" -o "$tmp/long.html"
for f in two sub eight long; do
  check "$f.html references no URL and loads no file" offline "$tmp/$f.html"
done

# ---- bad input: one line "error: ...", exit status 1 ----
bad() {  # NAME ARGS...: the page tool refuses with one error line
  local name=$1; shift
  "$py" dev/attention_page.py "$@" >"$tmp/bad.out" 2>&1; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/bad.out")" -eq 1 ] && grep -q '^error: ' "$tmp/bad.out"
  then
    ok "refused: $name ($(cut -c1-90 "$tmp/bad.out"))"
  else fail "$name: exit $rc, output: $(head -c 300 "$tmp/bad.out")"; fi
}
bad "a missing checkpoint" "$tmp/none.ckpt" --prompt "x" -o "$tmp/x.html"
bad "a layer the model lacks" "$tmp/swat/model.ckpt" --prompt "x" --layers 5 -o "$tmp/x.html"
bad "a subword model without --tokenizer" "$tmp/sub/model.ckpt" --prompt "x" -o "$tmp/x.html"
bad "a --tokenizer that is no tokenizer file" "$tmp/sub/model.ckpt" --prompt "x" \
  --tokenizer "$tmp/swat/model.ckpt" -o "$tmp/x.html"
head -c 3000 /dev/zero | tr '\0' 'a' >"$tmp/too_long.txt"
bad "a text over 2,048 tokens" "$tmp/swat/model.ckpt" --text "$tmp/too_long.txt" -o "$tmp/x.html"
bad "an output folder that does not exist" "$tmp/swat/model.ckpt" --prompt "x" -o "$tmp/no/x.html"

# ---- the browser ----
if ! command -v chromium >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium (apt-get) for the browser checks"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y chromium </dev/null >"$tmp/apt.log" 2>&1 ||
    { apt-get update </dev/null >>"$tmp/apt.log" 2>&1 &&
      apt-get install -y chromium </dev/null >>"$tmp/apt.log" 2>&1; }
fi
if ! command -v chromium >/dev/null; then
  why="not root"
  [ "$(id -u)" -eq 0 ] && why="apt-get install chromium failed: $(tail -n 1 "$tmp/apt.log")"
  skip "the browser checks: no chromium ($why; apt-get install chromium as root)"
  finish
fi

# the network off: every page is rendered in a network namespace of its own, if one can be made
nonet=()
if unshare -n true 2>/dev/null; then
  nonet=(unshare -n); ok "the browser runs with no network (unshare -n)"
else skip "the browser runs with the machine's network: unshare -n is not allowed here (not root?)"
fi
# render PAGE HASH NAME: the DOM after the self-test in $tmp/NAME.dom, the browser's log in .log
render() {
  timeout 120 "${nonet[@]}" chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0 \
    --dump-dom "file://$(cd "$(dirname "$1")" && pwd)/$(basename "$1")#selftest&$2" \
    >"$tmp/$3.dom" 2>"$tmp/$3.log"
}
# dump_row CKPT LAYER HEAD QUERY [ARGS]: "key<TAB>weight" of the query's row, read with struct
dump_row() {
  "$BIN" --init "$1" --dump-attn "$tmp/dump.bin" --dump-layer "$2" "${@:5}" >/dev/null 2>&1 ||
    return 1
  "$py" - "$tmp/dump.bin" "$3" "$4" <<'EOF'
import struct, sys
data, h, q = open(sys.argv[1], "rb").read(), int(sys.argv[2]), int(sys.argv[3])
assert data[:8] == b"SWATATTN"
_, layer, H, T, W, attn = struct.unpack("<6i", data[8:32])
row = struct.unpack_from("<%df" % T, data, 32 + 4 * T + 4 * T * (h * T + q))
for n in range(max(0, q - W + 1), q + 1):
    print(f"{n}\t{row[n]:.7f}")
EOF
}
# verdicts NAME DOM LOG ROWS TOL: the self-test's record against the rows; "ok|..."/"fail|..."
verdicts() {
  "$py" - "$@" <<'EOF'
import html, json, re, sys
name, dom, log, rows, tol = sys.argv[1], open(sys.argv[2], errors="replace").read(), \
    open(sys.argv[3], errors="replace").read(), sys.argv[4], float(sys.argv[5])
m = re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)
errs = re.search(r'<pre id="errors">(.*?)</pre>', dom, re.S)
if not m or not m.group(1).strip():
    print(f"fail|{name}: the self-test wrote nothing; "
          f"errors: {errs.group(1)[:300] if errs else '?'}")
    sys.exit()
r = json.loads(html.unescape(m.group(1)))
print(("ok|" if not r["errors"] else "fail|") + f"{name}: no script error {r['errors'][:3]}")
# the page's console (Chromium's own chrome:// pages log there too, e.g. "Slow network")
console = [l for l in log.splitlines() if "CONSOLE" in l and "chrome://" not in l]
print(("ok|" if not console else "fail|") + f"{name}: nothing on the console {console[:2]}")
print(("ok|" if not r["resources"] else "fail|") + f"{name}: loads nothing {r['resources'][:3]}")
for part in ("text", "map", "query"):
    print(("ok|" if r["changed"][part] else "fail|") +
          f"{name}: choosing head {r['head']} and token {r['query']} changes the {part} drawing")
want = [l.split("\t") for l in open(rows) if l.strip() and not l.startswith("#")]
shown = r["shown"]
keys_ok = [int(s[0]) for s in shown] == [int(k) for k, _ in want]
first, last = (shown[0][0], shown[-1][0]) if shown else ("-", "-")
print(("ok|" if keys_ok else "fail|") + f"{name}: the page shows keys {first}..{last} of query "
      f"{r['query']}, the dump's {want[0][0]}..{want[-1][0]}")
if keys_ok:
    diff = max(abs(float(s[3]) - float(w)) for s, (_, w) in zip(shown, want))
    print(("ok|" if diff <= tol else "fail|") + f"{name}: its {len(shown)} weights equal the "
          f"dump's to {diff:.2g} (at most {tol:g}; stored with {r['bits']} bits)")
labels = [s[1] for s in shown]
print(("ok|" if all(l.startswith("'") and l.endswith("'") for l in labels) else "fail|") +
      f"{name}: each weight with its key's token ({', '.join(labels[-3:])})")
print(("ok|" if r["render_ms"] < 1000 and r["select_ms"] < 1000 else "fail|") +
      f"{name}: unpacked in {r['decode_ms']} ms, drawn in {r['render_ms']} ms, a token chosen in "
      f"{r['select_ms']} ms ({r['T']} tokens)")
json.dump(r, open(sys.argv[2] + ".json", "w"))
EOF
}
# judge NAME DOM LOG ROWS TOL: the verdicts counted here (a crash of the checks is one failure)
judge() {
  if ! verdicts "$@" >"$tmp/verdicts" 2>&1; then
    fail "$1: the checks failed: $(tail -n 1 "$tmp/verdicts")"; return
  fi
  while IFS='|' read -r verdict text; do
    if [ "$verdict" = ok ]; then ok "$text"; else fail "$text"; fi
  done <"$tmp/verdicts"
}

# the fresh pages: model, layer, head, query against the dump of the same prompt
browse() {  # ID NAME PAGE HASH CKPT LAYER HEAD QUERY TOL [DUMP ARGS]
  local id=$1 name=$2 pg=$3 hash=$4 ckpt=$5 l=$6 h=$7 q=$8 tol=$9; shift 9
  if ! render "$pg" "$hash" "$id"; then
    fail "$name: chromium failed: $(tail -n 2 "$tmp/$id.log")"; return
  fi
  if ! dump_row "$ckpt" "$l" "$h" "$q" "$@" >"$tmp/$id.rows"; then
    fail "$name: the dump failed"; return
  fi
  judge "$name" "$tmp/$id.dom" "$tmp/$id.log" "$tmp/$id.rows" "$tol"
}
browse sig "sigmoid model, layer 1 head 3" "$tmp/two.html" "model=0&layer=1&head=3&query=60" \
  "$tmp/swat/model.ckpt" 1 3 60 1e-3 --prompt "$PROMPT"
# the start token is position 0 of the dump, so query 61 is the prompt's byte 60
browse soft "softmax model with a start token, all heads" "$tmp/two.html" \
  "model=1&layer=0&head=2&query=61&all=1" "$tmp/soft/model.ckpt" 0 2 61 1e-3 --prompt "$PROMPT"
browse sub "subword model" "$tmp/sub.html" "model=0&layer=0&head=1&query=20" \
  "$tmp/sub/model.ckpt" 0 1 20 1e-3 --prompt "$PROMPT" --tokenizer "$tmp/tok.bin"
browse eight "8-bit page" "$tmp/eight.html" "model=0&layer=1&head=0&query=50" \
  "$tmp/swat/model.ckpt" 1 0 50 0.00197 --prompt "$PROMPT"   # half a step of 1/255
browse long "2,047 tokens" "$tmp/long.html" "model=0&layer=0&head=2&query=2000" \
  "$tmp/swat/model.ckpt" 0 2 2000 1e-3 --prompt "$(cat "$tmp/long.txt")"
if [ -s "$tmp/soft.dom.json" ]; then
  check "the softmax page labels position 0 <bos> and draws all 4 heads" "$py" -c '
import json, sys; r = json.load(open(sys.argv[1]))
sys.exit(not (r["labels"][0] == "<bos>" and r["after"]["map"].count(",") == r["H"] - 1))' \
    "$tmp/soft.dom.json"
else fail "the softmax page's self-test record is missing"; fi
if [ -s "$tmp/sub.dom.json" ]; then
  check "the subword page labels the pieces ('god', 'the ', ...) and they spell the prompt" \
    "$py" -c '
import json, sys; r = json.load(open(sys.argv[1])); labels = r["labels"]
sys.exit(not ("".join(labels) == sys.argv[2] and "god" in labels and "the " in labels))' \
    "$tmp/sub.dom.json" "$PROMPT"
else fail "the subword page's self-test record is missing"; fi

# ---- the committed examples, against the dump rows recorded with them ----
committed() {  # ID PAGE: the page with the query of its rows file PAGE%.html_query.tsv
  local rows=${2%.html}_query.tsv n='\([0-9]*\)' m l h q
  if [ ! -s "$rows" ]; then
    fail "$2 has no rows file $rows (dev/attention_page_example.sh)"; return
  fi
  read -r m l h q < <(sed -n "s/^# model $n layer $n head $n query $n.*/\\1 \\2 \\3 \\4/p" "$rows")
  if [ -z "${q:-}" ]; then fail "$rows has no line '# model M layer L head H query Q'"; return; fi
  if ! render "$2" "model=$m&layer=$l&head=$h&query=$q" "$1"; then
    fail "$2: chromium failed: $(tail -n 2 "$tmp/$1.log")"; return
  fi
  judge "committed $2" "$tmp/$1.dom" "$tmp/$1.log" "$rows" 1e-3
}
[ -s "$EXAMPLE" ] && committed example "$EXAMPLE"
SINK=dev/results/attention/sink_page.html
if [ -s "$SINK" ]; then
  check "$SINK references no URL and loads no file" offline "$SINK"
  committed sink "$SINK"
fi
finish
