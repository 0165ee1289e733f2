#!/usr/bin/env python3
"""plot_log.py: training and validation loss of train_swat runs against tokens seen.

    /usr/bin/python3 dev/plot_log.py out/bible/log.txt -o out/bible/loss.png
    /usr/bin/python3 dev/plot_log.py out/swat out/vanilla --labels SWAT,vanilla --smooth 0.9 -o plots/cmp.png

Each LOG is a train_swat log (OUTDIR/log.txt) or a run folder that holds one. The x axis is
tokens = step * batch * seq, with batch and seq read from the log's `train: batch=B seq=T ...`
line; the y axis is the loss in nats per token. Training loss is a solid line, validation loss
a dashed line with dots in the same colour; each run gets one colour, named by its folder
(or by --labels). --smooth S draws an exponential moving average of the training loss
(weight S on the past, debiased at the start) over the raw curve, which stays faint.

The log lines read (train_swat.c's main writes them):
    train: batch=B seq=T ...          starts a run or a resumed part of one
    step N loss X lr .. norm .. ...   the loss of step N (1-based), before its update
    val N loss X                      validation after N steps
    final_val_loss X                  validation at the end (same as the last val line)
Every other line (model:, parameters:, sink ..., ...) is ignored. A resumed run appends to
the same log; if it restarts from an earlier step, the later points of the first part are
dropped, so the plot shows the run that the checkpoint continues.

Parsing needs only Python; drawing needs matplotlib (Debian: python3-matplotlib), which is
imported only then, with the Agg backend (no display needed). --print lists the parsed points
instead of drawing. Errors are one line on stderr ("plot_log.py: ...") and exit status 1.
"""
import argparse
import math
import os
import re
import sys

PROG = "plot_log.py"


class LogError(Exception):
    """A problem with an input or output, reported as one line."""


def fail(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(1)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        fail(f"{message} (see --help)")


class Run:
    def __init__(self, path, label):
        self.path, self.label = path, label
        self.steps, self.tokens, self.loss = [], [], []  # training points
        self.val_steps, self.val_tokens, self.val_loss = [], [], []
        self.final_val = None
        self.batch = self.seq = None


def log_path_of(arg):
    """The log file an argument names: the file itself, or DIR/log.txt."""
    if os.path.isdir(arg):
        path = os.path.join(arg, "log.txt")
        if not os.path.isfile(path):
            raise LogError(f"{arg}: a folder without a log.txt (give a train_swat log or its run folder)")
        return path
    if not os.path.exists(arg):
        raise LogError(f"{arg}: no such file")
    return arg


def default_label(path):
    """The run folder's name: out/bible/log.txt -> bible."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.basename(folder) or folder


NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
STEP_RE = re.compile(r"^step (\d+) loss " + NUM + r"(?:\s|$)")
VAL_RE = re.compile(r"^val (\d+) loss " + NUM + r"(?:\s|$)")
FINAL_RE = re.compile(r"^final_val_loss " + NUM + r"(?:\s|$)")
BATCH_RE = re.compile(r"\bbatch=(\d+)\b")
SEQ_RE = re.compile(r"\bseq=(\d+)\b")


def parse_log(path, label):
    """Read one log into a Run. Raises LogError naming the file (and line) on a problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LogError(f"{path}: cannot read: {e.strerror or e}")
    if not data:
        raise LogError(f"{path}: empty file (is the run still starting?)")
    text = data.decode("utf-8", errors="replace")
    # The text after the last newline is a line the trainer may still be writing: left out.
    lines = text.split("\n")[:-1]

    run = Run(path, label)
    bt = None  # batch * seq of the current part of the run
    # Tokens are counted on from the last step point before a line, with the current part's
    # batch * seq, so they stay right even if a resumed part had a different batch size.
    for i, line in enumerate(lines, 1):
        where = f"{path}:{i}"
        if line.startswith("train:"):
            b, t = BATCH_RE.search(line), SEQ_RE.search(line)
            if not b or not t:
                raise LogError(f"{where}: a 'train:' line without batch=B and seq=T: {line[:80]!r}")
            run.batch, run.seq = int(b.group(1)), int(t.group(1))
            bt = run.batch * run.seq
            continue
        kind = line.split(" ", 1)[0]
        if kind not in ("step", "val", "final_val_loss"):
            continue  # model:, parameters:, sink ..., and whatever is added later
        m = {"step": STEP_RE, "val": VAL_RE, "final_val_loss": FINAL_RE}[kind].match(line)
        if not m:
            raise LogError(f"{where}: cannot read this '{kind}' line: {line[:80]!r}")
        if kind == "final_val_loss":
            run.final_val = float(m.group(1))
            continue
        if bt is None:
            raise LogError(f"{where}: a '{kind}' line before the 'train: batch=B seq=T' line (not a train_swat log?)")
        step, loss = int(m.group(1)), float(m.group(2))
        # A resumed part that starts earlier than the log ends replaces what followed that step.
        if kind == "step":
            truncate(run, train_from=step, val_from=step)
        else:
            truncate(run, train_from=step + 1, val_from=step)
        base_step, base_tok = (run.steps[-1], run.tokens[-1]) if run.steps else (0, 0)
        tokens = base_tok + (step - base_step) * bt
        if kind == "step":
            run.steps.append(step), run.tokens.append(tokens), run.loss.append(loss)
        else:
            run.val_steps.append(step), run.val_tokens.append(tokens), run.val_loss.append(loss)
    if bt is None:
        raise LogError(f"{path}: not a train_swat log (no 'train: batch=B seq=T' line)")
    if not run.steps and not run.val_steps:
        raise LogError(f"{path}: no 'step' or 'val' lines yet (the run has not finished a step)")
    return run


def truncate(run, train_from, val_from):
    while run.steps and run.steps[-1] >= train_from:
        run.steps.pop(), run.tokens.pop(), run.loss.pop()
    while run.val_steps and run.val_steps[-1] >= val_from:
        run.val_steps.pop(), run.val_tokens.pop(), run.val_loss.pop()


def ema(values, weight):
    """Exponential moving average, debiased like TensorBoard's: the first points are not
    pulled towards 0. Non-finite values are skipped (the curve keeps its last value)."""
    out, acc, norm = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            acc = weight * acc + (1 - weight) * v
            norm = weight * norm + (1 - weight)
        out.append(acc / norm if norm > 0 else float("nan"))
    return out


def unique_labels(paths):
    """Folder names, made longer (parent/folder) where two runs would share one."""
    labels = [default_label(p) for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    out = []
    for p, lab in zip(paths, labels):
        if labels.count(lab) > 1:
            lab = os.path.relpath(os.path.dirname(os.path.abspath(p)))
        out.append(lab)
    return out


def fmt_tokens(n):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def summary(run):
    parts = [f"{run.label}: batch {run.batch} x seq {run.seq}"]
    if run.steps:
        parts.append(f"{run.steps[-1]} steps = {fmt_tokens(run.tokens[-1])} tokens, last loss {run.loss[-1]:.4f}")
    if run.val_steps:
        parts.append(f"val {run.val_loss[-1]:.4f} at step {run.val_steps[-1]}")
    if run.final_val is not None:
        parts.append(f"final_val_loss {run.final_val:.4f}")
    return ", ".join(parts)


def plot(runs, out, smooth, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter
    except ImportError as e:
        hint = "install it: sudo apt-get install python3-matplotlib"
        if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
            hint = f"run it with /usr/bin/python3 (this is {sys.executable}), or {hint}"
        raise LogError(f"cannot import matplotlib ({e}); {hint}")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        if run.steps:
            if smooth > 0:
                ax.plot(run.tokens, run.loss, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(run.tokens, ema(run.loss, smooth), color=color, linewidth=1.6,
                        label=f"{run.label} train (EMA {smooth:g})")
            else:
                ax.plot(run.tokens, run.loss, color=color, linewidth=1.2, label=f"{run.label} train")
        if run.val_steps:
            ax.plot(run.val_tokens, run.val_loss, color=color, linestyle="--", marker="o", markersize=3.5,
                    linewidth=1.2, label=f"{run.label} val")
    ax.set_xlabel("tokens (step x batch x seq)")
    ax.set_ylabel("loss (nats per token)")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title if title is not None else
                 ("training and validation loss" if len(runs) > 1 else f"{runs[0].label}: training and validation loss"))
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise LogError(f"{out}: cannot create the folder {folder}: {e.strerror or e}")
    try:
        fig.savefig(out)
    except ValueError as e:  # an extension matplotlib does not know
        raise LogError(f"{out}: {e}")
    except OSError as e:
        raise LogError(f"{out}: cannot write: {e.strerror or e}")
    finally:
        plt.close(fig)


def main(argv=None):
    ap = Parser(prog=PROG, description="Plot train_swat logs: loss and val loss against tokens.",
                epilog="Example: /usr/bin/python3 dev/plot_log.py out/bible -o out/bible/loss.png")
    ap.add_argument("logs", nargs="+", metavar="LOG", help="a train_swat log.txt, or the run folder holding it")
    ap.add_argument("-o", "--out", help="the image to write (.png; its folder is created if missing)")
    ap.add_argument("--labels", help="comma-separated legend names, one per LOG (default: the run folders' names)")
    ap.add_argument("--smooth", type=float, default=0.0, metavar="S",
                    help="EMA weight in [0, 1) for the training loss, e.g. 0.9 (default 0: raw)")
    ap.add_argument("--title", help="the figure's title")
    ap.add_argument("--print", dest="print_points", action="store_true",
                    help="print the parsed points (label kind step tokens loss) instead of drawing")
    a = ap.parse_args(argv)
    if not a.print_points and not a.out:
        fail("-o OUT.png is required (where to write the plot)")
    if not (0.0 <= a.smooth < 1.0):
        fail(f"--smooth {a.smooth:g}: must be in [0, 1) (0 = no smoothing)")
    try:
        paths = [log_path_of(p) for p in a.logs]
        if a.labels is not None:
            labels = [s.strip() for s in a.labels.split(",")]
            if len(labels) != len(paths):
                raise LogError(f"--labels gives {len(labels)} name{'' if len(labels) == 1 else 's'} for {len(paths)} logs")
        else:
            labels = unique_labels(paths)
        runs = [parse_log(p, lab) for p, lab in zip(paths, labels)]
        if a.print_points:
            for r in runs:
                for s, t, v in zip(r.steps, r.tokens, r.loss):
                    print(f"{r.label} step {s} {t} {v:.6f}")
                for s, t, v in zip(r.val_steps, r.val_tokens, r.val_loss):
                    print(f"{r.label} val {s} {t} {v:.6f}")
            return 0
        plot(runs, a.out, a.smooth, a.title)
    except LogError as e:
        fail(str(e))
    for r in runs:
        print(summary(r))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
