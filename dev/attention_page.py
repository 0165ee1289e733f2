#!/usr/bin/env python3
"""An attention explorer: one self-contained HTML page to open in a browser.

    /usr/bin/python3 dev/attention_page.py CKPT [CKPT ...] (--text FILE [--offset N --len N]
        | --prompt TEXT | --prompt-ids IDS) [--tokenizer FILE] [--layers all|0,2]
        [--names A,B] [--window W] [--bits auto|8|16] [--bin ./train_swat] -o page.html

For each checkpoint and each chosen layer this runs `train_swat --init CKPT --dump-attn FILE
--dump-layer L --prompt TEXT` (the C trainer's forward pass; dump_attention in train_swat.c)
and reads the dump with dev/attention_maps.py's read_dump. The page holds everything inline
(data, script, style: no server, no network, it opens from a file:// URL): pick a model, a
layer and a head (or all heads of the layer as small multiples); hover or click a token of the
text to see its query's weights over its window drawn on the text; the heat map (row m the
query, column n the key) with both tokens on hover; the mean weight against distance per
head; per head the row sum (SWAT's sigmoid weights are gates, a head can switch off) and the
weight and share on position 0 (softmax parks spare weight there: the sink, doc/sink.md).

Labels: bytes, or with --tokenizer FILE (llm.c's format, doc/SPEC.md section 9) the pieces of
a subword model; a model's start token (checkpoint field 16) is <bos>. The weights of a query
over its window (the band, key m - d for d < w) are stored quantised, 16 bits when the page
stays small, 8 bits otherwise (--bits): a 2,048-token prompt, 8 heads, 4 layers and w = 64 is
4.2 M weights, compressed (raw DEFLATE; the page's script unpacks it).
The per-head numbers (row sums, position 0, distance curves) are computed here in float32.

Self-test (tests/attention_page.sh): page.html#selftest&model=0&layer=0&head=3&query=40
selects that head and token after drawing the default view and writes into the page's
<pre id="selftest"> a JSON record: whether the drawing changed, the query's weights as the
page shows them, and any script error.
"""
import argparse
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import attention_maps as am  # noqa: E402  read_dump, read_ckpt_header, alibi_slopes
import numpy as np  # noqa: E402  (attention_maps has checked that it is there)

TEMPLATE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "attention_page.html")
MAX_T = 2048            # dump_attention's limit
AUTO_16BIT_CELLS = 1500000  # --bits auto: 16 bits up to this many weights (3 MB before compression)


def read_tokenizer(path):
    """The byte string of every token of an llm.c tokenizer file (doc/SPEC.md section 9)."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        sys.exit(f"error: --tokenizer {path}: {e.strerror}")
    if len(data) < 1024:
        sys.exit(f"error: --tokenizer {path} is shorter than its 1024-byte header")
    magic, version, V = struct.unpack("<3I", data[:12])
    if magic != 20240328 or version not in (1, 2):
        sys.exit(f"error: --tokenizer {path} is not a tokenizer file (magic {magic}, "
                 f"version {version})")
    pieces, p = [], 1024
    for i in range(V):
        n = data[p] if p < len(data) else 0
        if n < 1 or p + 1 + n > len(data):
            sys.exit(f"error: --tokenizer {path}: token {i} of {V} is cut short or empty")
        pieces.append(data[p + 1:p + 1 + n])
        p += 1 + n
    if p != len(data):
        sys.exit(f"error: --tokenizer {path}: {len(data) - p} bytes after its {V} tokens")
    return pieces


def show_bytes(b):
    """Text of a token's bytes: UTF-8 where it is valid, \\xNN for the rest and for control
    bytes other than newline and tab (which the page draws as arrows)."""
    s = b.decode("utf-8", errors="backslashreplace")
    return "".join(c if c in "\n\t" or c.isprintable() else f"\\x{ord(c):02x}" for c in s)


def token_labels(tokens, pieces, bos):
    """One label per position: the start token <bos>, a piece, a byte, or <id>."""
    out = []
    for i, t in enumerate(int(t) for t in tokens):
        if i == 0 and bos >= 0 and t == bos:
            out.append("<bos>")
        elif pieces is not None and t < len(pieces):
            out.append(show_bytes(pieces[t]))
        elif pieces is None and t < 256:
            out.append(show_bytes(bytes([t])))
        else:
            out.append(f"<{t}>")
    return out


def parse_layers(spec, L):
    if spec == "all":
        return list(range(L))
    try:
        layers = [int(x) for x in spec.split(",")]
    except ValueError:
        sys.exit(f"error: --layers {spec}: give 'all' or layer numbers like 0,2")
    bad = [x for x in layers if not 0 <= x < L]
    if bad or len(set(layers)) != len(layers):
        sys.exit(f"error: --layers {spec}: the model has layers 0..{L - 1}, each at most once")
    return layers


def run_dump(args, ckpt, layer, prompt, tokenizer):
    """Layer `layer` of `ckpt` over the prompt, as attention_maps.read_dump reads it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "attn.bin")
        cmd = [args.bin, "--init", ckpt, "--dump-attn", out, "--dump-layer", str(layer)] + prompt
        if tokenizer:
            cmd += ["--tokenizer", tokenizer]
        if args.window:
            cmd += ["--eval-window", str(args.window)]
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            msg = r.stderr.decode(errors="replace").strip().splitlines()
            sys.exit(f"error: {args.bin} --init {ckpt} --dump-attn ... --dump-layer {layer} "
                     f"failed: {msg[-1] if msg else f'exit {r.returncode}'}")
        return am.read_dump(out)


def band_of(A, band):
    """(H, T, band) with [h, m, d] the weight of key m - d for query m (0 where m - d < 0)."""
    H, T, _ = A.shape
    m = np.arange(T)[:, None]
    key = m - np.arange(band)[None, :]
    B = np.take_along_axis(A, np.broadcast_to(np.maximum(key, 0), (H, T, band)), axis=2)
    return np.where(key >= 0, B, 0.0).astype(np.float32)


def head_numbers(A, B, window):
    """Per head, in float32 from the dump: the mean row sum over all queries; over the queries
    1 .. min(T, w) - 1, which see position 0 (as train_swat --sinks counts them), the mean
    weight a(m, 0), row sum and share a(m, 0) / row sum; and the mean weight against distance
    d over the queries that see the whole band (m >= band - 1), as attention_maps draws it, or,
    when fewer than a quarter of the queries do (a window as long as the text), over the
    queries that reach distance d (m >= d). Returns them, the row sums and the rule used."""
    H, T, band = B.shape
    rows = B.sum(axis=2)  # (H, T)
    reach = min(T, window)
    first = A[:, 1:reach, 0]
    seen = rows[:, 1:reach]
    share = np.where(seen > 0, first / np.maximum(seen, 1e-30), 0.0)
    whole = T - band + 1 >= T / 4
    heads = []
    for h in range(H):
        def mean(x):
            return round(float(x.mean()), 6) if x.size else None
        dist = B[h, band - 1:, :].mean(axis=0) if whole else \
            np.array([B[h, d:, d].mean() for d in range(band)])
        heads.append(dict(row_sum=mean(rows[h]), first=mean(first[h]), row_sum_seen=mean(seen[h]),
                          share=mean(share[h]), dist=[round(float(v), 6) for v in dist]))
    return heads, rows, "whole band" if whole else "each distance"


def b64(data):
    return base64.b64encode(data).decode("ascii")


def quantise(B, bits):
    """The band as unsigned integers of `bits` bits (round(a * (2^bits - 1))), little-endian,
    compressed as raw DEFLATE (zlib, wbits -15), which the page's inflate unpacks."""
    top = (1 << bits) - 1
    q = np.rint(np.clip(B, 0.0, 1.0) * top).astype("<u2" if bits == 16 else "u1")
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b64(z.compress(q.tobytes()) + z.flush())


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def model_data(args, ckpt, name, prompt, pieces, bits):
    """Everything the page knows of one model: header fields, tokens, the layers' bands."""
    cfg = am.read_ckpt_header(ckpt)
    tokenizer = args.tokenizer if cfg["V"] > 257 else None
    if cfg["V"] > 257 and pieces is None and "--prompt-ids" not in prompt:
        sys.exit(f"error: {ckpt} has a vocabulary of {cfg['V']} tokens: give --tokenizer FILE "
                 "(or --prompt-ids)")
    if tokenizer and len(pieces) != cfg["V"]:
        sys.exit(f"error: --tokenizer {args.tokenizer} has {len(pieces)} tokens but {ckpt}'s "
                 f"vocabulary is {cfg['V']}")
    slopes = am.alibi_slopes(cfg["H"], cfg["neg"], cfg["pos"], cfg["version"])
    out = dict(name=name, ckpt=ckpt, sha256=file_digest(ckpt), attn=cfg["attn"],
               version=cfg["version"], H=cfg["H"], L=cfg["L"], neg=cfg["neg"], pos=cfg["pos"],
               rope=cfg["rope"], bos=cfg["bos"], train_T=cfg["T"], train_window=cfg["window"],
               slopes=slopes, bits=bits, tokenizer=os.path.basename(tokenizer) if tokenizer
               else None, layers=[])
    for layer in args.layer_list[ckpt]:
        d = run_dump(args, ckpt, layer, prompt, tokenizer)
        if "tokens" not in out:
            out.update(T=d["T"], window=d["window"], band=min(d["window"], d["T"]),
                       tokens=[int(t) for t in d["tokens"]],
                       labels=token_labels(d["tokens"], pieces if tokenizer else None,
                                           cfg["bos"]))
        B = band_of(d["weights"], out["band"])
        heads, rows, rule = head_numbers(d["weights"], B, d["window"])
        out["layers"].append(dict(layer=layer, heads=heads, w=quantise(B, bits), dist_rule=rule,
                                  rowsum=b64(rows.astype("<f4").tobytes())))
        print(f"{name}: layer {layer}: {d['H']} heads over {d['T']} tokens, window {d['window']}")
    return out


def prompt_args(args):
    """train_swat's prompt flags, and a sentence saying where the text comes from."""
    if args.prompt_ids is not None:
        return ["--prompt-ids", args.prompt_ids], f"the ids given ({args.prompt_ids[:40]}...)"
    if args.prompt is not None:
        data = os.fsencode(args.prompt)
        where = f"the --prompt given ({len(data)} bytes)"
    else:
        try:
            with open(args.text, "rb") as f:
                f.seek(args.offset)
                data = f.read(args.len if args.len else -1)
        except OSError as e:
            sys.exit(f"error: --text {args.text}: {e.strerror}")
        where = f"{len(data)} bytes of {os.path.basename(args.text)} from offset {args.offset}"
    if not data:
        sys.exit("error: the text is empty")
    if b"\0" in data:
        sys.exit("error: the text contains a NUL byte, which a command-line prompt cannot carry")
    if len(data) > MAX_T and args.tokenizer is None:
        sys.exit(f"error: the text has {len(data)} bytes; train_swat --dump-attn takes at most "
                 f"{MAX_T} tokens, a start token included (use --len)")
    return ["--prompt", data], where


def choose_bits(args, cells):
    if args.bits != "auto":
        return int(args.bits)
    return 16 if cells <= AUTO_16BIT_CELLS else 8


def write_page(path, page):
    """The template with the data inline; '<' escaped (as \\u003c inside the JSON strings) so
    that no label can end the script or open a comment."""
    try:
        html = open(TEMPLATE, encoding="utf-8").read()
    except OSError as e:
        sys.exit(f"error: cannot read the page template {TEMPLATE}: {e.strerror}")
    data = json.dumps(page, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    html = html.replace("/*PAGE_DATA*/null", data, 1)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(html)
    except OSError as e:
        sys.exit(f"error: -o {path}: {e.strerror}")
    return len(html.encode("utf-8"))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpts", nargs="+", metavar="CKPT", help="checkpoints (train_swat --save)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="FILE", help="the text to look at: this file's bytes")
    src.add_argument("--prompt", metavar="TEXT", help="the text to look at")
    src.add_argument("--prompt-ids", metavar="IDS", help="token ids ('464 2068 ...')")
    ap.add_argument("--offset", type=int, default=0, help="byte offset into --text")
    ap.add_argument("--len", type=int, default=0, help="bytes of --text (default: all)")
    ap.add_argument("--tokenizer", metavar="FILE", help="tokenizer of subword models")
    ap.add_argument("--layers", default="all", help="'all' (default) or layers like 0,2")
    ap.add_argument("--names", help="the models' names, comma-separated (default: folders)")
    ap.add_argument("--window", type=int, default=0, help="attention window (default: model's)")
    ap.add_argument("--bits", default="auto", choices=["auto", "8", "16"],
                    help="bits per stored weight (auto: 16 unless the page would be big)")
    ap.add_argument("--title", default="", help="the page's title")
    ap.add_argument("--bin", default="./train_swat", help="the trainer (./train_swat)")
    ap.add_argument("-o", "--out", required=True, help="the page to write")
    args = ap.parse_args()
    if args.offset < 0 or args.len < 0 or args.window < 0:
        sys.exit("error: --offset, --len and --window must be >= 0")
    if (args.offset or args.len) and args.text is None:
        sys.exit("error: --offset and --len go with --text FILE")
    if not os.path.isfile(args.bin):
        sys.exit(f"error: {args.bin} not found (run: make train_swat)")
    folder = os.path.dirname(os.path.abspath(args.out))  # a bad -o fails before the work
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        sys.exit(f"error: -o {args.out}: the folder {folder} does not exist or is not writable")
    return args


def main():
    args = parse_args()
    names = args.names.split(",") if args.names else [
        os.path.basename(os.path.dirname(os.path.abspath(c))) or c for c in args.ckpts]
    if len(names) != len(args.ckpts):
        sys.exit(f"error: --names gives {len(names)} names for {len(args.ckpts)} checkpoints")
    pieces = read_tokenizer(args.tokenizer) if args.tokenizer else None
    prompt, where = prompt_args(args)
    headers = {c: am.read_ckpt_header(c) for c in args.ckpts}
    args.layer_list = {c: parse_layers(args.layers, h["L"]) for c, h in headers.items()}
    tokens = len(prompt[1]) + 1 if prompt[0] == "--prompt" else len(prompt[1].split()) + 1
    cells = sum(len(args.layer_list[c]) * h["H"] * tokens * min(tokens, args.window or h["window"])
                for c, h in headers.items())
    bits = choose_bits(args, cells)
    models = [model_data(args, c, n, prompt, pieces, bits) for c, n in zip(args.ckpts, names)]
    page = dict(title=args.title or "Attention: " + ", ".join(names), source=where, models=models)
    size = write_page(args.out, page)
    print(f"wrote {args.out}: {size / 1e6:.2f} MB, {bits}-bit weights, text: {where}")


if __name__ == "__main__":
    main()
