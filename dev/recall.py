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
receptive field is a dashed line in its colour. With several seeds each line is the mean over
the seeds and the shaded band spans the lowest to the highest seed. Expected shape: every model
recalls at d < w; the SWAT curves stay up past w and drop to 0 at their receptive field (or
before it: the receptive field is an upper bound, a learned relay may not use all of it); the
full-attention control stays up everywhere.

Why these settings. The key is one symbol because the small models did not learn multi-symbol
keys in the budget (data/make_recall.py lists what was tried); the training distances are
log-uniform so that half of the examples can be solved inside the window, where copying is
learned first. 4-layer SWAT is the slowest to learn (in an exploration run with these settings:
copying inside the window starts at ~2000 steps, at 4000 it recalls about half of the keys at
d = 20..40, at 6000 nearly all up to d = 56), so it gets 8000 steps, and so do the others. Width
64 instead of 128 makes each step ~2.5x cheaper. One seed (2 trainings at a time, 1 thread each)
took 12m49s on an otherwise idle 2-core machine.

Seeds. --seeds 1,2,3 trains every model once per seed (the trainer's --seed: initialisation and
data order; the data and the test set stay the same, so the seeds are compared on the same
examples) and reports the mean over the seeds and their spread (standard deviation, lowest and
highest). With one seed the tables say so: a detail of one trained model is not a finding.

Usage:  /usr/bin/python3 dev/recall.py [--seeds 1,2,3] [--out DIR] [--jobs 2] [--threads 1]
        /usr/bin/python3 dev/recall.py --plots-only [--out dev/results/recall]
A reproduction goes to a fresh directory, dev/results/recall-YYYYmmdd-HHMMSS, unless --out is
given; its shards and checkpoints are kept out of git by a .gitignore of its own. At the end the
new numbers are printed next to the committed ones (--compare, default dev/results/recall) and
written to comparison.md. With --out an existing directory it resumes: the data is kept, a model
whose log has final_val_loss and whose model.ckpt is there is not retrained, one with only a
periodic checkpoint is resumed, and one whose checkpoint is missing (checkpoints are not
committed) is trained again; the evaluation (seconds) is redone. Seed 1's runs are named after
the model (swat-L4, as in the committed results), the others swat-L4-seed2 and so on. Settings
are remembered in settings.json files: change a setting and the script asks you to delete the
directory rather than mix two settings. --mode tiny (a few steps on a few examples: the numbers
mean nothing) runs the whole pipeline in a minute, for dev/test_repro.sh; --steps N overrides
the steps.
"""
import argparse, csv, json, math, os, shlex, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dev/runs.py, from any working directory
from runs import (REPO, Failure, Running, call as call_trainer, fresh_dir, other_settings, parse_log, say,
                  train_command, write_json)

COMMITTED = os.path.join("dev", "results", "recall")   # the committed results, the default reference
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
# --mode tiny: the same pipeline on 1600 training examples, 8 test examples per distance and 40
# steps, for dev/test_repro.sh (the models learn little: the numbers mean nothing)
TINY = dict(data={"--train-examples": "1600", "--test-examples": "8"}, extra_data=["--val-examples", "48"],
            train={"--steps": "40", "--warmup": "4", "--val-every": "20"})


def receptive_field(layers, window):
    return 1 + (window - 1) * layers


def with_values(args, values):
    """A copy of the flag list args with the values of some flags replaced."""
    out = list(args)
    for flag, v in values.items():
        out[out.index(flag) + 1] = str(v)
    return out


def data_args(mode):
    return DATA_ARGS if mode == "full" else with_values(DATA_ARGS, TINY["data"]) + TINY["extra_data"]


def train_args(mode, seed, steps=None):
    """The trainer flags of one seed; the full mode's seed 1 gives exactly TRAIN_ARGS (the flags
    of the committed results, compared with their settings.json)."""
    args = TRAIN_ARGS if mode == "full" else with_values(TRAIN_ARGS, TINY["train"])
    args = with_values(args, {"--seed": seed})
    if steps is not None:
        warmup = min(int(args[args.index("--warmup") + 1]), max(1, steps // 10))
        args = with_values(args, {"--steps": steps, "--warmup": warmup})
    return args


def run_name(model_name, seed):
    """Seed 1 keeps the model's name (the layout of the committed results)."""
    return model_name if seed == 1 else f"{model_name}-seed{seed}"


class Interrupted(Failure):
    """A trainer that saved itself and stopped early: it got a signal (Ctrl-C)."""


STOP = threading.Event()   # set when one job failed or on Ctrl-C: no new training starts
RUNNING = Running()   # the trainer processes of the running jobs


def call(cmd):
    """Run a trainer command, its output discarded. Raises Failure, with the trainer's last words,
    if the command fails; main() then stops the others and says how to continue."""
    rc, _, err = call_trainer(cmd, want_stdout=False, running=RUNNING)
    if rc != 0:
        raise Failure(f"{' '.join(cmd)} failed (exit {rc}):\n{err.strip()[-2000:]}")


def stop_all():
    """No new trainings; the running ones get SIGINT, save their checkpoint and exit, so the
    same command continues them later."""
    STOP.set()
    RUNNING.interrupt()


def load_meta(ddir):
    with open(os.path.join(ddir, "meta.json")) as f:
        return dict(json.load(f), dir=ddir)


def same_settings(path, settings, check_only=False):
    """Remember the settings a directory was made with (path = its settings.json); refuse to mix
    results of two settings in one directory."""
    if other_settings(path, settings):
        sys.exit(f"error: {os.path.dirname(path)} was made with other settings; delete it to redo it "
                 "(or give another --out)")
    if not check_only and not os.path.exists(path):
        write_json(path, settings)


def make_data(ddir, mode):
    os.makedirs(ddir, exist_ok=True)
    same_settings(os.path.join(ddir, "settings.json"), data_args(mode))
    if os.path.exists(os.path.join(ddir, "meta.json")):  # written last, so the data is complete
        return
    cmd = [sys.executable, os.path.join(REPO, "data", "make_recall.py"), "--out", ddir] + data_args(mode)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def model_flags(model, targs):
    return ["--layers", str(model[1]), "--window", str(model[2])] + MODEL_ARGS + targs


def train(model, seed, ddir, out, threads, targs, save_every):
    """Train one model for one seed unless its log ends with final_val_loss and its checkpoint
    is there. The flags that matter for the result go to settings.json; --threads and
    --save-every do not change the result, so they are not part of them."""
    name, layers, window, _ = model
    rname = run_name(name, seed)
    rdir = os.path.join(out, rname)
    flags = model_flags(model, targs)
    os.makedirs(rdir, exist_ok=True)
    same_settings(os.path.join(rdir, "settings.json"), flags)
    log, ckpt = os.path.join(rdir, "log.txt"), os.path.join(rdir, "model.ckpt")
    done = parse_log(log)["final"] is not None
    if done and os.path.exists(ckpt):
        say(f"[{rname}] already trained")
        return
    if STOP.is_set():
        return
    if done:   # but no checkpoint: trained anew below
        say(f"[{rname}] its log says trained but {ckpt} is missing (checkpoints are not committed): "
            "training it again")
    data = ["--train", os.path.join(ddir, "train.bin"), "--val", os.path.join(ddir, "val.bin")]
    # a training stopped after a periodic checkpoint continues from it
    cmd, resuming = train_command("./train_swat", rdir, data + flags, data,
                                  ["--threads", str(threads), "--save-every", str(save_every)])
    if resuming:
        say(f"[{rname}] resuming from {ckpt}")
    else:
        if os.path.exists(log):   # the log of a run that cannot be continued: start clean
            os.remove(log)
        say(f"[{rname}] training: {layers} layers, window {window}, seed {seed}")
    t0 = time.time()
    call(cmd)  # progress goes to rdir/log.txt
    final = parse_log(log)["final"]
    if final is None:
        if STOP.is_set():   # stopped by stop_all(): it saved its checkpoint
            say(f"[{rname}] stopped; its checkpoint is saved")
            return
        raise Interrupted(f"{rname} stopped at step {parse_log(log)['last_step']} (a signal?)")
    say(f"[{rname}] done in {time.time() - t0:.0f} s, final val loss {final:.4f}")


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


def checkpoint_version(path):
    """Field 1 of the checkpoint header (doc/SPEC.md section 8): 1 = ALiBi slopes 2^-k,
    2 = 2^(-8k/H). Models of the same flags but other versions are different models."""
    with open(path, "rb") as f:
        return int(np.frombuffer(f.read(8), dtype="<i4")[1])


def aggregate(per_seed):
    """Rows of one (model, seed, d) each -> rows of one (model, d) each: the mean over the seeds,
    the standard deviation across them (0 for one seed) and the lowest and highest seed."""
    groups = {}
    for r in per_seed:
        groups.setdefault((r["model"], r["d"]), []).append(r)
    rows = []
    for (model, d), rs in groups.items():
        acc, p = np.array([r["acc"] for r in rs]), np.array([r["p"] for r in rs])
        sd = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0)
        rows.append(dict({k: rs[0][k] for k in ("model", "layers", "window", "rf", "d", "n")},
                         seeds=" ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"])),
                         acc=float(acc.mean()), acc_sd=sd(acc), acc_min=float(acc.min()), acc_max=float(acc.max()),
                         p=float(p.mean()), p_sd=sd(p)))
    return rows


def read_table(path):
    """recall.csv -> rows. The columns of seeds and spread are optional: the committed results of
    one seed have none."""
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            acc = float(r["recall"])
            row = dict(model=r["model"], layers=int(r["layers"]), window=int(r["window"]), rf=int(r["receptive_field"]),
                       d=int(r["d"]), n=int(r["examples"]), acc=acc, p=float(r["mean_symbol_prob"]),
                       seeds=r.get("seeds") or "", acc_sd=0.0, acc_min=acc, acc_max=acc, p_sd=0.0)
            for k, col in (("acc_sd", "recall_sd"), ("acc_min", "recall_min"), ("acc_max", "recall_max"),
                           ("p_sd", "mean_symbol_prob_sd")):
                if r.get(col):
                    row[k] = float(r[col])
            rows.append(row)
    return rows


def n_seeds(rows):
    return max(len(r["seeds"].split()) for r in rows) if rows and rows[0]["seeds"] else 1


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


def seeds_text(rows):
    if n_seeds(rows) == 1:
        seed = rows[0]["seeds"] or "1"
        return (f"One training seed ({seed}): the spread between seeds is not measured, so a detail of these "
                f"numbers may be a property of this one trained model; `--seeds 1,2,3` measures it.")
    return (f"Mean over {n_seeds(rows)} training seeds ({rows[0]['seeds'].replace(' ', ', ')}; same data and test "
            f"set) ± the standard deviation across the seeds; recall_min and recall_max in recall.csv give the "
            f"lowest and highest seed.")


def write_tables(rows, per_seed, meta, out, settings, command):
    """recall.csv (mean and spread per model and d; its first columns are those of the one-seed
    table), recall_seeds.csv (one row per seed) and recall.md."""
    multi = n_seeds(rows) > 1
    with open(os.path.join(out, "recall.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "layers", "window", "receptive_field", "d", "examples", "recall", "mean_symbol_prob",
                    "seeds", "recall_sd", "recall_min", "recall_max", "mean_symbol_prob_sd"])
        for r in rows:
            w.writerow([r["model"], r["layers"], r["window"], r["rf"], r["d"], r["n"], f"{r['acc']:.4f}", f"{r['p']:.4f}",
                        r["seeds"], f"{r['acc_sd']:.4f}", f"{r['acc_min']:.4f}", f"{r['acc_max']:.4f}", f"{r['p_sd']:.4f}"])
    if per_seed:
        with open(os.path.join(out, "recall_seeds.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["model", "seed", "d", "examples", "recall", "mean_symbol_prob"])
            for r in per_seed:
                w.writerow([r["model"], r["seed"], r["d"], r["n"], f"{r['acc']:.4f}", f"{r['p']:.4f}"])
    names = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], r["d"]): r for r in rows}
    ds = sorted({r["d"] for r in rows})
    first = {m: cell[m, ds[0]] for m in names}
    head = [f"{m} (L={first[m]['layers']}, w={first[m]['window']}"
            + (f", RF={first[m]['rf']})" if first[m]["window"] < E else ", full)") for m in names]
    key, chance = key_text(meta)

    def show(r):
        return (f"{r['acc']:.2f} ±{r['acc_sd']:.2f} ({r['p']:.2f})" if multi else f"{r['acc']:.2f} ({r['p']:.2f})")
    md = [f"Key recall against the distance d (key: {key}). Each cell: the fraction of the "
          f"{first[names[0]]['n']} test examples recalled (every query symbol got probability > 0.5), and in "
          f"brackets the mean probability of the correct symbols. A model that does not know the key "
          f"recalls nothing and gives the correct symbol a probability of about "
          f"{np.mean([1 / len(a) for a in meta['key_alphabets']]):.3f}; guessing the whole key right has "
          f"chance {chance:.3g}. RF = 1 + (w-1)L, the receptive field.", "", seeds_text(rows), "",
          "| d | " + " | ".join(head) + " |", "|--:|" + "--:|" * len(names)]
    for d in ds:
        md.append(f"| {d} | " + " | ".join(show(cell[m, d]) for m in names) + " |")
    md += ["", "Models: " + " ".join(MODEL_ARGS) + "; training: " + " ".join(settings[:8]) + f" --seq {E} "
           f"(one example per sequence). Produced by `{command}`; the settings are at the top of dev/recall.py.", ""]
    with open(os.path.join(out, "recall.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


def compare(ref, ref_dir, rows, out, ref_flags, new_flags):
    """The committed numbers (ref) next to the new ones in one table, printed and written to
    comparison.md: recall at each distance and model; * marks a difference of 0.10 or more."""
    multi = n_seeds(rows) > 1
    names = list(dict.fromkeys(r["model"] for r in rows))
    new = {(r["model"], r["d"]): r for r in rows}
    old = {(r["model"], r["d"]): r for r in ref}
    ds = sorted({d for (_, d) in new} | {d for (_, d) in old})
    ref_seeds = n_seeds(ref)
    md = [f"Recall accuracy: the reference `{ref_dir}` ({ref_seeds} seed{'s' if ref_seeds > 1 else ''}) "
          f"next to this run `{out}` ({n_seeds(rows)} seed{'s' if multi else ''}"
          + ("; mean ± standard deviation across the seeds" if multi else "") + "). "
          "* marks a difference of 0.10 or more; – a distance one of them did not test.", ""]
    for name in names:
        if ref_flags.get(name) is None:
            md.append(f"- {name}: the reference has no settings.json; its settings are not known.")
        elif ref_flags[name] != new_flags[name]:
            diff = [f"{a} {b} (reference {c})" for a, b, c in zip(new_flags[name][::2], new_flags[name][1::2],
                                                                   ref_flags[name][1::2])
                    if len(ref_flags[name]) == len(new_flags[name]) and b != c]
            md.append(f"- {name}: made with other settings than the reference"
                      + (f": {', '.join(diff)}" if diff else "") + ".")
    ref_version, new_version = ref_flags.get("checkpoint_version"), read_version(out)
    md.append(f"- Checkpoint version: reference {ref_version}, new {new_version} (version 1 has the ALiBi slopes "
              "2^-k, version 2 2^(-8k/H): with the same flags they are different models; results committed "
              "before version 2 came with the trainer do not record it and are version 1).")
    md += ["", "| d | " + " | ".join(f"{m} reference | {m} new" for m in names) + " |",
           "|--:|" + "--:|--:|" * len(names)]
    big = 0
    for d in ds:
        cells = []
        for m in names:
            o, n = old.get((m, d)), new.get((m, d))
            cells.append("–" if o is None else f"{o['acc']:.2f}")
            if n is None:
                cells.append("–")
                continue
            flag = o is not None and abs(n["acc"] - o["acc"]) >= 0.10 - 1e-9
            big += flag
            cells.append((f"{n['acc']:.2f} ±{n['acc_sd']:.2f}" if multi else f"{n['acc']:.2f}") + (" *" if flag else ""))
        md.append(f"| {d} | " + " | ".join(cells) + " |")
    md += ["", f"{big} cell{'s' if big != 1 else ''} differ{'s' if big == 1 else ''} by 0.10 or more.", ""]
    text = "\n".join(md)
    with open(os.path.join(out, "comparison.md"), "w") as f:
        f.write(text)
    print(text)


def plot(rows, meta, out):
    """Top: recall accuracy against d. Bottom: mean probability of the correct key symbols, which
    also shows partial recall. Dashed: the window (grey) and each SWAT model's receptive field.
    With several seeds: the mean, and a band from the lowest to the highest seed. Without
    matplotlib it says so and draws nothing (the tables need none)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: no plot: {sys.executable} cannot import matplotlib (sudo apt-get install python3-matplotlib)")
        return False
    fig, (top, bot) = plt.subplots(2, 1, figsize=(9.5, 7.5), sharex=True, gridspec_kw=dict(height_ratios=[3, 2]))
    colors = {m[0]: m[3] for m in MODELS}
    key, chance = key_text(meta)
    seeds = n_seeds(rows)
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
        if seeds > 1:
            top.fill_between(ds, [r["acc_min"] for r in rs], [r["acc_max"] for r in rs], color=c, alpha=0.15, lw=0)
            bot.fill_between(ds, [max(0, r["p"] - r["p_sd"]) for r in rs], [min(1, r["p"] + r["p_sd"]) for r in rs],
                             color=c, alpha=0.15, lw=0)
        if r0["window"] < E:  # full attention reaches every distance inside an example
            for ax in (top, bot):
                ax.axvline(r0["rf"], color=c, ls="--", lw=1)
            top.annotate(f"1+(w-1)L = {r0['rf']}\n(L = {r0['layers']})", (r0["rf"], 0.3), xytext=(9, 0),
                         textcoords="offset points", fontsize=8, color=c)
    bot.axhline(np.mean([1 / len(a) for a in meta["key_alphabets"]]), color="black", lw=0.8, ls=":")
    top.set(ylim=(-0.03, 1.05), ylabel="recall accuracy\n(p > 0.5 for every key symbol)",
            title=f"Recall of a key ({key}) d bytes back; window w = {W}, {rows[0]['n']} examples per d"
                  + (f"\nmean of {seeds} seeds, band: lowest to highest seed" if seeds > 1 else "; one seed"))
    bot.set(ylim=(0, 1.02), xlim=(0, E), ylabel="mean p(correct symbol)\n(dotted: chance"
            + ("; band ± sd)" if seeds > 1 else ")"),
            xlabel="distance d from the key marker '#' to the query marker '?' (bytes)")
    top.legend(loc="center right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "recall_vs_distance.png"), dpi=110)
    plt.close(fig)
    return True


def read_version(out):
    path = os.path.join(out, "checkpoint_version.txt")
    return open(path).read().strip() if os.path.exists(path) else "not recorded"


def read_reference(ref_dir):
    """The reference's table and the flags of its models (None where unknown), read before the
    run writes anything (the reference may be --out itself)."""
    path = os.path.join(ref_dir, "recall.csv")
    if not os.path.exists(path):
        return None, {}
    flags = {}
    for name, *_ in MODELS:
        s = os.path.join(ref_dir, name, "settings.json")
        flags[name] = json.load(open(s)) if os.path.exists(s) else None
    flags["checkpoint_version"] = read_version(ref_dir)
    return read_table(path), flags


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    ap.add_argument("--out", help="results directory (default: a fresh dev/results/recall-YYYYmmdd-HHMMSS; "
                    "an existing one is resumed; with --plots-only the default is dev/results/recall)")
    ap.add_argument("--seeds", default="1", help="comma-separated training seeds (default 1), e.g. 1,2,3")
    ap.add_argument("--mode", choices=["full", "tiny"], default="full",
                    help="tiny: a few steps on a few examples, for tests (default full)")
    ap.add_argument("--jobs", type=int, default=2, help="trainings run in parallel (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads per training (default 1)")
    ap.add_argument("--steps", type=int, help="override the training steps (a smoke test: the results mean little)")
    ap.add_argument("--compare", default=COMMITTED,
                    help=f"results to print next to the new ones (default {COMMITTED}; 'none' for none)")
    ap.add_argument("--plots-only", action="store_true", help="rebuild recall.md and the plot from recall.csv")
    args = ap.parse_args()
    os.chdir(REPO)
    try:
        seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
    except ValueError:
        sys.exit(f"error: --seeds {args.seeds}: give comma-separated integers, e.g. 1,2,3")
    if not seeds or min(seeds) < 0 or args.jobs < 1 or args.threads < 1 or (args.steps is not None and args.steps < 1):
        sys.exit("error: --seeds needs at least one seed >= 0, and --jobs, --threads and --steps must be >= 1")
    t0 = time.time()
    if args.plots_only:
        out = args.out or COMMITTED
        rows = read_table(os.path.join(out, "recall.csv"))
        meta = load_meta(out)   # the copy of the data's meta.json (the shards are not committed)
        settings = TRAIN_ARGS
        s = os.path.join(out, rows[0]["model"], "settings.json")
        if os.path.exists(s):
            settings = json.load(open(s))[len(MODEL_ARGS) + 4:]
        command = "/usr/bin/python3 dev/recall.py" + (f" --seeds {rows[0]['seeds'].replace(' ', ',')}"
                                                      if n_seeds(rows) > 1 else "")
        write_tables(rows, [], meta, out, settings, command)
        drawn = plot(rows, meta, out)
        print(f"wrote {out}/recall.csv, recall.md" + (", recall_vs_distance.png" if drawn else ""))
        return
    if not os.path.exists("train_swat"):
        sys.exit("error: ./train_swat not found: build it with `make train_swat`")
    out = args.out or fresh_dir(os.path.join("dev", "results", "recall"))
    ref, ref_flags = (None, {}) if args.compare == "none" else read_reference(args.compare)
    if args.compare != "none" and ref is None:
        say(f"note: no {args.compare}/recall.csv to compare with")
    if not os.path.exists(out):
        os.makedirs(out)
        with open(os.path.join(out, ".gitignore"), "w") as f:   # the shards and checkpoints stay local
            f.write("# made by dev/recall.py: the shards and checkpoints stay local\ndata/\n*.ckpt\n*.tmp\n")
    resume = shlex.join([sys.executable, "dev/recall.py"] + sys.argv[1:] + ([] if args.out else ["--out", out]))
    say(f"results go to {out}; seeds {','.join(map(str, seeds))}; to continue after a stop: {resume}")
    ddir = os.path.join(out, "data")
    same_settings(os.path.join(ddir, "settings.json"), data_args(args.mode), check_only=True)
    for s in seeds:   # every settings check before any work
        for m in MODELS:
            same_settings(os.path.join(out, run_name(m[0], s), "settings.json"),
                          model_flags(m, train_args(args.mode, s, args.steps)), check_only=True)
    make_data(ddir, args.mode)
    say(f"data ready after {time.time() - t0:.0f} s")
    steps = int(train_args(args.mode, 1, args.steps)[1])
    save_every = max(1, steps // 8)
    ex = ThreadPoolExecutor(args.jobs)   # the threads only wait on trainer processes
    futures = [ex.submit(train, m, s, ddir, out, args.threads, train_args(args.mode, s, args.steps), save_every)
               for s in seeds for m in MODELS]
    try:
        try:
            for f in as_completed(futures):
                f.result()   # the first failure stops the others
        finally:
            if any(not f.done() or f.exception() is not None for f in futures):
                stop_all()
            ex.shutdown(wait=True, cancel_futures=True)   # the stopped trainers save and exit
        t1, meta = time.time(), load_meta(ddir)
        per_seed = []
        for seed in seeds:
            for name, layers, window, _ in MODELS:
                for d, (n, acc, p) in recall(os.path.join(out, run_name(name, seed)), meta,
                                             args.threads * args.jobs).items():
                    per_seed.append(dict(model=name, seed=seed, layers=layers, window=window,
                                         rf=receptive_field(layers, window), d=d, n=n, acc=acc, p=p))
    except (KeyboardInterrupt, Interrupted):
        print(f"\ninterrupted: the trainings saved their checkpoints; to continue: {resume}", file=sys.stderr)
        sys.exit(130)
    except Failure as e:
        sys.exit(f"error: {e}\nthe other trainings saved their checkpoints; once fixed, continue with: {resume}")
    say(f"evaluation: {time.time() - t1:.0f} s")
    with open(os.path.join(out, "meta.json"), "w") as f:   # for --plots-only without the shards
        json.dump({k: v for k, v in meta.items() if k != "dir"}, f, indent=1)
    versions = sorted({checkpoint_version(os.path.join(out, run_name(m[0], s), "model.ckpt"))
                       for s in seeds for m in MODELS})
    with open(os.path.join(out, "checkpoint_version.txt"), "w") as f:   # the checkpoints are not committed
        f.write(" ".join(map(str, versions)) + "\n")
    rows = aggregate(per_seed)
    bad = [r for r in rows if not all(math.isfinite(r[k]) for k in ("acc", "p", "acc_sd", "p_sd"))]
    if bad:
        sys.exit(f"error: non-finite recall for {bad[0]['model']} at d = {bad[0]['d']}")
    command = shlex.join(["/usr/bin/python3", "dev/recall.py"] + (["--seeds", ",".join(map(str, seeds))] if len(seeds) > 1
                         or seeds != [1] else []) + (["--mode", args.mode] if args.mode != "full" else [])
                         + (["--steps", str(args.steps)] if args.steps else []))
    write_tables(rows, per_seed, meta, out, train_args(args.mode, seeds[0], args.steps), command)
    drawn = plot(rows, meta, out)
    print(f"wrote {out}/recall.csv, recall_seeds.csv, recall.md" + (", recall_vs_distance.png" if drawn else "")
          + f"; wall time {time.time() - t0:.0f} s")
    if ref is not None:
        print()
        new_flags = {m[0]: model_flags(m, train_args(args.mode, 1, args.steps)) for m in MODELS}
        compare(ref, args.compare, rows, out, ref_flags, new_flags)


if __name__ == "__main__":
    main()
