#!/usr/bin/env bash
# The committed attention explorers in dev/results/attention/ (make attention-page):
#   page.html       dev/attention_page.py on the `make train` model (MODEL, default
#                   out/bible/model.ckpt) over LEN bytes of the first held-out verse of the
#                   Bible (Colossians 1:17, the text of dev/attention_figures.sh), all layers
#   sink_page.html  the sink chapter's Bigram-Backcopy models of seed 1 (make sink: SWAT and
#                   softmax without position encoding, SINK_RUNS/bb-*-L2-s1/model.ckpt) on the
#                   first validation chain (SINK_DATA/val.bin); skipped when they are missing
#   *_query.tsv     the dump's weights of one query of each page, read from train_swat
#                   --dump-attn here: tests/attention_page.sh holds the page's numbers to them
#   *.png           a screenshot of each page in headless Chromium with that query chosen
#   page_sizes.txt  the size of a page of 2,047 bytes of the make train model (all layers and
#                   heads; not kept) and the times its self-test took in headless Chromium
set -eu
py=${PYTHON:-/usr/bin/python3}
model=${MODEL:-out/bible/model.ckpt}
len=${LEN:-200}
runs=${SINK_RUNS:-dev/results/sink/runs}
bb=${SINK_DATA:-dev/results/sink/data/backcopy}
out=dev/results/attention
die() { echo "error: $*" >&2; exit 1; }
command -v chromium >/dev/null || die "no chromium for the screenshots (apt-get install chromium)"
offset=$("$py" -c "print(open('data/bible/kjv.txt', 'rb').read().find(b'  17 And he is before'))")
[ "$offset" -ge 0 ] || die "the passage is not in data/bible/kjv.txt (run: make data)"
[ -f "$model" ] || die "$model is missing (run: make train)"
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
browser() {
  chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --user-data-dir="$tmp/profile" "$@" 2>/dev/null
}

# rows OUT MODEL_INDEX LAYER HEAD CKPT PROMPT_FLAGS...: the last query's row of the dump
rows() {
  local file=$1 m=$2 layer=$3 head=$4 ckpt=$5; shift 5
  ./train_swat --init "$ckpt" --dump-attn "$tmp/attn.bin" --dump-layer "$layer" "$@" 2>/dev/null
  "$py" - "$tmp/attn.bin" "$m" "$layer" "$head" >"$file" <<'EOF'
import struct, sys
data, m, layer, h = open(sys.argv[1], "rb").read(), *map(int, sys.argv[2:5])
_, _, H, T, W, _ = struct.unpack("<6i", data[8:32])
q = T - 1
row = struct.unpack_from("<%df" % T, data, 32 + 4 * T + 4 * T * (h * T + q))
print(f"# model {m} layer {layer} head {h} query {q}: key and weight, from train_swat --dump-attn")
for n in range(max(0, q - W + 1), q + 1):
    print(f"{n}\t{row[n]:.7f}")
EOF
}
# shoot PAGE ROWS PNG [EXTRA HASH]: the page with the rows' query chosen, as a picture
shoot() {
  local n='\([0-9]*\)' m l h q
  read -r m l h q < <(sed -n "s/^# model $n layer $n head $n query $n.*/\\1 \\2 \\3 \\4/p" "$2")
  browser --hide-scrollbars --window-size=1280,1180 --screenshot="$PWD/$3" \
    "file://$PWD/$1#selftest&model=$m&layer=$l&head=$h&query=$q${4:-}"
}

"$py" dev/attention_page.py "$model" --names "make train" --text data/bible/kjv.txt \
  --offset "$offset" --len "$len" -o "$out/page.html" \
  --title "The make train model (SWAT) on Colossians 1:17, held out from training"
prompt=$(head -c $((offset + len)) data/bible/kjv.txt | tail -c "$len"; echo .)
rows "$out/page_query.tsv" 0 0 5 "$model" --prompt "${prompt%.}"
shoot "$out/page.html" "$out/page_query.tsv" "$out/page.png"

swat=$runs/bb-swat-L2-s1/model.ckpt soft=$runs/bb-softmax-nope-L2-s1/model.ckpt
if [ -f "$swat" ] && [ -f "$soft" ] && [ -f "$bb/val.bin" ]; then
  # the first chain's 127 letters: with the start token before them, one training sequence
  chain=$("$py" -c "import sys; print(open(sys.argv[1], 'rb').read()[1024:1278:2].decode())" \
    "$bb/val.bin")
  "$py" dev/attention_page.py "$swat" "$soft" --names "SWAT,softmax without position encoding" \
    --prompt "$chain" -o "$out/sink_page.html" \
    --title "The attention sink (doc/sink.md): Bigram-Backcopy models of seed 1, a validation chain"
  rows "$out/sink_page_query.tsv" 1 1 0 "$soft" --prompt "$chain"
  shoot "$out/sink_page.html" "$out/sink_page_query.tsv" "$out/sink_page.png" "&all=1"
else echo "skipped the sink page: $swat, $soft or $bb/val.bin is missing (run: make sink)"; fi

"$py" dev/attention_page.py "$model" --text data/bible/kjv.txt --offset "$offset" --len 2047 \
  -o "$tmp/big.html" >"$tmp/big.log"
browser --dump-dom "file://$tmp/big.html#selftest&layer=3&head=2&query=2000" >"$tmp/big.dom"
load=$(cut -d' ' -f1 /proc/loadavg)
"$py" - "$tmp/big.log" "$tmp/big.dom" "$load" >"$out/page_sizes.txt" <<'EOF'
import html, json, re, sys
log, dom, load = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
size = re.search(r"wrote \S+: ([0-9.]+) MB, (\d+)-bit", log)
r = json.loads(html.unescape(re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S).group(1)))
print(f"a page of {r['T']} tokens, {r['H']} heads, {r['layers']} layers, window {r['window']}: "
      f"{size.group(1)} MB with {size.group(2)}-bit weights")
print(f"headless Chromium, one run, load average {load} on 2 cores: "
      f"unpacked in {r['decode_ms']} ms, "
      f"drawn in {r['render_ms']} ms, a token chosen in {r['select_ms']} ms")
EOF
cat "$out/page_sizes.txt"
echo "wrote the pages, their query rows and screenshots in $out, and $out/page_sizes.txt"
