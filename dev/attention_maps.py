#!/usr/bin/env python3
"""Draw what each attention head looks at.

    /usr/bin/python3 dev/attention_maps.py --ckpt model.ckpt --out attn [--layer 0|all]
        [--text "In the beginning ..." | --text-file data/bible/kjv.txt --offset N] [--len 96]
        [--window W] [--bin ./train_swat]

For each chosen layer this runs `train_swat --init CKPT --dump-attn FILE --dump-layer l
--prompt TEXT` (the C trainer's own forward pass writes the weights; see dump_attention in
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

The checkpoint header (spec section 3) gives the attention kind and NEG:POS, so the head
titles show each head's ALiBi slope.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_ckpt_header(path):
    """The model fields of a checkpoint header (spec section 3)."""
    with open(path, "rb") as f:
        h = struct.unpack("<256i", f.read(1024))
    if h[0] != 0x54415753:
        sys.exit(f"error: {path} is not a SWAT checkpoint")
    V, L, H, C, F, w = h[2:8]
    return dict(L=L, H=H, window=w, attn="softmax" if h[8] == 1 else "sigmoid", neg=h[9], pos=h[10],
                rope=h[11], T=h[13])


def alibi_slopes(H, neg, pos):
    """Spec section 2: heads 0..NEG-1 get -2^-(h+1), heads NEG..NEG+POS-1 get +2^-(h-NEG+1)."""
    return [-2.0 ** -(h + 1) if h < neg else 2.0 ** -(h - neg + 1) if h < neg + pos else 0.0 for h in range(H)]


def read_dump(path):
    """The file dump_attention writes: magic, 6 int32, T tokens, H*T*T float32."""
    data = open(path, "rb").read()
    if data[:8] != b"SWATATTN":
        sys.exit(f"error: {path} is not an attention dump")
    version, layer, H, T, W, attn = struct.unpack("<6i", data[8:32])
    tokens = np.frombuffer(data, "<i4", T, 32)
    weights = np.frombuffer(data, "<f4", H * T * T, 32 + 4 * T).reshape(H, T, T)
    return dict(layer=layer, H=H, T=T, window=W, attn=attn, tokens=tokens, weights=weights)


def dump_layer(binary, ckpt, text, layer, window):
    """Runs the C trainer's forward pass on `text` and returns the layer's attention."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "attn.bin")
        cmd = [binary, "--init", ckpt, "--dump-attn", out, "--dump-layer", str(layer), "--prompt", text.encode("latin-1")]
        if window:
            cmd += ["--eval-window", str(window)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"error: {' '.join(cmd[:6])} ... failed: {r.stderr.strip()}")
        return read_dump(out)


def show_char(t):
    c = chr(t)
    return {"\n": "\\n", " ": "_"}.get(c, c if c.isprintable() else "?")


def plot_maps(d, slopes, title, path):
    H, T, A = d["H"], d["T"], d["weights"]
    cols = min(H, 4)
    rows = (H + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.5 * rows + 0.6), squeeze=False, constrained_layout=True)
    labels = [show_char(t) for t in d["tokens"]]
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
        ax.set_xticks(ticks)
        ax.set_xticklabels([labels[i] for i in ticks], fontsize=6)
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
    ap.add_argument("--out", required=True, help="output prefix: OUT_layer<l>.png, OUT_layer<l>_distance.png")
    ap.add_argument("--layer", default="all", help="a layer number or 'all' (default)")
    ap.add_argument("--text", help="the text to look at (bytes are tokens)")
    ap.add_argument("--text-file", default="data/bible/kjv.txt")
    ap.add_argument("--offset", type=int, default=0, help="byte offset into --text-file")
    ap.add_argument("--len", type=int, default=96, help="bytes of --text-file to use (at most 2048)")
    ap.add_argument("--window", type=int, default=0, help="attention window (default: the model's)")
    ap.add_argument("--bin", default="./train_swat")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"error: {args.bin} not found (run: make train_swat)")
    cfg = read_ckpt_header(args.ckpt)
    if args.text is None:
        with open(args.text_file, "rb") as f:
            f.seek(args.offset)
            args.text = f.read(args.len).decode("latin-1")
    if "\0" in args.text:
        sys.exit("error: the text contains a NUL byte, which a command-line prompt cannot carry")
    slopes = alibi_slopes(cfg["H"], cfg["neg"], cfg["pos"])
    layers = range(cfg["L"]) if args.layer == "all" else [int(args.layer)]
    name = os.path.basename(os.path.dirname(os.path.abspath(args.ckpt)))
    for layer in layers:
        d = dump_layer(args.bin, args.ckpt, args.text, layer, args.window)
        title = (f"{name}: layer {layer}, {cfg['attn']}, ALiBi {cfg['neg']}:{cfg['pos']}, "
                 f"RoPE {'on' if cfg['rope'] else 'off'}, window {d['window']}, {d['T']} tokens")
        plot_maps(d, slopes, title, f"{args.out}_layer{layer}.png")
        plot_distance(d, slopes, title, f"{args.out}_layer{layer}_distance.png")
        print(f"wrote {args.out}_layer{layer}.png and {args.out}_layer{layer}_distance.png")


if __name__ == "__main__":
    main()
