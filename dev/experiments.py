"""
SWAT experiments at CPU scale: the paper's ablation (Table 3) and length extrapolation (Table 2).

Fu et al. (2025) train with a sliding window w on sequences much longer than w, with sigmoid
attention, balanced ALiBi and RoPE ("AliRope"). This script trains nine small byte-level models
on the King James Bible with ./train_swat (4 layers, width 144, 6 heads, window w = 32, 4096
tokens per step, same seed, learning rate and number of steps) and evaluates each of them at
E = 32, 128, 512, 2048 tokens (1x .. 64x the window):

  vanilla-softmax-rope / vanilla-sigmoid-rope  window = training length = 32 (the baselines)
  sliding-softmax-rope                         T = 256 (8w), softmax, RoPE
  sliding-sigmoid-alibi-6:0 / 4:2 / 3:3        T = 256, sigmoid, ALiBi only (H:0, 2H/3:H/3, H/2:H/2)
  swat                                         T = 256, sigmoid, ALiBi 3:3 + RoPE (the method)
  swat-T64 / swat-T128                         swat trained on 2x and 4x the window

Each evaluation is run twice: with the training window (W = w, sliding-window inference, linear
in E) and with full attention over the evaluation length (W = E, the classic extrapolation test).
Every E evaluates the same text: K = tokens // E chunks, each its own sequence from position 0.

How to read the outputs (dev/results/<mode>/):
  train_curves.png          validation loss against tokens seen (faint: training loss). It is
                            measured on chunks of the run's own length T, so runs with different T
                            are not strictly comparable here (nor is final_val_loss in the table).
  length_extrapolation.png  left: W = w. In the paper, models trained with a sliding window stay
                            flat or improve as E grows (more context flows through the layers),
                            while vanilla models, which never slid their window in training, get
                            worse. Right: W = E. Every model now attends to more keys, at larger
                            distances, than it was trained with: vanilla RoPE models meet unseen
                            positions; sigmoid heads are not normalised and ALiBi heads with a
                            positive slope reward far keys, so only all-negative ALiBi stays sane.
  swat_train_length.png     swat trained on T = 2w, 4w, 8w, evaluated with W = w.
  results.md / results.csv  the numbers (bold = best in the column).

Usage:  /usr/bin/python3 dev/experiments.py [--mode quick|full|tiny] [--only swat,swat-T64] [--out DIR]
        /usr/bin/python3 dev/experiments.py --mode full --plots-only     (redraws dev/results/full)
        /usr/bin/python3 dev/experiments.py --tokens bpe [--steps N] ... (BPE shards, see below)
--tokens bpe trains the same models on the 4096-piece BPE shards of data/bible/bpe4096 (make them
with `/usr/bin/python3 data/prepare_bpe.py --vocab-size 4096 data/bible/kjv.txt data/bible/bpe4096`),
with --vocab 4096 --bos 1; w, T and E stay in tokens (32 BPE tokens are ~114 bytes). Evaluations
pass --tokenizer, so each is recorded in nats per token and in nats per byte; the tables show both,
the byte runs' only in nats per byte. Results go to dev/results/bpe-<mode>-YYYYmmdd-HHMMSS (the
reference to compare with: dev/results/bpe-steps300, made with --mode full --steps 300). --steps N
overrides the mode's steps per run.
A run goes to a fresh directory, dev/results/<mode>-YYYYmmdd-HHMMSS, unless --out is given, and
never reuses committed results; its checkpoints are kept out of git. At the end the new numbers
are printed next to the committed ones (--compare, default dev/results/full) and written to
comparison.md. With --out an existing directory it resumes: finished runs and cached evaluations
are skipped, an interrupted run continues from its last checkpoint, so after a Ctrl-C run the
command it prints. Every run has one seed (1337): the tables say so. --mode tiny (a few steps,
a few thousand evaluation tokens; the numbers mean nothing) runs the whole pipeline in a minute
or two, with --train/--val for a small text, for dev/test_repro.sh.
"""
import argparse, csv, math, os, shlex, sys, time
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dev/runs.py, from any working directory
from runs import (REPO, Failure, call, fail, fresh_dir, other_settings, parse_log, read_json, train_command,
                  write_json)
try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter
except ImportError:  # the tables need no matplotlib; main() says that the plots were not drawn
    plt = None

TRAIN, VAL = "data/bible/train.bin", "data/bible/val.bin"
# --tokens: bytes (the default; V = 256, no start token) or a 4096-piece BPE vocabulary of the same
# text (data/prepare_bpe.py; id 1 is its start token). Its val.bin encodes exactly the bytes of the
# byte-level val.bin, so an evaluation on the first N tokens covers (about) the first 3.56 N bytes:
# bpe_eval_tokens are chosen to cover the same ~131072 (full) / ~32768 (quick) bytes as the byte
# runs, and the trainer's "nats per byte" (--tokenizer) makes the two comparable.
BPE_DIR = "data/bible/bpe4096"
TOKENS = {
    "bytes": dict(train=TRAIN, val=VAL, flags=[], tokenizer=None, unit="nats/byte"),
    "bpe": dict(train=f"{BPE_DIR}/train.bin", val=f"{BPE_DIR}/val.bin", flags=["--vocab", "4096", "--bos", "1"],
                tokenizer=f"{BPE_DIR}/tokenizer.bin", unit="nats/token"),
}
MODEL = ["--layers", "4", "--dim", "144", "--heads", "6", "--ffn", "384"]
WINDOW, TOKENS_PER_STEP, SEED = 32, 4096, 1337
EVAL_LENS = [32, 128, 512, 2048]                      # 1x, 4x, 16x, 64x the window
# Time on an idle 2-core machine: a step of 4096 tokens takes ~0.29 s whatever T is, so quick is
# ~8 min (9 x 120 steps + evaluations) and full ~75-80 min. Other jobs on the cores slow it down;
# quick keeps a margin for that (20 minutes is its promise).
# tiny is for dev/test_repro.sh: the whole pipeline in a minute or two, numbers that mean nothing.
MODES = {
    "quick": dict(steps=120, warmup=20, eval_tokens=32768, bpe_eval_tokens=8192),
    "full": dict(steps=1500, warmup=40, eval_tokens=131072, bpe_eval_tokens=36864),
    "tiny": dict(steps=6, warmup=2, eval_tokens=2048, bpe_eval_tokens=2048, val_every=3),
}
COMMITTED = os.path.join("dev", "results", "full")  # the committed results: the default reference
RESUME_HINT = None  # the command that continues this invocation, for the interrupt message
UNIT = "nats/byte"  # the unit of eval_loss: nats per token, which is per byte for --tokens bytes
DEFAULT_STEPS = {m: v["steps"] for m, v in MODES.items()}  # before --steps changes one
# name, attention, ALiBi NEG:POS, RoPE, training length T
RUNS = [
    ("vanilla-softmax-rope", "softmax", "0:0", "on", 32),
    ("vanilla-sigmoid-rope", "sigmoid", "0:0", "on", 32),
    ("sliding-softmax-rope", "softmax", "0:0", "on", 256),
    ("sliding-sigmoid-alibi-6:0", "sigmoid", "6:0", "off", 256),
    ("sliding-sigmoid-alibi-4:2", "sigmoid", "4:2", "off", 256),
    ("sliding-sigmoid-alibi-3:3", "sigmoid", "3:3", "off", 256),
    ("swat", "sigmoid", "3:3", "on", 256),
    ("swat-T64", "sigmoid", "3:3", "on", 64),
    ("swat-T128", "sigmoid", "3:3", "on", 128),
]
COLORS = dict(zip([r[0] for r in RUNS], ["#1f77b4", "#17becf", "#ff7f0e", "#8c564b", "#e377c2",
                                         "#7f7f7f", "#d62728", "#2ca02c", "#9467bd"]))


def run_dir(out, run):
    return os.path.join(out, "runs", run[0].replace(":", "_"))  # ':' is not allowed in Windows paths


def train_args(run, mode, data=(TRAIN, VAL), tokens="bytes"):
    """The flags of a new training, also kept in run.json (a resumed run must have the same)."""
    name, attn, alibi, rope, T = run
    steps = MODES[mode]["steps"]
    return ["--train", data[0], "--val", data[1], *TOKENS[tokens]["flags"], "--steps", str(steps), "--warmup", str(MODES[mode]["warmup"]),
            "--batch", str(TOKENS_PER_STEP // T), "--seq", str(T), "--window", str(WINDOW), *MODEL,
            "--attn", attn, "--alibi", alibi, "--rope", rope, "--seed", str(SEED)]


def periodic_args(run, mode, threads):
    """Flags allowed with --resume too. K = 8192 // T: every run validates on ~8192 tokens."""
    steps = MODES[mode]["steps"]
    return ["--val-every", str(MODES[mode].get("val_every", max(1, steps // 20))), "--val-chunks", str(8192 // run[4]),
            "--sample-every", "0", "--save-every", str(max(1, steps // 5)), "--threads", str(threads)]


def train(run, mode, rdir, args):
    """Train one run to completion: skip it if done, resume it if it has a checkpoint."""
    log, ckpt = os.path.join(rdir, "log.txt"), os.path.join(rdir, "model.ckpt")
    diverged = os.path.join(rdir, "diverged.txt")
    targs = train_args(run, mode, (args.train, args.val), args.tokens)
    if other_settings(os.path.join(rdir, "run.json"), targs):  # never mix two settings (or modes) in one run
        fail(f"{rdir} was started with other settings; delete it to retrain (or give another --out)")
    if parse_log(log)["final"] is not None or os.path.exists(diverged):
        return
    os.makedirs(rdir, exist_ok=True)
    write_json(os.path.join(rdir, "run.json"), targs)
    # decoded samples; the tokenizer is not in run.json (a file, not a setting)
    tok = ["--tokenizer", TOKENS[args.tokens]["tokenizer"]] if TOKENS[args.tokens]["tokenizer"] else []
    cmd, resuming = train_command(args.bin, rdir, targs + tok, ["--train", args.train, "--val", args.val] + tok,
                                  periodic_args(run, mode, args.threads))
    if resuming:
        print(f"[{run[0]}] resuming from {ckpt}", flush=True)
    else:
        if os.path.exists(log):  # a log without a checkpoint cannot be continued: start clean
            os.remove(log)
        print(f"[{run[0]}] training: T={run[4]} attn={run[1]} alibi={run[2]} rope={run[3]}", flush=True)
    t0 = time.time()
    rc, _, err = call(cmd, want_stdout=False)
    if rc != 0 and "went non-finite" in err:
        # Divergence is a result (the paper's vanilla sigmoid model diverges), not a crash:
        # record it so the table shows it and re-runs don't retrain the run.
        with open(diverged, "w") as f:
            f.write(err.strip().splitlines()[-1] + "\n")
        print(f"[{run[0]}] DIVERGED: {err.strip().splitlines()[-1]}", flush=True)
        return
    if rc != 0:
        fail(f"training {run[0]} failed (exit {rc})", cmd, err)
    if parse_log(log)["final"] is None:  # the trainer was stopped by a signal and saved itself
        fail(f"{run[0]} stopped before its last step (interrupted?); to continue: {RESUME_HINT}")
    print(f"[{run[0]}] done in {time.time() - t0:.0f} s, final val loss {parse_log(log)['final']:.4f}",
          flush=True)


def evaluate(run, rdir, E, W, tokens, args):
    """Eval loss of the run's checkpoint at length E with window W, cached in evals.json. With a
    tokenizer (--tokens bpe) also the trainer's nats per byte of the same predictions."""
    path, key = os.path.join(rdir, "evals.json"), f"E={E},W={W}"
    cache = read_json(path, {})
    tok = TOKENS[args.tokens]["tokenizer"]
    if key in cache and cache[key].get("chunks") == tokens // E and (tok is None or "nats_per_byte" in cache[key]):
        return cache[key]["loss"]  # an evaluation of other tokens is redone
    ckpt = os.path.join(rdir, "model.ckpt")
    if not os.path.exists(ckpt):
        fail(f"{ckpt} is missing: cannot evaluate {key} (delete {rdir} to retrain the run)")
    cmd = [args.bin, "--init", ckpt, "--eval", args.val, "--eval-len", str(E), "--eval-window", str(W),
           "--eval-chunks", str(tokens // E), "--threads", str(args.threads)] + (["--tokenizer", tok] if tok else [])
    t0 = time.time()
    rc, out, err = call(cmd, want_stdout=True)
    lines = out.strip().splitlines()
    last = lines[-1].split() if lines else []
    if rc != 0 or len(last) != 2 or last[0] != "eval_loss":
        fail(f"evaluating {run[0]} at {key} failed (exit {rc})", cmd, err + out)
    entry = dict(loss=float(last[1]), chunks=tokens // E)
    if tok:  # "nats per byte: X (N predicted tokens, B bytes of text; R bytes per token)"
        npb = [l for l in lines if l.startswith("nats per byte:")]
        try:
            p = npb[-1].split()
            entry.update(nats_per_byte=float(p[3]), predicted_tokens=int(p[4].lstrip("(")),
                         bytes=int(p[7]))
        except (IndexError, ValueError):
            fail(f"evaluating {run[0]} at {key}: no 'nats per byte: X (N predicted tokens, B bytes ...)' line",
                 cmd, err + out)
    cache[key] = entry
    write_json(path, cache)
    extra = f", {entry['nats_per_byte']:.4f} nats/byte" if tok else ""
    print(f"[{run[0]}] eval E={E:4d} W={W:4d}: {float(last[1]):.4f}{extra}  ({time.time() - t0:.1f} s)", flush=True)
    return float(last[1])


def collect(run, rdir):
    """Everything the table and plots need about one run, from its files only (no trainer)."""
    log = parse_log(os.path.join(rdir, "log.txt"))
    evals = read_json(os.path.join(rdir, "evals.json"), {})
    div = os.path.join(rdir, "diverged.txt")
    r = dict(name=run[0], attn=run[1], alibi=run[2], rope=run[3], T=run[4], log=log,
             diverged=None, last_train=log["train"][max(log["train"])] if log["train"] else None)
    if os.path.exists(div):  # keep "step N: ..." of the trainer's message
        r["diverged"] = open(div).read().strip().replace("error: ", "").split(";")[0]
    for E in EVAL_LENS:
        for W, tag in ((WINDOW, f"W{WINDOW}"), (E, "Wfull")):
            r[f"eval_E{E}_{tag}"] = evals.get(f"E={E},W={W}", {}).get("loss")
            r[f"eval_E{E}_{tag}_npb"] = evals.get(f"E={E},W={W}", {}).get("nats_per_byte")
            r[f"eval_E{E}_{tag}_bytes"] = evals.get(f"E={E},W={W}", {}).get("bytes")
    return r


def fmt(v, best=None):
    if v is None:
        return "–"
    s = f"{v:.3f}"
    return f"**{s}**" if best is not None and abs(v - best) < 5e-4 else s


def write_tables(rows, mode, out, tokens="bytes"):
    steps = MODES[mode]["steps"]
    bpe = tokens != "bytes"
    cols = [f"eval_E{E}_W{WINDOW}" for E in EVAL_LENS] + [f"eval_E{E}_Wfull" for E in EVAL_LENS]
    num = lambda v: "" if v is None else f"{v:.6f}"
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        # --tokens bpe: the eval columns are nats per token; the same evaluations in nats per byte
        # follow (<col>_nats_per_byte), and eval_bytes, the bytes of text the evaluations predict
        extra = ["tokens"] + [c + "_nats_per_byte" for c in cols] + ["eval_bytes"] if bpe else []
        w.writerow(["name", "attn", "alibi", "rope", "T", "w", "steps", "tokens_seen", "train_time_s",
                    "final_val_loss", "last_train_loss", "status"] + cols + extra)
        for r in rows:
            nbytes = sorted({r[c + "_bytes"] for c in cols if r[c + "_bytes"] is not None})
            more = [tokens] + [num(r[c + "_npb"]) for c in cols] + ["/".join(map(str, nbytes))] if bpe else []
            w.writerow([r["name"], r["attn"], r["alibi"], r["rope"], r["T"], WINDOW, steps,
                        steps * TOKENS_PER_STEP, f"{r['log']['train_s']:.1f}", num(r["log"]["final"]),
                        num(r["last_train"]), "diverged" if r["diverged"] else "ok"] + [num(r[c]) for c in cols] + more)

    def table(key, what):
        best = {c: min([r[c + key] for r in rows if r[c + key] is not None], default=None) for c in cols}
        md = [what, "",
              "| run | T | " + " | ".join(f"E={E} W=w" for E in EVAL_LENS) + " | "
              + " | ".join(f"E={E} W=E" for E in EVAL_LENS) + " |",
              "|---|--:|" + "--:|" * len(cols)]
        for r in rows:
            name = r["name"] + (f" (diverged: {r['diverged']})" if r["diverged"] else "")
            md.append(f"| {name} | {r['T']} | " + " | ".join(fmt(r[c + key], best[c]) for c in cols) + " |")
        return md + [""]

    if not bpe:
        md = table("", f"Eval loss (nats/byte) on the same {MODES[mode]['eval_tokens']} validation bytes at each "
                   f"length E; window w = {WINDOW}.")
    else:
        nb = sorted({r[c + "_bytes"] for r in rows for c in cols if r[c + "_bytes"] is not None})
        span = f"{nb[0]}" if len(nb) == 1 else f"{nb[0]}-{nb[-1]}" if nb else "?"
        md = table("", f"Eval loss in **nats per token** (BPE tokens, V = 4096) on the same "
                   f"{MODES[mode]['eval_tokens']} validation tokens at each length E (tokens); window w = {WINDOW} "
                   "tokens.")
        md += table("_npb", f"The same evaluations in **nats per byte** (the trainer's --tokenizer count: the "
                    f"summed loss over the {span} bytes of text the evaluated tokens decode to), comparable with "
                    "byte-level runs on the same held-out text.")
    md = md[:-1]
    flags = (f" --tokens {tokens}" if bpe else "") + \
            (f" --steps {steps}" if steps != DEFAULT_STEPS[mode] else "")
    md += ["", f"`/usr/bin/python3 dev/experiments.py --mode {mode}{flags}`: {steps} steps of {TOKENS_PER_STEP} "
               f"tokens per run ({steps * TOKENS_PER_STEP / 1e6:.2f} M tokens), seed {SEED}, lr 2e-3. "
               "W=w: sliding-window inference; W=E: full attention over the evaluation length. "
               f"One training seed per run ({SEED}): the spread between seeds is not measured, so a difference "
               "between two runs smaller than that spread is not a finding.", ""]
    by = {r["name"]: r for r in rows}
    if "vanilla-softmax-rope" in by and "swat" in by:  # the Table-2-style comparison
        pairs = [(E, tag) for E in (512, 2048) for tag in (f"W{WINDOW}", "Wfull")]
        md += ([f"Eval loss ({UNIT}):", ""] if UNIT != "nats/byte" else []) + [
               "| model (train length / window) | " + " | ".join(
                   f"E={E} ({E // WINDOW}x) {'W=w' if tag != 'Wfull' else 'W=E'}" for E, tag in pairs) + " |",
               "|---|" + "--:|" * len(pairs)]
        for name in ("vanilla-softmax-rope", "swat"):
            r = by[name]
            md.append(f"| {name} ({r['T']}/{WINDOW}) | "
                      + " | ".join(fmt(r[f"eval_E{E}_{t}"]) for E, t in pairs) + " |")
        md += ["", "Paper (OpenWebText, w = 128, E = 16384): vanilla 128/128 4.84, SWAT 1024/128 3.01.", ""]
    text = "\n".join(md)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(text)


def read_results(path):
    """results.csv -> {run name: row of strings}; None if there is none."""
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def compare(ref, ref_dir, rows, mode, out):
    """The reference's numbers next to the new ones in one table, printed and written to
    out/comparison.md: per run, the final validation loss and each evaluation, "reference / new"."""
    cols = ["final_val_loss"] + [f"eval_E{E}_W{WINDOW}" for E in EVAL_LENS] + [f"eval_E{E}_Wfull" for E in EVAL_LENS]
    heads = ["final val"] + [f"E={E} W=w" for E in EVAL_LENS] + [f"E={E} W=E" for E in EVAL_LENS]
    new = {r["name"]: dict(final_val_loss=r["log"]["final"], **{c: r[c] for c in cols[1:]},
                           status="diverged" if r["diverged"] else "ok") for r in rows}
    ref_steps = sorted({r.get("steps", "?") for r in ref.values()})
    md = [f"Reference `{ref_dir}` ({', '.join(ref_steps)} steps per run) next to this run `{out}` "
          f"(--mode {mode}: {MODES[mode]['steps']} steps per run, {MODES[mode]['eval_tokens']} evaluation tokens). "
          f"Each cell: reference / new eval loss ({UNIT}); – where one of them has no number.", ""]
    if ref_steps != [str(MODES[mode]["steps"])]:
        md += ["The reference was trained for another number of steps: the numbers are not expected to agree.", ""]
    md += ["| run | " + " | ".join(heads) + " |", "|---|" + "--:|" * len(cols)]
    diffs = []
    for name in [r["name"] for r in rows] + [n for n in ref if n not in new]:
        o, n = ref.get(name, {}), new.get(name, {})
        cells = []
        for c in cols:
            a = float(o[c]) if o.get(c) else None
            b = n.get(c)
            if a is not None and b is not None and c != "final_val_loss" and math.isfinite(a) and math.isfinite(b):
                diffs.append(b - a)
            cells.append(f"{'–' if a is None else f'{a:.3f}'} / {'–' if b is None else f'{b:.3f}'}")
        label = name + "".join(f" ({who} diverged)" for who, x in (("reference", o), ("new", n))
                               if x.get("status") == "diverged")
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    if diffs:
        md += ["", f"New minus reference over the {len(diffs)} evaluations both have: mean {np.mean(diffs):+.3f}, "
                   f"smallest {min(diffs):+.3f}, largest {max(diffs):+.3f}."]
    text = "\n".join(md + [""])
    with open(os.path.join(out, "comparison.md"), "w") as f:
        f.write(text)
    print(text)


def unfinished(out):
    """The runs under out/runs that have a log but neither a final loss nor a divergence."""
    runs = os.path.join(out, "runs")
    return [d for d in (sorted(os.listdir(runs)) if os.path.isdir(runs) else [])
            if os.path.exists(os.path.join(runs, d, "log.txt")) and not os.path.exists(os.path.join(runs, d, "diverged.txt"))
            and parse_log(os.path.join(runs, d, "log.txt"))["final"] is None]


def style(name):
    """Softmax runs dashed, vanilla runs thin, swat thick: the same look in every plot."""
    lw = 1.0 if name.startswith("vanilla") else 3.0 if name == "swat" else 2.0 if name.startswith("swat") else 1.6
    return dict(color=COLORS[name], lw=lw, ls="--" if "softmax" in name else "-")


def legend(ax, **kw):
    if ax.get_legend_handles_labels()[0]:  # a subset of runs (--only) may leave a panel empty
        ax.legend(fontsize=8, **kw)


def plot_curves(rows, path, steps):
    """Loss against tokens seen. The last validation point (step == steps) is left out: it is
    measured on the whole validation shard, the periodic ones on its first ~8192 tokens."""
    vals = [v for r in rows for s, v in r["log"]["val"].items() if s < steps]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for r in rows:
        tr, va = r["log"]["train"], r["log"]["val"]
        label = r["name"] + (" (diverged)" if r["diverged"] else "")
        if len(tr) >= 5:  # faint, lightly smoothed training loss
            s = sorted(tr)
            y = np.convolve([tr[k] for k in s], np.ones(5) / 5, mode="valid")
            ax.plot(np.array(s[4:]) * TOKENS_PER_STEP / 1e6, y, color=COLORS[r["name"]], alpha=0.2, lw=1)
        s = sorted(k for k in va if k < steps)
        ax.plot(np.array(s) * TOKENS_PER_STEP / 1e6, [va[k] for k in s], marker=".", label=label, **style(r["name"]))
    if vals:  # a diverged or exploding run must not squash the interesting range
        ax.set_ylim(min(vals) - 0.05, 3.5 if UNIT == "nats/byte" else min(max(vals) + 0.05, min(vals) + 3.0))
    ax.set(xlabel="tokens seen (M)", ylabel=f"loss ({UNIT})",
           title="Validation loss (dots, first 8192 val tokens) and training loss (faint)")
    ax.grid(alpha=0.3)
    legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def panel(ax, rows, names, tag, title, logy=False):
    """Eval loss against E for the runs in `names`. With logy the axis spans the blow-ups of
    full-attention evaluation (up to a cap); points beyond the cap sit on the edge, labelled."""
    pts = [r[f"eval_E{E}_{tag}"] for r in rows if r["name"] in names for E in EVAL_LENS]
    pts = [p for p in pts if p is not None]
    if not pts:
        return
    hi = min(max(pts) * 1.03, 16.0) if logy else max(pts) + 0.03
    for r in rows:
        if r["name"] not in names or r["diverged"]:
            continue
        xs = [E for E in EVAL_LENS if r[f"eval_E{E}_{tag}"] is not None]
        ys = [r[f"eval_E{E}_{tag}"] for E in xs]
        ax.plot(xs, np.minimum(ys, hi), marker="o", ms=4, label=r["name"], **style(r["name"]))
        for x, y in zip(xs, ys):
            if y > hi:
                ax.annotate(f"{y:.1f}", (x, hi), xytext=(3, -10), textcoords="offset points",
                            fontsize=7, color=COLORS[r["name"]])
    ax.set_xscale("log", base=2)
    ax.set_xticks(EVAL_LENS)
    ax.set_xticklabels([f"{E}\n{E // WINDOW}x" for E in EVAL_LENS])
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks([t for t in (1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16) if min(pts) * 0.95 <= t <= hi])
    ax.set(ylim=(min(pts) * 0.98 if logy else min(pts) - 0.03, hi), title=title,
           xlabel="evaluation length E (tokens; multiple of the window)", ylabel=f"eval loss ({UNIT})")
    ax.grid(alpha=0.3)


def plot_all(rows, out, steps):
    plot_curves(rows, os.path.join(out, "train_curves.png"), steps)

    names = [r["name"] for r in rows]
    fig, axs = plt.subplots(1, 2, figsize=(13, 5.8))
    panel(axs[0], rows, names, f"W{WINDOW}", f"eval window = training window (W = {WINDOW})")
    panel(axs[1], rows, names, "Wfull", "eval window = eval length (W = E; log scale)", logy=True)
    handles, labels = axs[0].get_legend_handles_labels()
    if handles:  # one legend under both panels, so it hides no line
        fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(os.path.join(out, "length_extrapolation.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    panel(ax, rows, ["swat-T64", "swat-T128", "swat"], f"W{WINDOW}",
          f"SWAT by training length (W = {WINDOW}): T = 2w, 4w, 8w")
    legend(ax)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "swat_train_length.png"), dpi=110)
    plt.close(fig)


def main():
    global RESUME_HINT, UNIT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--mode", choices=list(MODES), default="quick")
    ap.add_argument("--out", help="results directory (default: a fresh dev/results/<mode>-YYYYmmdd-HHMMSS; "
                    "an existing one is resumed; with --plots-only the default is dev/results/<mode>)")
    ap.add_argument("--bin", default="./train_swat", help="the trainer binary")
    ap.add_argument("--only", help="comma-separated run names (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", choices=list(TOKENS), default="bytes",
                    help=f"bytes (default) or bpe: the 4096-piece BPE shards of {BPE_DIR} (data/prepare_bpe.py), "
                    "--vocab 4096 --bos 1, evaluations also in nats per byte; results in dev/results/bpe-<mode>-...")
    ap.add_argument("--steps", type=int, help="training steps per run instead of the mode's (the tables say so)")
    ap.add_argument("--train", help=f"training shard (default {TRAIN}, or {TOKENS['bpe']['train']} with --tokens bpe)")
    ap.add_argument("--val", help=f"validation and evaluation shard (default {VAL}, or {TOKENS['bpe']['val']})")
    ap.add_argument("--compare", help=f"results to print next to the new ones (default {COMMITTED}, none "
                    "with --plots-only; 'none' for none)")
    ap.add_argument("--plots-only", action="store_true", help="rebuild table and plots from existing results")
    args = ap.parse_args()
    os.chdir(REPO)  # the data paths and default binary are relative to the repository
    tk = TOKENS[args.tokens]
    UNIT = tk["unit"]
    args.train, args.val = args.train or tk["train"], args.val or tk["val"]
    if args.steps is not None:
        if args.steps < 1:
            fail("--steps must be at least 1")
        MODES[args.mode]["steps"] = args.steps
    if args.tokens != "bytes":  # the evaluations cover about the same bytes as a byte-level run's
        MODES[args.mode]["eval_tokens"] = MODES[args.mode]["bpe_eval_tokens"]
    label = ("" if args.tokens == "bytes" else args.tokens + "-") + args.mode  # dev/results/<label>...
    if args.plots_only:
        out = args.out or os.path.join("dev", "results", label)
    else:
        out = args.out or fresh_dir(os.path.join("dev", "results", label))
    # the committed BPE results are 300-step runs (the machine allowed no more; see dev/README.md)
    committed = COMMITTED if args.tokens == "bytes" else os.path.join("dev", "results", "bpe-steps300")
    ref_dir = args.compare or (None if args.plots_only else committed)
    ref = None
    if ref_dir not in (None, "none"):
        ref = read_results(os.path.join(ref_dir, "results.csv"))  # before this run may overwrite it
        if ref is None:
            print(f"note: no {ref_dir}/results.csv to compare with", flush=True)
    runs = RUNS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {r[0] for r in RUNS}
        if unknown:
            fail(f"unknown run(s) {', '.join(sorted(unknown))}; known: {', '.join(r[0] for r in RUNS)}")
        runs = [r for r in RUNS if r[0] in wanted]
    t0 = time.time()
    if not args.plots_only:
        if not os.path.exists(args.bin):
            fail(f"{args.bin} not found: build it with `make train_swat`")
        for shard in (args.train, args.val):
            if not os.path.exists(shard):
                fail(f"{shard} not found" + (": prepare the data with `make data/bible/train.bin`"
                                             if shard in (TRAIN, VAL) else
                                             f": prepare it with `/usr/bin/python3 data/prepare_bpe.py --vocab-size "
                                             f"4096 data/bible/kjv.txt {BPE_DIR}`" if args.tokens == "bpe" else ""))
        if tk["tokenizer"] and not os.path.exists(tk["tokenizer"]):
            fail(f"{tk['tokenizer']} not found: prepare it with `/usr/bin/python3 data/prepare_bpe.py "
                 f"--vocab-size 4096 data/bible/kjv.txt {BPE_DIR}`")
        if args.out is None:
            left = unfinished(os.path.join("dev", "results", label))
            if left:
                print(f"note: dev/results/{label} has unfinished runs ({', '.join(left)}); this invocation "
                      f"starts afresh in {out}; to continue those, pass --out dev/results/{label}", flush=True)
        RESUME_HINT = shlex.join([sys.executable, "dev/experiments.py"] + sys.argv[1:]
                                 + ([] if args.out else ["--out", out]))
        if not os.path.exists(out):
            os.makedirs(out)
            with open(os.path.join(out, ".gitignore"), "w") as f:
                f.write("# made by dev/experiments.py: the checkpoints stay local\n*.ckpt\n*.tmp\n")
        print(f"results go to {out}; to continue after a stop: {RESUME_HINT}", flush=True)
        for run in runs:
            rdir = run_dir(out, run)
            train(run, args.mode, rdir, args)
            if os.path.exists(os.path.join(rdir, "diverged.txt")):
                continue  # a diverged model has nothing meaningful to evaluate
            for E in EVAL_LENS:
                for W in sorted({WINDOW, E}):  # at E = w the two windows are the same evaluation
                    evaluate(run, rdir, E, W, MODES[args.mode]["eval_tokens"], args)
    rows = [collect(r, run_dir(out, r)) for r in runs
            if any(os.path.exists(os.path.join(run_dir(out, r), f)) for f in ("log.txt", "diverged.txt"))]
    if not rows:
        fail(f"no runs found in {out}/runs")
    os.makedirs(out, exist_ok=True)
    write_tables(rows, args.mode, out, args.tokens)
    if plt is None:
        print(f"note: no plots: {sys.executable} cannot import matplotlib "
              "(sudo apt-get install python3-matplotlib), the tables are written", flush=True)
    else:
        plot_all(rows, out, MODES[args.mode]["steps"])
    print(f"wrote {out}/results.md, results.csv" + ("" if plt is None else " and 3 plots")
          + f"; total wall time {time.time() - t0:.0f} s")
    if ref is not None:
        print()
        compare(ref, ref_dir, rows, args.mode, out)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        if e.detail:
            print(e.detail, file=sys.stderr)
        print(f"error: {e.msg}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted: the checkpoints are saved; to continue: "
              + (RESUME_HINT or "run the same command again"), file=sys.stderr)
        sys.exit(130)
