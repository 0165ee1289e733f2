#!/usr/bin/env bash
# The committed attention explorer in dev/results/attention/ (make attention-page):
#   page.html       dev/attention_page.py on the `make train` model (MODEL, default
#                   out/bible/model.ckpt) over LEN bytes of the first held-out verse of the
#                   Bible (Colossians 1:17, the text of dev/attention_figures.sh), all layers
#   page_query.tsv  the dump's weights of one query (layer LAYER, head HEAD, the last token),
#                   read from train_swat --dump-attn here: tests/attention_page.sh holds the
#                   numbers the page shows for that query to them
#   page.png        a screenshot of the page in headless Chromium with that query chosen
#   page_sizes.txt  the size of a page of 2,047 bytes from the same place (all layers and
#                   heads; not kept) and the times its self-test took in headless Chromium
set -eu
py=${PYTHON:-/usr/bin/python3}
model=${MODEL:-out/bible/model.ckpt}
len=${LEN:-200}
layer=${LAYER:-0}
head=${HEAD:-5}
out=dev/results/attention
die() { echo "error: $*" >&2; exit 1; }
command -v chromium >/dev/null || die "no chromium for the screenshot (apt-get install chromium)"
offset=$("$py" -c "print(open('data/bible/kjv.txt', 'rb').read().find(b'  17 And he is before'))")
[ "$offset" -ge 0 ] || die "the passage is not in data/bible/kjv.txt (run: make data)"
[ -f "$model" ] || die "$model is missing (run: make train)"
mkdir -p "$out"
"$py" dev/attention_page.py "$model" --names "make train" --text data/bible/kjv.txt \
  --offset "$offset" --len "$len" -o "$out/page.html" \
  --title "The make train model (SWAT) on Colossians 1:17, held out from training"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prompt=$(head -c $((offset + len)) data/bible/kjv.txt | tail -c "$len"; echo .)
./train_swat --init "$model" --dump-attn "$tmp/attn.bin" --dump-layer "$layer" \
  --prompt "${prompt%.}" 2>/dev/null
"$py" - "$tmp/attn.bin" "$layer" "$head" >"$out/page_query.tsv" <<'EOF'
import struct, sys
data, layer, h = open(sys.argv[1], "rb").read(), int(sys.argv[2]), int(sys.argv[3])
_, _, H, T, W, _ = struct.unpack("<6i", data[8:32])
q = T - 1
row = struct.unpack_from("<%df" % T, data, 32 + 4 * T + 4 * T * (h * T + q))
print(f"# layer {layer} head {h} query {q}: key and weight, from train_swat --dump-attn")
for n in range(max(0, q - W + 1), q + 1):
    print(f"{n}\t{row[n]:.7f}")
EOF
q=$(sed -n 's/^# layer [0-9]* head [0-9]* query \([0-9]*\).*/\1/p' "$out/page_query.tsv")
chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
  --hide-scrollbars --window-size=1280,1180 \
  --screenshot="$PWD/$out/page.png" \
  "file://$PWD/$out/page.html#selftest&layer=$layer&head=$head&query=$q" \
  2>/dev/null
"$py" dev/attention_page.py "$model" --text data/bible/kjv.txt --offset "$offset" --len 2047 \
  -o "$tmp/big.html" >"$tmp/big.log"
chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
  --dump-dom "file://$tmp/big.html#selftest&layer=3&head=2&query=2000" 2>/dev/null >"$tmp/big.dom"
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
echo "wrote $out/page.html, $out/page_query.tsv (query $q), $out/page.png and $out/page_sizes.txt"
