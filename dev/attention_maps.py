#!/usr/bin/env python3
"""Draw what each attention head looks at.

    /usr/bin/python3 dev/attention_maps.py --ckpt model.ckpt --out attn [--layer 0|all]
        [--text "In the beginning ..." | --text-file FILE --offset N] [--len 96]
        [--window W] [--tokenizer FILE] [--bin ./train_swat]

The text: --text, or --len bytes of --text-file from --offset. Without either, the script
looks for what the model was trained on (a run.json or log.txt next to the checkpoint that
names the training shard): the Bible (data/bible/ or a folder in it, such as its BPE shards)
means data/bible/kjv.txt; other data means you must pass --text-file (the model knows nothing
about the Bible); nothing found means data/bible/kjv.txt, the data of `make train`, with a note
saying so. The text used is always printed. --out's folder is created first, so a bad --out
fails before any work.

A subword model (a vocabulary beyond bytes) needs its tokenizer file (llm.c's format, as
data/prepare_bpe.py writes it): --tokenizer, or the one the run's log.txt next to the
checkpoint names (as train_swat --init finds it). train_swat encodes the text with it, and the
labels are the tokens' pieces (a space shows as "_", a newline as "\\n"); the script prints them.

For each chosen layer this runs `train_swat --init CKPT --dump-attn FILE --dump-layer l
--prompt TEXT [--tokenizer FILE]` (the C trainer's own forward pass writes the weights; see dump_attention in
train_swat.c) and writes two pictures:

  OUT_layer<l>.png            one heatmap per head: row m is the query, column n the key,
                              colour the weight a(m, n). Everything above the diagonal is
                              the future (causal mask); everything left of the band
                              n <= m - w is outside the sliding window and costs nothing.
  OUT_layer<l>_distance.png   for each head, the mean weight against the distance d = m - n,
                              over the queries that see the whole band (m >= w - 1).

How to read them (spec section 2):
  * sigmoid heads (SWAT): a(m, n) = sigmoid(q.k/sqrt(D) + slope_h*(m-n)). Each weight is
    its own gate in (0, 1), rows do not sum to 1, so the map is dense: no head is forced
    to dump its attention anywhere. Heads 0..NEG-1 have slope < 0 and their weights fall
    with distance (they look near); heads NEG..NEG+POS-1 have slope > 0 and their weights
    rise with distance (they look far, up to the window's edge).
  * softmax heads: every row sums to 1. A head with nothing useful to attend to puts its
    mass on the first tokens of the sequence, the "attention sink" (a bright first column),
    which is what breaks vanilla models when the window slides past those tokens.

The checkpoint header (spec section 3) gives the attention kind, NEG:POS and the version,
so the head titles show each head's ALiBi slope: 2^(-8k/H) for the k-th head of a group in
version 2 files, 2^-k in version 1 files (the same for H = 8). A version 2 header with a start
token (field 16 >= 0) means the dump begins with that token (train_swat puts it before the
prompt, as in training): it is labelled <bos>.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import matplotlib
except ImportError as e:
    sys.exit(f"error: {e.name} is missing: bash dev/need_matplotlib.sh installs numpy and matplotlib "
             "(Debian: apt-get install python3-numpy python3-matplotlib)")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIBLE = os.path.join(ROOT, "data", "bible", "kjv.txt")


def read_ckpt_header(path):
    """The model fields of a checkpoint header (spec section 3), versions 1 and 2."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as e:
        sys.exit(f"error: cannot read {path}: {e.strerror}")
    if len(head) < 1024:
        sys.exit(f"error: {path} is not a SWAT checkpoint (shorter than its 1024-byte header)")
    h = struct.unpack("<256i", head)
    if h[0] != 0x54415753:
        sys.exit(f"error: {path} is not a SWAT checkpoint")
    if h[1] not in (1, 2):
        sys.exit(f"error: {path}: checkpoint version {h[1]} is not one this script reads (1 or 2)")
    V, L, H, C, F, w = h[2:8]
    bos = h[16] if h[1] == 2 else -1  # version 1: no start token (field 16 is 0)
    return dict(version=h[1], V=V, L=L, H=H, window=w, attn="softmax" if h[8] == 1 else "sigmoid",
                neg=h[9], pos=h[10], rope=h[11], T=h[13], bos=bos)


def alibi_slopes(H, neg, pos, version=2):
    """Spec section 2: head h < NEG gets -m(h+1), head NEG <= h < NEG+POS gets +m(h-NEG+1), the
    rest 0, with m(k) = 2^(-8k/H) in version 2 and m(k) = 2^-k in version 1."""
    def mag(k):
        return 2.0 ** -k if version == 1 else 2.0 ** (-8.0 * k / H)
    return [-mag(h + 1) if h < neg else mag(h - neg + 1) if h < neg + pos else 0.0 for h in range(H)]


def slope_rule(version):
    return "2^-k (version 1)" if version == 1 else "2^(-8k/H)"


def training_shard(ckpt):
    """The training shard named next to the checkpoint (run.json of dev/experiments.py, or the
    --train of log.txt's args line), with the file that says so; or (None, None)."""
    folder = os.path.dirname(os.path.abspath(ckpt))
    run = os.path.join(folder, "run.json")
    try:
        args = json.load(open(run))
        if isinstance(args, list) and "--train" in args and args.index("--train") + 1 < len(args):
            return str(args[args.index("--train") + 1]), run
    except (OSError, ValueError):
        pass
    log = os.path.join(folder, "log.txt")
    try:
        with open(log, errors="replace") as f:
            for line in f:
                # the trainer's "args<TAB>--train<TAB>PATH..." line (or a --train PATH / train=PATH)
                m = re.search(r"(?:--train[ \t=]|\btrain=)(\S+)", line)
                if m:
                    return m.group(1), log
    except OSError:
        pass
    return None, None


def run_tokenizer(ckpt):
    """The --tokenizer of the last "args" line of the log.txt next to the checkpoint (the one
    train_swat --init takes), or None."""
    found = None
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(ckpt)), "log.txt"), errors="replace") as f:
            for line in f:
                if line.startswith("args\t"):
                    fields = line.rstrip("\n").split("\t")[1:]
                    found = dict(zip(fields[0::2], fields[1::2])).get("--tokenizer")
    except OSError:
        pass
    return found


def read_tokenizer(path):
    """The tokens' bytes of a tokenizer file (llm.c's format, versions 1 and 2)."""
    try:
        raw = open(path, "rb").read()
    except OSError as e:
        sys.exit(f"error: cannot read --tokenizer {path}: {e.strerror}")
    if len(raw) < 1024 or struct.unpack_from("<3I", raw)[:2] not in ((20240328, 1), (20240328, 2)):
        sys.exit(f"error: {path} is not a tokenizer file (llm.c's format, version 1 or 2)")
    pieces, pos = [], 1024
    for _ in range(struct.unpack_from("<3I", raw)[2]):
        n = raw[pos] if pos < len(raw) else 0
        if n == 0 or pos + 1 + n > len(raw):
            sys.exit(f"error: {path} is truncated or damaged at token {len(pieces)}")
        pieces.append(raw[pos + 1:pos + 1 + n])
        pos += 1 + n
    return pieces


def show_path(p):
    """p relative to the current folder when it is below it, else absolute."""
    rel = os.path.relpath(p)
    return os.path.abspath(p) if rel.startswith("..") else rel


def choose_text(args, ckpt):
    """The text to look at and a sentence saying where it comes from."""
    if args.text is not None:
        data = os.fsencode(args.text)  # its bytes, carried as latin-1 like a --text-file's
        return data.decode("latin-1"), f"the --text given ({len(data)} bytes)"
    path = args.text_file
    if path is None:
        shard, source = training_shard(ckpt)
        rel = show_path(BIBLE)
        if shard is None:
            path = BIBLE
            why = (f"note: {ckpt} does not say what it was trained on (no run.json or training shard in "
                   f"log.txt next to it); using {rel}, the data of `make train`. For a model trained on "
                   "other text pass --text-file with text like it.")
        elif "bible" in os.path.dirname(os.path.abspath(shard)).split(os.sep)[-2:]:  # data/bible/, data/bible/bpe4096/
            path = BIBLE
            why = f"the Bible, {rel}: the model was trained on {shard} (says {show_path(source)})"
        else:
            sys.exit(f"error: {ckpt} was trained on {shard} (says {show_path(source)}), not on the Bible: "
                     "pass --text-file FILE with text like its training text (or --text)")
        if not os.path.exists(path):
            sys.exit(f"error: {rel} is missing (make data), and no --text-file or --text was given")
        if shard is None:
            print(why, file=sys.stderr)
            why = f"{rel} (a guess: see the note)"
    else:
        why = path
    try:
        with open(path, "rb") as f:
            f.seek(args.offset)
            data = f.read(args.len)
    except OSError as e:
        sys.exit(f"error: cannot read --text-file {path}: {e.strerror}")
    if not data:
        sys.exit(f"error: {path} has no bytes at offset {args.offset}")
    return data.decode("latin-1"), f"{len(data)} bytes of {why} from offset {args.offset}"


def read_dump(path):
    """The file dump_attention writes: magic, 6 int32, T tokens, H*T*T float32 (with a start
    token, it is token 0 and T counts it)."""
    data = open(path, "rb").read()
    if data[:8] != b"SWATATTN":
        sys.exit(f"error: {path} is not an attention dump")
    version, layer, H, T, W, attn = struct.unpack("<6i", data[8:32])
    tokens = np.frombuffer(data, "<i4", T, 32)
    weights = np.frombuffer(data, "<f4", H * T * T, 32 + 4 * T).reshape(H, T, T)
    return dict(layer=layer, H=H, T=T, window=W, attn=attn, tokens=tokens, weights=weights)


def dump_layer(binary, ckpt, text, layer, window, tokenizer=None):
    """Runs the C trainer's forward pass on `text` (through `tokenizer`, a file, if given) and
    returns the layer's attention."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "attn.bin")
        cmd = [binary, "--init", ckpt, "--dump-attn", out, "--dump-layer", str(layer), "--prompt", text.encode("latin-1")]
        if window:
            cmd += ["--eval-window", str(window)]
        if tokenizer:
            cmd += ["--tokenizer", tokenizer]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: {' '.join(cmd[:6])} ... failed: {r.stderr.strip()}")
        return read_dump(out)


def show_char(t):
    if t >= 256:
        return f"<{t}>"
    c = chr(t)
    return {"\n": "\\n", " ": "_"}.get(c, c if c.isprintable() else "?")


def show_piece(b):
    """A token's bytes as a label: its text ("_" for a space, "\\n" for a newline), or <XX> per
    byte when it is no UTF-8 text (a byte piece of a longer character)."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<{x:02X}>" for x in b)
    return "".join({"\n": "\\n", " ": "_"}.get(c, c if c.isprintable() else "?") for c in text)


def token_labels(tokens, bos, pieces=None):
    """One label per position; the start token (position 0 of a model that has one) is <bos>.
    With the tokenizer's pieces (a list of bytes), a token's label is its piece."""
    def show(t):
        return show_piece(pieces[t]) if pieces is not None and t < len(pieces) else show_char(t)
    return ["<bos>" if i == 0 and bos >= 0 and t == bos else show(int(t)) for i, t in enumerate(tokens)]


def plot_maps(d, slopes, title, path, bos=-1, pieces=None):
    H, T, A = d["H"], d["T"], d["weights"]
    cols = min(H, 4)
    rows = (H + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.5 * rows + 0.6), squeeze=False, constrained_layout=True)
    labels = token_labels(d["tokens"], bos, pieces)
    step = max(1, T // 16)  # at most ~16 labelled characters per axis
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= H:
            ax.axis("off")
            continue
        # softmax rows sum to 1: a shared 0..max scale; sigmoid gates are in (0, 1)
        vmax = 1.0 if d["attn"] == 0 else max(float(A[h].max()), 1e-6)
        ax.imshow(A[h], cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        kind = "near (slope < 0)" if slopes[h] < 0 else "far (slope > 0)" if slopes[h] > 0 else "no ALiBi"
        ax.set_title(f"head {h}: slope {slopes[h]:+.3g}\n{kind}", fontsize=8)
        ticks = list(range(0, T, step))
        if bos >= 0 and 1 < step < T and 1 not in ticks:
            ticks.insert(1, 1)  # the first text position next to <bos>
        ax.set_xticks(ticks)
        for t in ax.set_xticklabels([labels[i] for i in ticks], fontsize=6):
            if len(t.get_text()) > 2:  # <bos>, <id>: upright they run into the next label
                t.set_rotation(90)
        ax.set_yticks(ticks)
        ax.set_yticklabels([labels[i] for i in ticks], fontsize=6)
        if h % cols == 0:
            ax.set_ylabel("query m", fontsize=7)
        if h // cols == rows - 1:
            ax.set_xlabel("key n", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distance(d, slopes, title, path):
    """Mean weight against distance m - n, over queries that see the whole band."""
    H, T, W, A = d["H"], d["T"], min(d["window"], d["T"]), d["weights"]
    rows = np.arange(W - 1, T)
    dist = np.arange(W)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for h in range(H):
        mean = np.array([A[h, rows, rows - k].mean() for k in dist])
        style = "-" if slopes[h] < 0 else "--" if slopes[h] > 0 else ":"
        ax.plot(dist, mean, style, label=f"head {h} (slope {slopes[h]:+.3g})")
    ax.set_xlabel("distance m - n (0 = the query's own position)")
    ax.set_ylabel("mean attention weight")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True, help="output prefix: OUT_layer<l>.png, OUT_layer<l>_distance.png "
                    "(its folder is created)")
    ap.add_argument("--layer", default="all", help="a layer number or 'all' (default)")
    ap.add_argument("--text", help="the text to look at (bytes are tokens; with a tokenizer, its tokens)")
    ap.add_argument("--text-file", help="a text like the model's training text (default: see the top of this file)")
    ap.add_argument("--offset", type=int, default=0, help="byte offset into --text-file")
    ap.add_argument("--len", type=int, default=96, help="bytes of --text-file to use (at most 2048)")
    ap.add_argument("--window", type=int, default=0, help="attention window (default: the model's)")
    ap.add_argument("--tokenizer", help="a subword model's tokenizer file (default: the one its run's log.txt "
                    "names); the labels are its pieces")
    ap.add_argument("--bin", default="./train_swat")
    args = ap.parse_args()
    if args.text is not None and args.text_file is not None:
        sys.exit("error: --text and --text-file exclude each other")
    if args.offset < 0 or args.len < 1:
        sys.exit("error: --offset must be >= 0 and --len >= 1")
    if not os.path.exists(args.bin):
        sys.exit(f"error: {args.bin} not found (run: make train_swat)")
    cfg = read_ckpt_header(args.ckpt)
    layers = range(cfg["L"]) if args.layer == "all" else [int(args.layer)] if args.layer.isdigit() else None
    if layers is None or any(not 0 <= l < cfg["L"] for l in layers):
        sys.exit(f"error: --layer {args.layer}: the model has layers 0..{cfg['L'] - 1} (or 'all')")
    # the output folder first: a bad --out must fail before the work, not after it
    folder = os.path.dirname(os.path.abspath(args.out))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: --out {args.out}: cannot create the folder {folder}: {e.strerror}")
    if not os.access(folder, os.W_OK):
        sys.exit(f"error: --out {args.out}: the folder {folder} is not writable")
    tokenizer = args.tokenizer or run_tokenizer(args.ckpt)
    if tokenizer is None and cfg["V"] > 257:
        sys.exit(f"error: {args.ckpt} has a vocabulary of {cfg['V']} tokens: pass its tokenizer file, "
                 "--tokenizer FILE (data/prepare_bpe.py's OUTDIR/tokenizer.bin)")
    pieces = read_tokenizer(tokenizer) if tokenizer else None
    if tokenizer and not args.tokenizer:
        print(f"tokenizer: {tokenizer} (named by the log.txt next to {args.ckpt})")
    text, source = choose_text(args, args.ckpt)
    if "\0" in text:
        sys.exit("error: the text contains a NUL byte, which a command-line prompt cannot carry")
    print(f"text: {source}")
    slopes = alibi_slopes(cfg["H"], cfg["neg"], cfg["pos"], cfg["version"])
    name = os.path.basename(os.path.dirname(os.path.abspath(args.ckpt)))
    bos = f", start token {cfg['bos']} (<bos>)" if cfg["bos"] >= 0 else ""
    for layer in layers:
        d = dump_layer(args.bin, args.ckpt, text, layer, args.window, tokenizer)
        if layer == layers[0]:
            print(f"the {d['T']} tokens: " + " ".join(token_labels(d["tokens"], cfg["bos"], pieces)))
        if cfg["bos"] >= 0 and (d["T"] < 1 or int(d["tokens"][0]) != cfg["bos"]):
            print(f"note: the model has start token {cfg['bos']} but the dump does not begin with it", file=sys.stderr)
        title = (f"{name}: layer {layer}, {cfg['attn']}, ALiBi {cfg['neg']}:{cfg['pos']} (slopes {slope_rule(cfg['version'])}), "
                 f"RoPE {'on' if cfg['rope'] else 'off'},\nwindow {d['window']}, {d['T']} tokens{bos}")
        plot_maps(d, slopes, title, f"{args.out}_layer{layer}.png", cfg["bos"], pieces)
        plot_distance(d, slopes, title, f"{args.out}_layer{layer}_distance.png")
        print(f"wrote {args.out}_layer{layer}.png and {args.out}_layer{layer}_distance.png")


if __name__ == "__main__":
    main()
