"""
Information beyond the window: key recall against distance, for SWAT models of 4 and 2 layers
and a full-attention control.

The argument (Fu et al. 2025, section 2.1). A sliding-window attention layer lets position m
read positions m-w+1 .. m, so one layer moves information at most w-1 positions back. The next
layer reads positions that have already read their own windows, so after L layers position m
can depend on positions down to m - (w-1)*L: the receptive field is 1 + (w-1)*L tokens. With
w = 16 that is 31 tokens for L = 2 and 61 for L = 4, although no single attention score ever
spans more than 16 positions. Whether a trained model actually *uses* this relay is a separate
question, and this script measures it.

The task (data/make_recall.py). 128-byte examples of random lowercase letters with a key marker
and a random key symbol ("#Q", one of 0-9A-Z) somewhere and, d bytes later, the query marker
followed by the same symbol ("?Q"). The letters are incompressible, so the only thing to learn is:
after "?", repeat the symbol that followed "#". Training distances are log-uniform in 2..126;
the test set has 200 examples for each d in TEST_D. The symbol after "?" is predicted at "?",
d-1 positions after the key symbol. One layer reaches w-1 positions back and L layers (w-1)L, so
recall is possible for d <= w inside one window, for w < d <= 1+(w-1)L only if every layer passes
the key on, and impossible beyond.

The metric. Each example is one evaluation chunk (--eval-len 128), so --dump-losses gives the
loss of every byte. The query symbol is predicted with probability exp(-loss); the example counts
as recalled when that probability is > 0.5 (so it is also the argmax). A model that does not know
the key gives it ~1/36, so recall is 0 without information. The mean probability of the correct
symbol is reported too: it shows partial recall.

The models (same size, data, steps and seed; a small Llama-style model, 64 wide, 4 heads):
  swat-L4   window 16, 4 layers   receptive field 1 + 15*4 = 61
  swat-L2   window 16, 2 layers   receptive field 1 + 15*2 = 31
  full-L2   window 128 = T, 2 layers: full causal attention, reaches every distance

How to read recall_vs_distance.png: recall accuracy (top) and mean probability of the correct
symbol (bottom) against the distance d. The grey dashed line is the window w; each SWAT model's
receptive field is a dashed line in its colour. Expected shape: every model recalls at d < w; the
SWAT curves stay up past w and drop to 0 at their receptive field (or before it: the receptive
field is an upper bound, a learned relay may not use all of it); the full-attention control stays
up everywhere.

Why these settings. The key is one symbol because the small models did not learn multi-symbol
keys in the budget (data/make_recall.py lists what was tried); the training distances are
log-uniform so that half of the examples can be solved inside the window, where copying is
learned first. 4-layer SWAT is the slowest to learn (in an exploration run with these settings:
copying inside the window starts at ~2000 steps, at 4000 it recalls about half of the keys at
d = 20..40, at 6000 nearly all up to d = 56), so it gets 8000 steps, and so do the others. Width 64 instead of 128 makes each step ~2.5x cheaper. The whole run
(2 trainings at a time, 1 thread each) took 12m49s on an otherwise idle 2-core machine.

Usage:  /usr/bin/python3 dev/recall.py [--out dev/results/recall] [--jobs 2] [--plots-only]
It resumes: existing data is kept, a model whose log has final_val_loss is not retrained (a run
that was killed starts again from scratch), the evaluation (seconds) is redone. Settings are
remembered in settings.json files: change a setting and the script asks you to delete the
directory rather than mix two settings. --steps N overrides the steps for a smoke test.
"""
import argparse, csv, json, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E, W = 128, 16                                  # example length = training length T; SWAT window
# dense around the window (16) and the two receptive fields (31, 61): d = RF is the last
# distance a model can reach in principle, RF + 1 the first it cannot
TEST_D = [2, 4, 8, 12, 15, 16, 17, 20, 24, 28, 30, 31, 32, 36, 40, 44, 48, 52, 56, 60, 61, 62, 64, 72, 80,
          96, 112, 126]
# 128000 training examples = 8000 steps x 16: every training sequence is a fresh example
DATA_ARGS = ["--length", str(E), "--key", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "--train-examples", "128000",
             "--train-dist", "loguniform", "--test-examples", "200", "--test-d", ",".join(map(str, TEST_D)),
             "--seed", "1"]
# name, layers, window, plot colour
MODELS = [("swat-L4", 4, W, "#d62728"), ("swat-L2", 2, W, "#1f77b4"), ("full-L2", 2, E, "#2ca02c")]
MODEL_ARGS = ["--dim", "64", "--heads", "4", "--ffn", "176", "--attn", "sigmoid", "--alibi", "2:2", "--rope", "on"]
TRAIN_ARGS = ["--steps", "8000", "--warmup", "100", "--lr", "3e-3", "--batch", "16", "--seq", str(E),
              "--seed", "1", "--val-every", "500", "--sample-every", "0"]


def say(msg):
    sys.stdout.write(msg + "\n")  # one write per line: the trainings report from two threads
    sys.stdout.flush()


def receptive_field(layers, window):
    return 1 + (window - 1) * layers


def call(cmd):
    """Run a trainer command; OMP_WAIT_POLICY=passive so idle OpenMP threads don't spin on a
    shared machine. Stops the script, loudly, if the command fails."""
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {p.returncode}):\n{p.stderr.strip()[-2000:]}")


def final_val_loss(rdir):
    path = os.path.join(rdir, "log.txt")
    if os.path.exists(path):
        for line in open(path):
            if line.startswith("final_val_loss"):
                return float(line.split()[1])
    return None


def load_meta(ddir):
    with open(os.path.join(ddir, "meta.json")) as f:
        return dict(json.load(f), dir=ddir)


def same_settings(path, settings):
    """Remember the settings a directory was made with (path = its settings.json); refuse to mix
    results of two settings in one directory."""
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) != settings:
                sys.exit(f"error: {os.path.dirname(path)} was made with other settings; delete it to redo it")
    else:
        with open(path, "w") as f:
            json.dump(settings, f, indent=1)


def make_data(ddir):
    os.makedirs(ddir, exist_ok=True)
    same_settings(os.path.join(ddir, "settings.json"), DATA_ARGS)
    if os.path.exists(os.path.join(ddir, "meta.json")):  # written last, so the data is complete
        return
    cmd = [sys.executable, os.path.join(REPO, "data", "make_recall.py"), "--out", ddir] + DATA_ARGS
    subprocess.run(cmd, check=True)


def train(model, ddir, out, threads, train_args):
    """Train one model unless its log already ends with final_val_loss. The flags that matter
    for the result go to settings.json; --threads does not change the result much, so it is not
    part of them."""
    name, layers, window, _ = model
    rdir = os.path.join(out, name)
    flags = ["--layers", str(layers), "--window", str(window)] + MODEL_ARGS + train_args
    os.makedirs(rdir, exist_ok=True)
    same_settings(os.path.join(rdir, "settings.json"), flags)
    if final_val_loss(rdir) is not None:
        say(f"[{name}] already trained")
        return
    cmd = ["./train_swat", "--train", os.path.join(ddir, "train.bin"), "--val", os.path.join(ddir, "val.bin"),
           "--out", rdir, "--threads", str(threads)] + flags
    say(f"[{name}] training: {layers} layers, window {window}")
    t0 = time.time()
    call(cmd)  # progress goes to rdir/log.txt
    say(f"[{name}] done in {time.time() - t0:.0f} s, final val loss {final_val_loss(rdir):.4f}")


def recall(rdir, meta, threads):
    """Per test distance: (examples, recall accuracy, mean probability of the correct query
    symbols). test.bin holds the examples of each distance in turn, one example per chunk of E
    bytes. Loss index i of a chunk is the loss of predicting byte i+1 from bytes 0..i, so the K
    query symbols at q+1..q+K (q = position of '?') are loss indices q..q+K-1."""
    shard, dump = os.path.join(meta["dir"], "test.bin"), os.path.join(rdir, "losses.tmp")
    call(["./train_swat", "--init", os.path.join(rdir, "model.ckpt"), "--eval", shard, "--eval-len", str(E),
          "--dump-losses", dump, "--threads", str(threads)])   # eval window: the model's own
    loss = np.fromfile(dump, dtype="<f4").reshape(-1, E)
    os.remove(dump)
    n, K, per_d = loss.shape[0], meta["key_len"], meta["test_examples"]
    assert n == per_d * len(meta["test_d"]), "one chunk per test example"
    x = np.fromfile(shard, dtype="<u2")[512:][: n * E].reshape(n, E)   # 512 uint16 = the header
    q = np.argmax(x == ord("?"), axis=1)
    assert (x[np.arange(n), q] == ord("?")).all(), "every test example has a query marker"
    prob = np.exp(-loss[np.arange(n)[:, None], q[:, None] + np.arange(K)])
    hit = (prob > 0.5).all(axis=1)
    return {d: (per_d, float(hit[i * per_d:(i + 1) * per_d].mean()), float(prob[i * per_d:(i + 1) * per_d].mean()))
            for i, d in enumerate(meta["test_d"])}


def key_text(meta):
    """('one symbol from 0-9A-Z', 1/36): the key in words and the chance of guessing all of it."""
    def ranges(a):  # "0123456789ABC" -> "0-9A-C"
        runs, start = [], 0
        for i in range(1, len(a) + 1):
            if i == len(a) or ord(a[i]) != ord(a[i - 1]) + 1:
                runs.append(a[start] if i - start == 1 else f"{a[start]}-{a[i - 1]}")
                start = i
        return "".join(runs)
    alph = meta["key_alphabets"]
    chance = float(np.prod([1 / len(a) for a in alph]))
    if len(alph) == 1:
        return f"one symbol from {ranges(alph[0])}", chance
    return f"{len(alph)} symbols from {', '.join(ranges(a) for a in alph)}", chance


def write_tables(rows, meta, out):
    with open(os.path.join(out, "recall.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "layers", "window", "receptive_field", "d", "examples", "recall", "mean_symbol_prob"])
        for r in rows:
            w.writerow([r["model"], r["layers"], r["window"], r["rf"], r["d"], r["n"], f"{r['acc']:.4f}", f"{r['p']:.4f}"])
    names = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], r["d"]): r for r in rows}
    ds = sorted({r["d"] for r in rows})
    first = {m: cell[m, ds[0]] for m in names}
    head = [f"{m} (L={first[m]['layers']}, w={first[m]['window']}"
            + (f", RF={first[m]['rf']})" if first[m]["window"] < E else ", full)") for m in names]
    key, chance = key_text(meta)
    md = [f"Key recall against the distance d (key: {key}). Each cell: the fraction of the "
          f"{first[names[0]]['n']} test examples recalled (every query symbol got probability > 0.5), and in "
          f"brackets the mean probability of the correct symbols. A model that does not know the key "
          f"recalls nothing and gives the correct symbol a probability of about "
          f"{np.mean([1 / len(a) for a in meta['key_alphabets']]):.3f}; guessing the whole key right has "
          f"chance {chance:.3g}. RF = 1 + (w-1)L, the receptive field.", "",
          "| d | " + " | ".join(head) + " |", "|--:|" + "--:|" * len(names)]
    for d in ds:
        md.append(f"| {d} | " + " | ".join(f"{cell[m, d]['acc']:.2f} ({cell[m, d]['p']:.2f})" for m in names) + " |")
    md += ["", "Models: " + " ".join(MODEL_ARGS) + "; training: " + " ".join(TRAIN_ARGS[:8]) + f" --seq {E} "
           "(one example per sequence). Produced by `/usr/bin/python3 dev/recall.py`; the settings are at the "
           "top of that file.", ""]
    with open(os.path.join(out, "recall.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


def plot(rows, meta, out):
    """Top: recall accuracy against d. Bottom: mean probability of the correct key symbols, which
    also shows partial recall. Dashed: the window (grey) and each SWAT model's receptive field."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bot) = plt.subplots(2, 1, figsize=(9.5, 7.5), sharex=True, gridspec_kw=dict(height_ratios=[3, 2]))
    colors = {m[0]: m[3] for m in MODELS}
    key, chance = key_text(meta)
    for ax in (top, bot):
        ax.axvline(W, color="grey", ls="--", lw=1)
        ax.grid(alpha=0.3)
    top.annotate(f"window\nw = {W}", (W, 0.3), xytext=(4, 0), textcoords="offset points", fontsize=8, color="grey")
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = sorted((r for r in rows if r["model"] == name), key=lambda r: r["d"])
        c, r0 = colors.get(name, "black"), rs[0]
        kind = f"window {r0['window']}" if r0["window"] < E else "full attention"
        ds = [r["d"] for r in rs]
        top.plot(ds, [r["acc"] for r in rs], marker="o", ms=4, color=c, lw=2, label=f"{name}: {r0['layers']} layers, {kind}")
        bot.plot(ds, [r["p"] for r in rs], marker="o", ms=3, color=c, lw=1.5)
        if r0["window"] < E:  # full attention reaches every distance inside an example
            for ax in (top, bot):
                ax.axvline(r0["rf"], color=c, ls="--", lw=1)
            top.annotate(f"1+(w-1)L = {r0['rf']}\n(L = {r0['layers']})", (r0["rf"], 0.3), xytext=(9, 0),
                         textcoords="offset points", fontsize=8, color=c)
    bot.axhline(np.mean([1 / len(a) for a in meta["key_alphabets"]]), color="black", lw=0.8, ls=":")
    top.set(ylim=(-0.03, 1.05), ylabel="recall accuracy\n(p > 0.5 for every key symbol)",
            title=f"Recall of a key ({key}) d bytes back; window w = {W}, {rows[0]['n']} examples per d")
    bot.set(ylim=(0, 1.02), xlim=(0, E), ylabel="mean p(correct symbol)\n(dotted: chance)",
            xlabel="distance d from the key marker '#' to the query marker '?' (bytes)")
    top.legend(loc="center right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "recall_vs_distance.png"), dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    ap.add_argument("--out", default="dev/results/recall")
    ap.add_argument("--jobs", type=int, default=2, help="trainings run in parallel (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads per training (default 1)")
    ap.add_argument("--steps", type=int, help="override the training steps (a smoke test: the results mean little)")
    ap.add_argument("--plots-only", action="store_true", help="rebuild recall.md and the plot from recall.csv")
    args = ap.parse_args()
    os.chdir(REPO)
    out, t0 = args.out, time.time()
    ddir = os.path.join(out, "data")
    if args.plots_only:
        with open(os.path.join(out, "recall.csv")) as f:
            rows = [dict(model=r["model"], layers=int(r["layers"]), window=int(r["window"]), rf=int(r["receptive_field"]),
                         d=int(r["d"]), n=int(r["examples"]), acc=float(r["recall"]), p=float(r["mean_symbol_prob"]))
                    for r in csv.DictReader(f)]
        meta = load_meta(out)   # the copy of the data's meta.json (the shards are not committed)
    else:
        if not os.path.exists("train_swat"):
            sys.exit("error: ./train_swat not found: build it with `make train_swat`")
        os.makedirs(out, exist_ok=True)
        make_data(ddir)
        say(f"data ready after {time.time() - t0:.0f} s")
        with ThreadPoolExecutor(args.jobs) as ex:  # the threads only wait on trainer processes
            train_args = list(TRAIN_ARGS)
            if args.steps is not None:   # TRAIN_ARGS starts with --steps N --warmup N
                train_args[1], train_args[3] = str(args.steps), str(min(int(train_args[3]), args.steps // 10))
            list(ex.map(lambda m: train(m, ddir, out, args.threads, train_args), MODELS))
        t1, meta = time.time(), load_meta(ddir)
        rows = []
        for name, layers, window, _ in MODELS:
            for d, (n, acc, p) in recall(os.path.join(out, name), meta, args.threads * args.jobs).items():
                rows.append(dict(model=name, layers=layers, window=window, rf=receptive_field(layers, window),
                                 d=d, n=n, acc=acc, p=p))
        say(f"evaluation: {time.time() - t1:.0f} s")
        with open(os.path.join(out, "meta.json"), "w") as f:   # for --plots-only without the shards
            json.dump({k: v for k, v in meta.items() if k != "dir"}, f, indent=1)
    write_tables(rows, meta, out)
    plot(rows, meta, out)
    print(f"wrote {out}/recall.csv, recall.md, recall_vs_distance.png; wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
