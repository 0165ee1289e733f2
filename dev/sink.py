"""
The attention sink at CPU scale, and what SWAT's sigmoid does to it (issue 13).

Softmax attention must put a total weight of 1 somewhere. A head with nothing to do parks it on a
token whose value it has made harmless, in practice the start token: the "attention sink" (Xiao et
al. 2023; Gu et al. 2025). Sliding-window inference evicts the start token after w tokens, the
parked weight lands on real tokens, and the model breaks; StreamingLLM keeps the first token in
the cache (`--keep-first 1`) and repairs it. SWAT's element-wise sigmoid has no total to park: a
dormant head sets its gates near 0. This script trains small models with a start token
(`--vocab 257 --bos 256`) and measures all of that:

  Bigram-Backcopy (data/make_backcopy.py; Guo et al. 2024): a letter bigram chain in which the
      character after a trigger (b, w, y) copies the character before the trigger. Attention is
      needed only at trigger queries. Models (5 seeds with 2 layers, else 3): vanilla softmax trained densely
      (T = w = 128, no ALiBi) with RoPE ("softmax-rope", the project's vanilla model) and with
      no position encoding at all ("softmax-nope": the sink forms there, not with RoPE at this
      budget; dev/results/sink/NOTES.md has what was tried), 2 and 3 layers, 3000 steps and
      for two layers also 6000; SWAT (sigmoid, balanced ALiBi 1:1, RoPE, w = 16, T = 128).
      Issue 23's control: softmax (RoPE and NoPE) trained with w = 16 < T = 128, so that the start
      token leaves the window in training as in SWAT's ("sliding-rope", "sliding-nope"). Issue 23's
      item 3: softmax without positions trained 10000 steps, near its optimum ("-10k", 3 seeds).
  The Bible (data/bible, bytes): the same three kinds, 4 layers of width 128, T = 128 (SWAT:
      w = 32, ALiBi 2:2), 2000 steps, 2 seeds (seeds 3-5 listed for dense RoPE, SWAT and the sliding
      control); and the control, softmax with RoPE trained with w = 32 ("bible-sliding-rope").
      Issue 23's item 5: dense softmax with RoPE and SWAT with 6 layers of 8 heads and T = 256
      ("bible-deep-", 2 seeds; the same width, tokens a step and steps).

For every model:
  sinks        `train_swat --eval VAL --eval-len T --sinks`: per head, the mean weight on position 0
               over the queries that see it ("first"), the mean row sum (1 for softmax) and the
               mean share first/row_sum; sink heads = share > 0.3 (Gu et al.'s threshold).
  gu           (Bigram-Backcopy) the same from `--dump-attn` over val chains, split into
               non-trigger queries (the query's own token is not a trigger, so the head has
               nothing to fetch: the dormant case) and trigger queries (the head must fetch the
               previous character). A model's sink ratio = the fraction of its heads whose mean
               weight on the start token over non-trigger queries exceeds 0.3.
  streams      `--stream --dump-losses` over long texts (one sequence each, the start token once at
               the beginning), in three modes: full attention (--eval-window >= the text), sliding
               window W (the start token leaves the cache after W tokens), and sliding window W with
               --keep-first 1 (the start token stays; positions counted within the cache). The loss
               is summarised before and after position W and plotted against the position. On
               Bigram-Backcopy also split by target: bigram targets (the heads are dormant) and
               copy targets (a head must fetch), against the Bayes-optimal loss of the stream.
               32 streams of each data set; a committed run measured on fewer is trained again
               (checkpoint_of) and measured on them.
  chunks       (Bigram-Backcopy) `--eval-len 128 --eval-window W --dump-losses` on all val chains:
               loss at positions < W (the start token still visible) and >= W.
  ablations    (--ablate; Bigram-Backcopy softmax) the start token's key kept and its value zeroed,
               and the other ABLATIONS, in PyTorch (measure_ablations): a sink or position counting?
  follows      (report) per seed, the sink against what eviction costs, and their rank correlation.

Outputs (dev/results/sink/ for --mode full; --mode quick writes dev/results/sink/quick/, not
committed): results.md (tables: mean and spread over seeds), results.json (every number), figures
(*.png), runs/<name>/{log.txt,run.json,evals.json,streams.json} (checkpoints are not committed).

Usage:  /usr/bin/python3 dev/sink.py [--mode quick|full|tiny] [--only NAME,...] [--jobs 2] [--plots-only]
        (`make sink` runs the quick mode, `make sink MODE=full` the committed one; --bin another trainer)
Resumable: finished trainings and cached measurements are skipped, so re-run after a Ctrl-C.
"""
import argparse, itertools, math, os, struct, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dev/runs.py, from any working directory
from runs import (REPO, Failure, call as call_trainer, fail, other_settings, parse_log, read_json, say, train_command,
                  write_json)

BIBLE = dict(train="data/bible/train.bin", val="data/bible/val.bin")
BOS = ["--vocab", "257", "--bos", "256"]
VAL_CHUNKS = 64  # val chains of each validation during training (the first ones)
SINK_T = 0.3  # Gu et al.'s threshold on the mean weight on the first token


# ---------------------------------------------------------------------------------- settings
# Each run: name, data ("bb" | "bible"), attention, ALiBi, window w, training length T, shape
# (L, H, C, F), steps, lr, wd, seed. Stream windows: the eval windows W of the streaming modes.

def bb_run(kind, L, seed, steps, tag=""):
    """kind: softmax-rope (vanilla with RoPE), softmax-nope (vanilla without any position
    encoding, as GPT-style models without learned positions), swat; sliding-rope and
    sliding-nope: the control of issue 23, softmax trained with SWAT's window (w = 16 < T = 128),
    so that the start token leaves the window during training as it does in SWAT's. tag: a
    suffix of the group name for variants (longer training)."""
    base = dict(data="bb", T=128, L=L, H=2, C=64, F=256, steps=steps, lr=3e-3, wd=0.1, seed=seed)
    group = f"bb-{kind}-L{L}{tag}"
    if kind == "swat":
        return dict(base, name=f"{group}-s{seed}", group=group, attn="sigmoid", alibi="1:1",
                    rope="on", w=16, stream_windows=[16])
    if kind.startswith("sliding-"):
        return dict(base, name=f"{group}-s{seed}", group=group, attn="softmax", alibi="0:0",
                    rope="on" if kind == "sliding-rope" else "off", w=16, stream_windows=[16])
    return dict(base, name=f"{group}-s{seed}", group=group, attn="softmax", alibi="0:0",
                rope="on" if kind == "softmax-rope" else "off", w=128, stream_windows=[16, 128])


def bible_run(kind, seed, steps, deep=False):
    """kind: softmax-rope, softmax-nope (dense, w = T), swat; sliding-rope: issue 23's control on
    the Bible, softmax with RoPE trained with SWAT's window (w = 32 < T = 128). deep: issue 23's
    step towards the literature's regime, 6 layers of 8 heads and T = 256 (the same width, the
    same 4096 tokens a step, SWAT's window still 32)."""
    T, L, H = (256, 6, 8) if deep else (128, 4, 4)
    group = "bible-deep-" + kind if deep else "bible-" + kind
    base = dict(data="bible", T=T, L=L, H=H, C=128, F=352, steps=steps, lr=2e-3, wd=0.1, seed=seed,
                name=f"{group}-s{seed}", group=group)
    if kind == "swat":
        return dict(base, attn="sigmoid", alibi=f"{H // 2}:{H // 2}", rope="on", w=32, stream_windows=[32])
    w = 32 if kind == "sliding-rope" else T
    return dict(base, attn="softmax", alibi="0:0", rope="off" if kind == "softmax-nope" else "on", w=w,
                stream_windows=sorted({32, w}))


MODES = {
    # under 20 minutes on 2 busy cores: one seed of the two-layer Bigram-Backcopy models, a short Bible pair
    "quick": dict(runs=[bb_run("softmax-nope", 2, 1, 3000), bb_run("swat", 2, 1, 3000),
                        bible_run("softmax-rope", 1, 300), bible_run("swat", 1, 300)],
                  bb_streams=8, bible_streams=4, stream_len=1024, gu_chains=8),
    # seconds: checks that the pipeline runs end to end (nothing in it is a result)
    "tiny": dict(runs=[bb_run("softmax-nope", 2, 1, 30), bb_run("swat", 2, 1, 30), bible_run("softmax-rope", 1, 10),
                       bible_run("swat", 1, 10)], bb_streams=2, bible_streams=2, stream_len=256, gu_chains=2),
    # in the order they run (two at a time): the two-layer trio first, then the Bible, then 3 layers
    # (seeds 4 and 5 of the two-layer models were added with issue 23 and run with --only)
    "full": dict(runs=[bb_run(k, 2, s, 3000) for k in ("softmax-nope", "swat", "softmax-rope") for s in range(1, 6)]
                 + [bb_run("softmax-nope", 2, s, 6000, "-6k") for s in (1, 2, 3)]
                 + [bible_run(k, s, 2000) for k in ("softmax-rope", "swat", "softmax-nope") for s in (1, 2)]
                 + [bb_run(k, 3, s, 3000) for k in ("softmax-nope", "swat") for s in (1, 2, 3)]
                 # issue 23's control, added later (run with --only, one at a time: 1 core)
                 + [bb_run(k, 2, s, 3000) for k in ("sliding-nope", "sliding-rope") for s in (1, 2, 3, 4, 5)]
                 + [bible_run("sliding-rope", s, 2000) for s in (1, 2)]
                 # seeds 3-5 on the Bible, issue 23 (a committed seed measured on fewer streams is trained again)
                 + [bible_run(k, s, 2000) for k in ("softmax-rope", "sliding-rope", "swat") for s in (3, 4, 5)]
                 # issue 23, item 3: the sink given time to finish forming (within 0.01 of the optimum)
                 + [bb_run("softmax-nope", 2, s, 10000, "-10k") for s in (1, 2, 3)]
                 # issue 23, item 5: deeper and longer, dense softmax with RoPE beside SWAT
                 + [bible_run(k, s, 2000, deep=True) for s in (1, 2) for k in ("softmax-rope", "swat")],
                 bb_streams=32, bible_streams=32, stream_len=1024, gu_chains=32),
}
# Bigram-Backcopy data: one data set (seed 1) for every model; the model seeds differ
BB_ARGS = ["--length", "128", "--train-seqs", "32768", "--val-seqs", "512", "--stream-length", "1024",
           "--stream-seqs", "32", "--seed", "1"]


# ---------------------------------------------------------------------------------- helpers
STOP = threading.Event()  # set on an error or Ctrl-C: no new training or measurement starts


def call(cmd):
    """(exit code, stdout, stderr) of a trainer command; none starts once STOP is set."""
    return call_trainer(cmd, stop=STOP)


def read_tokens(path):
    data = open(path, "rb").read()
    header = np.frombuffer(data[:1024], dtype="<i4")
    if header[0] != 20240520:
        fail(f"{path} is not a token shard")
    return np.frombuffer(data, dtype="<u2", count=int(header[2]), offset=1024)


def write_tokens(path, toks):
    header = np.zeros(256, dtype="<i4")
    header[:3] = [20240520, 1, len(toks)]
    with open(path + ".tmp", "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(toks, dtype="<u2").tobytes())
    os.replace(path + ".tmp", path)


def read_dump(path):
    """train_swat --dump-attn: "SWATATTN", int32 version, layer, H, T, window, attn, T int32
    tokens, H*T*T float32 weights [h][m][n]."""
    data = open(path, "rb").read()
    if data[:8] != b"SWATATTN":
        fail(f"{path} is not an attention dump")
    version, layer, H, T, W, attn = struct.unpack("<6i", data[8:32])
    tokens = np.frombuffer(data, "<i4", T, 32)
    weights = np.frombuffer(data, "<f4", H * T * T, 32 + 4 * T).reshape(H, T, T)
    return dict(layer=layer, H=H, T=T, window=W, attn=attn, tokens=tokens, weights=weights)


# ---------------------------------------------------------------------------------- data
def write_stream(path, toks):
    """A stream file, unless it already holds these tokens (a file of another mode's spacing
    is written again)."""
    if not os.path.exists(path) or not np.array_equal(read_tokens(path), toks):
        write_tokens(path, toks)


def prepare_data(out, mode):
    """Bigram-Backcopy shards (once, shared by the modes) and the stream texts of both data sets:
    one shard per stream, so that --stream reads each as its own sequence."""
    bb = os.path.join(REPO, "dev", "results", "sink", "data", "backcopy")
    if read_json(os.path.join(bb, "meta.json"), {}).get("stream_seqs") != 32:
        say("generating the Bigram-Backcopy shards (data/make_backcopy.py)")
        rc, _, err = call([sys.executable, "data/make_backcopy.py", "--out", bb, "--quiet"] + BB_ARGS)
        if rc != 0:
            fail("data/make_backcopy.py failed", ["make_backcopy"], err)
    meta = read_json(os.path.join(bb, "meta.json"), None)
    sd = os.path.join(out, "streams")
    os.makedirs(sd, exist_ok=True)
    S = MODES[mode]["stream_len"]
    streams = dict(bb=[], bible=[])
    # Bigram-Backcopy: stream.bin holds independent chains of stream_length; stream k is chain k
    chains = read_tokens(os.path.join(bb, "stream.bin"))[:-1].reshape(-1, meta["stream_length"])
    for k in range(MODES[mode]["bb_streams"]):
        path = os.path.join(sd, f"bb_{k:02d}.bin")
        # chain + one extra token: the stream predicts exactly the chain
        write_stream(path, np.append(chains[k, :S], chains[k, 0]))
        streams["bb"].append(path)
    # the Bible: stretches of the val text, evenly spaced
    val = read_tokens(BIBLE["val"])
    n = MODES[mode]["bible_streams"]
    for k in range(n):
        path = os.path.join(sd, f"bible_{k:02d}.bin")
        start = k * ((len(val) - S - 1) // n)
        write_stream(path, val[start:start + S + 1])
        streams["bible"].append(path)
    return dict(bb=dict(train=os.path.join(bb, "train.bin"), val=os.path.join(bb, "val.bin"), meta=meta),
                bible=dict(train=BIBLE["train"], val=BIBLE["val"], meta=None), streams=streams)


def bb_optimal_losses(tokens, meta):
    """The Bayes-optimal loss of each prediction of a Bigram-Backcopy chain (stream layout:
    the first character is predicted from the start token): 0 after a trigger (the copy is
    certain), -log bigram otherwise, -log start for the first character."""
    index = {s: i for i, s in enumerate(meta["symbols"])}
    x = np.array([index[int(t)] for t in tokens])
    P, start = np.array(meta["bigram"]), np.array(meta["start"])
    trig = np.isin(tokens, meta["trigger_bytes"])
    out = np.empty(len(x))
    out[0] = -np.log(start[x[0]])
    out[1:] = np.where(trig[:-1], 0.0, -np.log(np.maximum(P[x[:-1], x[1:]], 1e-300)))
    return out


# ---------------------------------------------------------------------------------- training
def train_args(run, data):
    batch = 4096 // run["T"]
    return (["--train", data["train"], "--val", data["val"]] + BOS
            + ["--layers", run["L"], "--heads", run["H"], "--dim", run["C"], "--ffn", run["F"],
               "--attn", run["attn"], "--alibi", run["alibi"], "--rope", run["rope"], "--window", run["w"],
               "--seq", run["T"], "--batch", batch, "--steps", run["steps"], "--warmup", min(50, run["steps"] // 4), "--lr", run["lr"],
               "--wd", run["wd"], "--seed", run["seed"]])


def periodic_args(run, threads):
    return ["--val-every", max(1, run["steps"] // 20), "--val-chunks", VAL_CHUNKS, "--final-val-chunks", 512, "--sample-every", 0,
            "--save-every", max(1, run["steps"] // 5), "--threads", threads]


def train(run, rdir, data, args):
    log, ckpt = os.path.join(rdir, "log.txt"), os.path.join(rdir, "model.ckpt")
    targs = [str(a) for a in train_args(run, data)]
    if other_settings(os.path.join(rdir, "run.json"), targs):  # never mix two settings in one run
        fail(f"{rdir} was started with other settings; delete it to retrain")
    if parse_log(log)["final"] is not None and os.path.exists(ckpt):
        return
    os.makedirs(rdir, exist_ok=True)
    write_json(os.path.join(rdir, "run.json"), targs)
    cmd, resuming = train_command(args.bin, rdir, ["--overwrite"] + targs, ["--train", data["train"], "--val", data["val"]])
    if resuming:
        say(f"[{run['name']}] resuming from {ckpt}")
    else:
        say(f"[{run['name']}] training: {run['attn']} w={run['w']} T={run['T']} L={run['L']} "
            f"alibi={run['alibi']}, {run['steps']} steps")
    t0 = time.time()
    rc, _, err = call(cmd + periodic_args(run, args.threads))
    if rc != 0:
        fail(f"training {run['name']} failed (exit {rc})", cmd, err)
    if parse_log(log)["final"] is None:
        fail(f"{run['name']} stopped before its last step (interrupted?): run the same command again")
    say(f"[{run['name']}] trained in {time.time() - t0:.0f} s, final val loss {parse_log(log)['final']:.4f}")


# ---------------------------------------------------------------------------------- measurements
def measure_sinks(run, rdir, data, args):
    """train_swat --sinks on the val shard, chunks of T, the model's window."""
    cmd = [args.bin, "--init", os.path.join(rdir, "model.ckpt"), "--eval", data["val"], "--eval-len", run["T"],
           "--sinks", "--threads", args.threads]
    rc, out, err = call(cmd)
    heads, count, loss = [], None, None
    for line in out.splitlines():
        p = line.split()
        if p[:1] == ["sink"] and len(p) == 11:  # sink layer L head H first X row_sum Y share Z
            heads.append(dict(layer=int(p[2]), head=int(p[4]), first=float(p[6]), row_sum=float(p[8]),
                              share=float(p[10])))
        elif p[:1] == ["sink_heads"]:
            count = int(p[1])
        elif p[:1] == ["eval_loss"]:
            loss = float(p[1])
    if rc != 0 or count is None or loss is None or len(heads) != run["L"] * run["H"]:
        fail(f"--sinks of {run['name']} failed (exit {rc})", cmd, err + out)
    return dict(heads=heads, sink_heads=count, val_loss=loss)


def dump_attention(args, ckpt, text, layer, window=None):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "attn.bin")
        cmd = [args.bin, "--init", ckpt, "--dump-attn", path, "--dump-layer", layer, "--prompt", text,
               "--threads", 1]
        if window:
            cmd += ["--eval-window", window]
        rc, out, err = call(cmd)
        if rc != 0:
            fail("--dump-attn failed", cmd, err + out)
        return read_dump(path)


def measure_gu(run, rdir, data, args, nchains):
    """Weight on the start token per head over val chains, split into trigger and non-trigger
    queries. The dump has the start token at position 0 and the chain's characters 0..T-2 at
    positions 1..T-1; query m (1 <= m < min(T, w)) sees position 0; it is a trigger query when
    its own token is a trigger."""
    meta = data["meta"]
    val = read_tokens(data["val"])
    T = run["T"]
    keys = ("nt_first", "nt_row", "nt_share", "t_first", "t_row", "t_share")
    acc = {k: [[[] for _ in range(run["H"])] for _ in range(run["L"])] for k in keys}
    for c in range(nchains):
        text = bytes(val[c * T:c * T + T - 1].astype(np.uint8))  # the trainer prepends the start token
        for layer in range(run["L"]):
            d = dump_attention(args, os.path.join(rdir, "model.ckpt"), text, layer)
            if d["tokens"][0] != 256 or d["T"] != T:
                fail(f"the attention dump of {run['name']} does not start with the start token")
            A = d["weights"]
            q = np.arange(1, min(T, run["w"]))
            trig = np.isin(d["tokens"][q], meta["trigger_bytes"])
            for h in range(run["H"]):
                rows = A[h, q, :].sum(1)
                share = A[h, q, 0] / np.maximum(rows, 1e-30)
                for sel, pre in ((~trig, "nt"), (trig, "t")):
                    acc[pre + "_first"][layer][h] += A[h, q[sel], 0].tolist()
                    acc[pre + "_row"][layer][h] += rows[sel].tolist()
                    acc[pre + "_share"][layer][h] += share[sel].tolist()
    heads = []
    for layer in range(run["L"]):
        for h in range(run["H"]):
            m = {k: float(np.mean(v[layer][h])) if v[layer][h] else None for k, v in acc.items()}
            heads.append(dict(layer=layer, head=h, nontrigger_first=m["nt_first"], nontrigger_row_sum=m["nt_row"],
                              nontrigger_share=m["nt_share"], trigger_first=m["t_first"], trigger_row_sum=m["t_row"],
                              trigger_share=m["t_share"],
                              queries_nontrigger=len(acc["nt_first"][layer][h]),
                              queries_trigger=len(acc["t_first"][layer][h])))
    # Gu et al.'s ratio on the weight itself, and on the share (weight / row sum), which is what
    # "parked" means for a sigmoid head whose row does not sum to 1 (the same for softmax)
    ratio = sum(h["nontrigger_first"] > SINK_T for h in heads) / len(heads)
    ratio_share = sum(h["nontrigger_share"] > SINK_T for h in heads) / len(heads)
    return dict(heads=heads, sink_ratio=ratio, sink_ratio_share=ratio_share, chains=nchains)


def stream_losses(args, ckpt, shard, W, keep):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "losses.bin")
        cmd = [args.bin, "--init", ckpt, "--eval", shard, "--stream", "--eval-window", W, "--dump-losses", path,
               "--threads", 1]
        if keep:
            cmd += ["--keep-first", keep]
        rc, out, err = call(cmd)
        if rc != 0 or "eval_loss" not in out:
            fail("streaming evaluation failed", cmd, err + out)
        return np.fromfile(path, dtype=np.float32)


def stream_modes(run, S):
    """(key, W, keep_first): full attention, then each stream window without and with the start token."""
    modes = [("full", S, 0)]
    for W in run["stream_windows"]:
        modes += [(f"W{W}", W, 0), (f"W{W}+keep1", W, 1)]
    return modes


def measure_streams(run, rdir, ckpt, data, streams, args):
    """Per-position mean loss over the streams for each mode (streams.json). On Bigram-Backcopy
    also the mean loss split by target kind, before and after the window edge W (for full
    attention: the training length T): copy targets (the token after a trigger, which needs the
    head that fetches the previous character) and bigram targets (every other token: there the
    heads are dormant, and a softmax head parks its weight)."""
    path = os.path.join(rdir, "streams.json")
    cache = read_json(path, {})
    S = None
    kinds = None
    if run["data"] == "bb":
        trig = data["meta"]["trigger_bytes"]
        kinds = []
        for sh in streams:  # prediction i predicts token i; it is a copy when token i-1 is a trigger
            t = read_tokens(sh)[:-1]
            kinds.append(np.concatenate([[False], np.isin(t[:-1], trig)]))
    for key, W, keep in stream_modes(run, MODES[args.mode]["stream_len"]):
        if key in cache and cache[key]["streams"] == len(streams) and (kinds is None or "split" in cache[key]):
            continue
        curves = [stream_losses(args, ckpt, s, W, keep) for s in streams]
        S = min(len(c) for c in curves)
        mean = np.mean([c[:S] for c in curves], axis=0)
        cache[key] = dict(W=W, keep_first=keep, streams=len(streams), mean=[round(float(v), 4) for v in mean])
        if kinds is not None:
            edge = run["T"] if key == "full" else W
            split = {}
            for side, sel in (("lt", lambda i: (i >= 1) & (i < edge)), ("ge", lambda i: i >= edge)):
                for kind, want in (("copy", True), ("bigram", False)):
                    v = np.concatenate([c[:S][sel(np.arange(S)) & (k[:S] == want)] for c, k in zip(curves, kinds)])
                    split[f"{kind}_{side}"] = float(v.mean()) if len(v) else None
            cache[key]["split"] = split
        write_json(path, cache)
    return cache


def streams_measured(rdir):
    """Over how many streams every mode of streams.json was measured (0: none)."""
    cache = read_json(os.path.join(rdir, "streams.json"), {})
    return min((c["streams"] for c in cache.values()), default=0)


def summarise_streams(run, cache, optimal=None):
    """Mean loss before and after the window: positions [1, W) still see the start token
    (position 0 of a stream predicts its first token from the start token alone)."""
    out = {}
    for key, W, keep in stream_modes(run, None):
        if key not in cache:
            continue
        c = np.array(cache[key]["mean"])
        if key == "full":  # full attention: in the training range (< T) and beyond it
            out["full_lt_T"] = float(c[1:run["T"]].mean())
            out["full_ge_T"] = float(c[run["T"]:].mean()) if len(c) > run["T"] else None
            continue
        out[f"{key}_lt_W"] = float(c[1:W].mean())
        out[f"{key}_ge_W"] = float(c[W:].mean())
    for key in cache:
        for k, v in cache[key].get("split", {}).items():
            out[f"{key}_{k}"] = v
    if optimal is not None:
        out["optimal_all"] = float(optimal[1:].mean())
        for W in run["stream_windows"]:
            out[f"optimal_ge_W{W}"] = float(optimal[W:].mean())
    return out


def measure_chunks(run, rdir, data, args, W):
    """Loss of all val chains (chunks of T with the start token) with eval window W, by position."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "losses.bin")
        cmd = [args.bin, "--init", os.path.join(rdir, "model.ckpt"), "--eval", data["val"], "--eval-len", run["T"],
               "--eval-window", W, "--dump-losses", path, "--threads", args.threads]
        rc, out, err = call(cmd)
        if rc != 0:
            fail(f"chunked evaluation of {run['name']} failed", cmd, err + out)
        l = np.fromfile(path, dtype=np.float32).reshape(-1, run["T"])
    return dict(W=W, chunks=len(l), lt_W=float(l[:, 1:W].mean()), ge_W=float(l[:, W:].mean()) if W < run["T"] else None,
                all=float(l.mean()))


def process(run, out, data, args):
    """Train one run and take every measurement of it (each cached in evals.json)."""
    rdir = os.path.join(out, "runs", run["name"])
    d = data[run["data"]]
    ev_path = os.path.join(rdir, "evals.json")
    ev = read_json(ev_path, {})
    streams = data["streams"][run["data"]]
    ckpt = os.path.join(rdir, "model.ckpt")
    committed = ("streams" in ev and parse_log(os.path.join(rdir, "log.txt"))["final"] is not None
                 and not os.path.exists(ckpt))
    if args.plots_only or committed and streams_measured(rdir) == len(streams):
        return ev  # measured and committed, the checkpoint not kept: nothing to train again
    if committed:  # measured over fewer streams than the mode has: the same model trained again
        ckpt, _ = checkpoint_of(run, out, d, args)
    else:
        train(run, rdir, d, args)
    if "sinks" not in ev:
        ev["sinks"] = measure_sinks(run, rdir, d, args)
        write_json(ev_path, ev)
    if run["data"] == "bb" and (ev.get("gu", {}).get("chains") != MODES[args.mode]["gu_chains"]
                                or "sink_ratio_share" not in ev["gu"]):
        ev["gu"] = measure_gu(run, rdir, d, args, MODES[args.mode]["gu_chains"])
        write_json(ev_path, ev)
    if run["data"] == "bb":
        for W in sorted({16, run["w"]} if run["w"] < run["T"] else {16, run["T"]}):
            key = f"chunks_W{W}"
            if key not in ev:
                ev[key] = measure_chunks(run, rdir, d, args, W)
                write_json(ev_path, ev)
    cache = measure_streams(run, rdir, ckpt, d, streams, args)
    optimal = None
    if run["data"] == "bb":
        S = MODES[args.mode]["stream_len"]
        per_stream = [bb_optimal_losses(read_tokens(s)[:-1], d["meta"])[:S] for s in data["streams"]["bb"]]
        optimal = np.mean(per_stream, axis=0)
    ev["streams"] = summarise_streams(run, cache, optimal)
    if run["data"] == "bb":  # the optimum of the bigram targets (copy targets: 0)
        trig = d["meta"]["trigger_bytes"]
        for W in run["stream_windows"]:
            v = [o[W:][~np.isin(read_tokens(s)[:-1][W - 1:S - 1], trig)] for o, s in zip(per_stream, data["streams"]["bb"])]
            ev["streams"][f"optimal_bigram_ge_W{W}"] = float(np.concatenate(v).mean())
    write_json(ev_path, ev)
    say(f"[{run['name']}] measured: {ev['sinks']['sink_heads']} of {run['L'] * run['H']} sink heads (all queries)"
        + (f", non-trigger sink ratio {ev['gu']['sink_ratio']:.2f}" if "gu" in ev else ""))
    return ev


# ---------------------------------------------------------------------------------- ablations
# Issue 23, item 4: a sink, or position counting? Softmax models only, on the val chains as
# chunks of T (the start token at position 0, everything inside the training length). Each mode
# says which keys a query m sees and whether the start token's value counts:
#   window  keys m-W < n <= m: the start token is gone at m >= W (what a sliding window does)
#   keep    the same and key 0 (StreamingLLM; with RoPE at its true distance m, unlike
#           --keep-first, which counts positions within the cache)
#   key     the same and key 0, but its value zeroed for every query m >= 1: a value-free sink.
#           If the damage of `window` is the parked weight landing on real tokens, this repairs it;
#           if the model reads where it is from the start token's value, it does not
#   full / full-key  all keys n <= m, with the start token's value, and without it
# The value is zeroed in every layer, only in what other queries read (position 0's own stream
# stays as it is). Evaluated with dev/train_swat.py's weights and layers, checked against
# `train_swat --eval` on the unmodified model (full and window) before any number is kept.
ABLATIONS = (("window", False, False), ("keep", True, False), ("key", True, True), ("full", True, False),
             ("full-key", True, True))


def ablation_forward(ts, p, c, x, W, keep0, value0):
    """dev/train_swat.py's forward with the key mask and value of the ABLATIONS: (B, T, V) logits."""
    import torch
    import torch.nn.functional as F
    B, T = x.shape
    H, D = c.H, c.C // c.H
    m, n = torch.arange(T)[:, None], torch.arange(T)[None, :]
    seen = (n <= m) & ((m - n < W) | ((n == 0) & keep0))
    slope = torch.tensor(ts.alibi_slopes(c)).view(1, H, 1, 1)
    heads = lambda t: t.view(B, T, H, D).transpose(1, 2)
    h_ = p["wte"][x]
    for l in range(c.L):
        h = ts.rmsnorm(h_, p["attn_norm"][l])
        q, k, v = heads(h @ p["wq"][l].T), heads(h @ p["wk"][l].T), heads(h @ p["wv"][l].T)
        if c.rope:
            q, k = ts.rope(q, c.theta), ts.rope(k, c.theta)
        s = q @ k.transpose(-1, -2) / math.sqrt(D) + slope * (m - n).float()
        a = s.masked_fill(~seen, float("-inf")).softmax(-1)
        o = a @ v
        if value0:  # queries 1.. read nothing from the start token (its weight stays)
            o[:, :, 1:] -= a[:, :, 1:, :1] * v[:, :, :1]
        h_ = h_ + o.transpose(1, 2).reshape(B, T, c.C) @ p["wo"][l].T
        h = ts.rmsnorm(h_, p["mlp_norm"][l])
        h_ = h_ + (F.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)) @ p["w_down"][l].T
    return ts.rmsnorm(h_, p["final_norm"]) @ p["lm_head"].T


def measure_ablations(run, ckpt, data, args, W=16):
    """The ABLATIONS on all val chains: loss at positions 1..W-1 and >= W, and >= W split into
    bigram and copy targets (as the streams). Checked against the trainer first."""
    import torch
    import torch.nn.functional as F
    import train_swat as ts  # dev/train_swat.py: the PyTorch reference of the same model
    torch.set_num_threads(1)
    c, p, _ = ts.read_checkpoint(ckpt)
    T, meta = run["T"], data["meta"]
    val = torch.from_numpy(read_tokens(data["val"]).astype(np.int64))
    K = (len(val) - 1) // T
    x, y = ts.sequences(val[:K * T + 1], K, T, c.bos)
    trig = torch.from_numpy(np.isin(x.numpy(), meta["trigger_bytes"]))  # target i copies when input i is a trigger
    out = {}
    with torch.no_grad():
        for mode, keep0, value0 in ABLATIONS:
            Wm = T if mode.startswith("full") else W
            loss = torch.cat([F.cross_entropy(ablation_forward(ts, p, c, x[i:i + 64], Wm, keep0, value0).transpose(1, 2),
                                              y[i:i + 64], reduction="none") for i in range(0, K, 64)])
            ge, cp = loss[:, W:], trig[:, W:]
            out[mode] = dict(all=float(loss.mean()), lt_W=float(loss[:, 1:W].mean()), ge_W=float(ge.mean()),
                             bigram_ge=float(ge[~cp].mean()), copy_ge=float(ge[cp].mean()))
    for mode, Wm in (("window", W), ("full", T)):  # the same numbers as the trainer's, or stop
        cmd = [args.bin, "--init", ckpt, "--eval", data["val"], "--eval-len", T, "--eval-window", Wm, "--threads", 1]
        rc, text, err = call(cmd)
        ref = [float(l.split()[1]) for l in text.splitlines() if l.startswith("eval_loss")]
        if rc != 0 or not ref or abs(ref[0] - out[mode]["all"]) > 1e-4:
            fail(f"{run['name']}: the ablation's {mode} loss {out[mode]['all']:.6f} is not the trainer's "
                 f"{ref[:1]}", cmd, err + text)
        out[mode]["trainer"] = ref[0]
    return dict(out, W=W, chunks=K)


def ablation_optimum(data, T, W=16):
    """The Bayes-optimal loss of the val chains as measure_ablations reads them (chunks of T, the
    first character predicted from the start token), at positions >= W: all and bigram targets."""
    meta = data["meta"]
    val = read_tokens(data["val"])
    K = (len(val) - 1) // T
    chains = val[:K * T].reshape(K, T)
    opt = np.array([bb_optimal_losses(c, meta) for c in chains])[:, W:]
    copy = np.isin(chains[:, W - 1:T - 1], meta["trigger_bytes"])  # target i copies when token i-1 is a trigger
    return dict(ge_W=float(opt.mean()), bigram_ge=float(opt[~copy].mean()))


def checkpoint_of(run, out, data, args):
    """The run's checkpoint, for the ablations or for streams a committed run was not measured on.
    A committed run has none (checkpoints are not committed): it is trained again with the run's
    own settings into data/retrain/NAME (not committed), and kept only if its final val loss is
    the committed log's (the same trainer and seed give the same model)."""
    rdir = os.path.join(out, "runs", run["name"])
    if os.path.exists(os.path.join(rdir, "model.ckpt")):
        return os.path.join(rdir, "model.ckpt"), None
    log = parse_log(os.path.join(rdir, "log.txt"))
    if log["final"] is None:
        fail(f"{run['name']} has neither a checkpoint nor a finished log: train it first")
    again = os.path.join(REPO, "dev", "results", "sink", "data", "retrain", run["name"])
    train(run, again, data, args)
    final = parse_log(os.path.join(again, "log.txt"))["final"]
    if abs(final - log["final"]) > 1e-5:
        fail(f"{run['name']} trained again ends at val loss {final:.6f}, the committed log at {log['final']:.6f}: "
             "not the same model (another trainer?)")
    return os.path.join(again, "model.ckpt"), final


def ablate(run, out, data, args):
    """Issue 23's ablations of one Bigram-Backcopy softmax run, cached in its evals.json."""
    rdir = os.path.join(out, "runs", run["name"])
    ev_path = os.path.join(rdir, "evals.json")
    ev = read_json(ev_path, {})
    if "ablation" not in ev:
        ckpt, again = checkpoint_of(run, out, data["bb"], args)
        ev["ablation"] = dict(measure_ablations(run, ckpt, data["bb"], args), retrained=again is not None)
        write_json(ev_path, ev)
        say(f"[{run['name']}] ablations: " + ", ".join(f"{k} {v['ge_W']:.3f}" for k, v in ev["ablation"].items()
                                                      if isinstance(v, dict)))
    return ev


# ---------------------------------------------------------------------------------- report
def spread(values, fmt="{:.3f}"):
    """mean (min-max) over seeds; one seed: the value alone."""
    v = [x for x in values if x is not None and not (isinstance(x, float) and np.isnan(x))]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt.format(v[0])
    return fmt.format(np.mean(v)) + " (" + fmt.format(min(v)) + "-" + fmt.format(max(v)) + ")"


def groups_of(runs):
    g = {}
    for r in runs:
        g.setdefault(r["group"], []).append(r)
    return g


def bb_val_optimum(data, chains=None):
    """The Bayes-optimal loss on the val chains (chunks of 128 with the start token), or on the
    first `chains` of them (what the in-training validation, VAL_CHUNKS, is measured on)."""
    meta = data["bb"]["meta"]
    val = read_tokens(data["bb"]["val"])[:-1].reshape(-1, meta["length"])[:chains]
    return float(np.mean([bb_optimal_losses(c, meta).mean() for c in val]))


def table_rows_bb(groups, evals, data):
    md = []
    opt = bb_val_optimum(data)
    md += ["### Where the attention goes (val chains, the model's window)", "",
           f"val loss: all 512 val chains, chunks of 128 with the start token (Bayes optimum {opt:.4f}). "
           "Sink ratio: the fraction of a model's heads whose mean weight on the start token over "
           "non-trigger queries exceeds 0.3 (Gu et al.); bos weight: that mean weight, for the model's "
           "head with the most (non-trigger) and the same head's trigger queries; row sum: sigmoid rows are "
           "not normalised, so a dormant sigmoid head's total output weight (non-trigger queries, mean over heads); "
           "heads off: heads whose mean non-trigger row sum is below 0.05 (a sigmoid head that outputs almost "
           "nothing). --sinks: heads whose share (weight / row sum) on position 0 exceeds 0.3 over all queries "
           "among the heads that are on (mean row sum >= 0.05), the trainer's count (the runs of this table "
           "were counted before the row-sum rule; their saved per-head numbers were counted again with it, "
           "which took the switched-off heads of bb-swat-L2 out).", "",
           "| model | seeds | val loss | sink ratio (non-trigger) | bos weight, non-trigger (most) | "
           "same head, trigger | row sum (non-trigger) | heads off | --sinks heads |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for g, rs in groups.items():
        if rs[0]["data"] != "bb":
            continue
        ev = [evals[r["name"]] for r in rs if "gu" in evals.get(r["name"], {})]
        if not ev:
            continue
        best = [max(e["gu"]["heads"], key=lambda h: h["nontrigger_first"]) for e in ev]
        M = rs[0]["L"] * rs[0]["H"]
        md.append(f"| {g} | {len(ev)} | {spread([e['sinks']['val_loss'] for e in ev], '{:.4f}')} | "
                  f"{spread([e['gu']['sink_ratio'] for e in ev], '{:.2f}')} | "
                  f"{spread([b['nontrigger_first'] for b in best])} | {spread([b['trigger_first'] for b in best])} | "
                  f"{spread([np.mean([h['nontrigger_row_sum'] for h in e['gu']['heads']]) for e in ev])} | "
                  f"{spread([sum(h['nontrigger_row_sum'] < 0.05 for h in e['gu']['heads']) for e in ev], '{:.1f}')} of {M} | "
                  f"{spread([e['sinks']['sink_heads'] for e in ev], '{:.1f}')} of {M} |")
    return md


def largest_bos_weight(ev):
    """A Bigram-Backcopy model's sink: the largest weight a head puts on the start token at
    non-trigger queries (measure_gu)."""
    return max(h["nontrigger_first"] for h in ev["gu"]["heads"])


def heads_on(ev):
    """A model's heads (measure_sinks) that are on: a sigmoid head whose mean row sum is below
    0.05 is off (the trainer's rule), and its share on the start token is a ratio of two numbers
    near 0. Softmax rows sum to 1: every head is on."""
    return [h for h in ev["sinks"]["heads"] if h["row_sum"] >= 0.05]


def largest_share(ev):
    """A model's largest share (weight / row sum) on the start token over all queries, among
    the heads that are on."""
    return max(h["share"] for h in heads_on(ev))


def ranks(x):
    """1-based ranks of x, ties sharing their mean rank."""
    x = np.asarray(x, dtype=float)
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        r[x == v] = r[x == v].mean()
    return r


def spearman(a, b):
    """Spearman's rank correlation of a and b (nan where a is constant)."""
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1]) if np.ptp(a) > 0 else float("nan")


def table_follows(groups, evals):
    """Issue 23: does the damage of eviction follow the sink? Per Bigram-Backcopy softmax model
    whose start token leaves a window of 16 it did not train with, Spearman's rank correlation
    over its seeds between the sink (the largest non-trigger weight on the start token; the sink
    ratio) and the loss at positions >= 16 above the same seed's loss with the start token kept.
    Models without position encoding: with RoPE eviction costs nothing to rank."""
    md = ["### Does the damage follow the sink?", "",
          "Per seed: the largest non-trigger weight on the start token (32 val chains), and the damage of "
          "eviction: the streaming loss at positions >= 16 with a window of 16, minus the same with "
          "--keep-first 1. rho: Spearman's rank correlation over the seeds (1: the stronger the sink, "
          "the larger the damage).", "",
          "| model | seeds | weight, per seed | damage, per seed | rho (weight, damage) | rho (sink ratio, damage) |",
          "|---|--:|---|---|--:|--:|"]
    for g, rs in groups.items():
        ev = [evals[r["name"]] for r in rs if evals.get(r["name"], {}).get("gu") and "W16_ge_W" in
              evals[r["name"]].get("streams", {})]
        if rs[0]["data"] != "bb" or rs[0]["attn"] != "softmax" or rs[0]["rope"] == "on" or rs[0]["w"] <= 16 \
                or len(ev) < 3:
            continue
        weight = [largest_bos_weight(e) for e in ev]
        ratio = [e["gu"]["sink_ratio"] for e in ev]
        damage = [e["streams"]["W16_ge_W"] - e["streams"]["W16+keep1_ge_W"] for e in ev]
        md.append(f"| {g} | {len(ev)} | {', '.join(f'{v:.3f}' for v in weight)} | "
                  f"{', '.join(f'{v:.3f}' for v in damage)} | {spearman(weight, damage):.2f} | {spearman(ratio, damage):.2f} |")
    return md


FINISHED = "bb-softmax-nope-L2-10k"  # issue 23, item 3: the sink given time to finish forming


def first_within(val, optimum, margin=0.01):
    """The first step whose validation loss is within margin of optimum, or None."""
    return next((k for k in sorted(val) if val[k] - optimum < margin), None)


def table_finished(groups, evals, data, out):
    """Issue 23, item 3: per seed of the long runs, how close each came to the optimum, and the
    sink it has then."""
    rs = [r for r in groups.get(FINISHED, []) if evals.get(r["name"], {}).get("streams")]
    if not rs:
        return []
    opt, opt64 = bb_val_optimum(data), bb_val_optimum(data, VAL_CHUNKS)
    md = ["### Trained to the optimum (issue 23, item 3)", "",
          f"{FINISHED}: softmax without positions, {rs[0]['steps']} steps. Above the optimum: the final val "
          f"loss (512 chains) minus {opt:.4f}; within 0.01 from: the first validation during training (every "
          f"{max(1, rs[0]['steps'] // 20)} steps, the first {VAL_CHUNKS} chains, their optimum {opt64:.4f}) within 0.01 of it. "
          "Largest share: the trainer's `sink` line at the end (all queries); weight: the largest "
          "non-trigger weight on the start token; damage: window 16 minus window 16 with --keep-first 1, "
          "positions >= 16 of the streams. Figure: sink_finish.png.", "",
          "| run | above the optimum | within 0.01 from step | largest share | sink ratio | weight | damage |",
          "|---|--:|--:|--:|--:|--:|--:|"]
    for r in rs:
        e = evals[r["name"]]
        log = parse_log(os.path.join(out, "runs", r["name"], "log.txt"))
        md.append(f"| {r['name']} | {e['sinks']['val_loss'] - opt:.4f} | {first_within(log['val'], opt64) or '-'} | "
                  f"{max(log['sinks'][max(log['sinks'])]):.3f} | {e['gu']['sink_ratio']:.2f} | "
                  f"{largest_bos_weight(e):.3f} | "
                  f"{e['streams']['W16_ge_W'] - e['streams']['W16+keep1_ge_W']:.3f} |")
    return md


def table_streams(groups, evals, dataset, label):
    md = [f"### Streaming loss, {label}", "",
          "One stream = one long text with the start token once at its beginning. Loss (nats/token) at "
          "positions >= W, where the start token has left a window of W (mean over the streams; "
          "mean and spread over seeds). W+keep1: the same window with --keep-first 1. "
          "Full attention: --eval-window >= the text, at positions < T (the training length) and >= T.", "",
          "| model | W | window, pos < W | window, pos >= W | window + keep1, pos >= W | full, pos < T | full, pos >= T |"
          + (" optimum, pos >= W |" if dataset == "bb" else ""),
          "|---|--:|--:|--:|--:|--:|--:|" + ("--:|" if dataset == "bb" else "")]
    for g, rs in groups.items():
        if rs[0]["data"] != dataset:
            continue
        ev = [evals[r["name"]].get("streams", {}) for r in rs if evals.get(r["name"], {}).get("streams")]
        if not ev:
            continue
        for W in rs[0]["stream_windows"]:
            row = (f"| {g} | {W} | {spread([e.get(f'W{W}_lt_W') for e in ev])} | {spread([e.get(f'W{W}_ge_W') for e in ev])} | "
                   f"{spread([e.get(f'W{W}+keep1_ge_W') for e in ev])} | {spread([e.get('full_lt_T') for e in ev])} | "
                   f"{spread([e.get('full_ge_T') for e in ev])} |")
            if dataset == "bb":
                row += f" {spread([e.get(f'optimal_ge_W{W}') for e in ev])} |"
            md.append(row)
    return md


def table_split(groups, evals):
    md = ["### Where the streaming loss goes: dormant and active predictions", "",
          "The same streams, the loss split by the kind of target. Bigram targets (95% of the tokens): "
          "the token after a non-trigger, where the heads have nothing to fetch (dormant). Copy targets: "
          "the token after a trigger, a copy of the character before the trigger, which a head must fetch (active). "
          "Positions >= W (the start token is out of a window of W), for full attention >= T. "
          "Optimum: the Bayes-optimal loss of the bigram targets at positions >= W (copy targets: 0).", "",
          "| model | mode | bigram targets | copy targets | optimum, bigram |", "|---|---|--:|--:|--:|"]
    for g, rs in groups.items():
        if rs[0]["data"] != "bb":
            continue
        ev = [evals[r["name"]].get("streams", {}) for r in rs if evals.get(r["name"], {}).get("streams")]
        if not ev or "full_bigram_ge" not in ev[0]:
            continue
        for key, W, keep in stream_modes(rs[0], None):
            label = "full attention, pos >= T" if key == "full" else f"window {W}" + (" + keep first 1" if keep else "")
            opt = "" if key == "full" else spread([e.get(f"optimal_bigram_ge_W{W}") for e in ev])
            md.append(f"| {g} | {label} | {spread([e.get(f'{key}_bigram_ge') for e in ev])} | "
                      f"{spread([e.get(f'{key}_copy_ge') for e in ev])} | {opt} |")
    return md


def table_chunks(groups, evals):
    md = ["### Chunked evaluation of the val chains with a smaller window", "",
          "All 512 val chains as chunks of 128 (start token first), evaluated with window W: loss at "
          "positions 1..W-1 (the start token visible) and W..127 (not visible).", "",
          "| model | W | pos < W | pos >= W |", "|---|--:|--:|--:|"]
    for g, rs in groups.items():
        if rs[0]["data"] != "bb":
            continue
        ev = [evals.get(r["name"], {}) for r in rs]
        for key in sorted({k for e in ev for k in e if k.startswith("chunks_W")}, key=lambda k: int(k[8:])):
            vals = [e[key] for e in ev if key in e]
            md.append(f"| {g} | {vals[0]['W']} | {spread([v['lt_W'] for v in vals])} | {spread([v['ge_W'] for v in vals])} |")
    return md


def table_ablations(groups, evals):
    """Issue 23's ablations (measure_ablations), mean (min-max) over the seeds that have them."""
    md = ["### A sink or position counting? The start token's key without its value", "",
          "Softmax models, all 512 val chains as chunks of 128 (start token first; PyTorch, dev/train_swat.py's "
          "layers, checked against `train_swat --eval` on the unmodified model to 1e-4). Loss at positions >= 16 "
          "(and split into bigram and copy targets): window 16 (the start token gone), + keep (its key and value "
          "kept), + key (its key kept, its value zeroed in every layer: a value-free sink), full (all keys) and "
          "full with its value zeroed. A committed run without its checkpoint was trained again with its own "
          "settings and seed and used only if its final val loss equals the committed log's.", "",
          "| model | seeds | window 16 | + keep | + key, no value | full | full, no value | "
          "bigram: the same five | copy: the same five |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    modes = ("window", "keep", "key", "full", "full-key")
    for g, rs in groups.items():
        named = [(r["name"], evals[r["name"]]["ablation"]) for r in rs if "ablation" in evals.get(r["name"], {})]
        # each seed, then (with several) the mean (min-max) over them
        for label, ev in [(n, [e]) for n, e in named] + ([(g, [e for _, e in named])] if len(named) > 1 else []):
            col = lambda mode, k="ge_W": spread([e[mode][k] for e in ev])
            md.append(f"| {label} | {len(ev)} | {col('window')} | {col('keep')} | {col('key')} | {col('full')} | "
                      f"{col('full-key')} | " + " / ".join(col(m, 'bigram_ge') for m in modes) + " | "
                      + " / ".join(col(m, 'copy_ge') for m in modes) + " |")
    return md


def table_seeds(runs, evals):
    """Every seed of every model: the numbers the other tables give as mean (min-max)."""
    md = ["## Every seed", "",
          "Bigram-Backcopy: val loss (chunks of 128); sink ratio and the largest non-trigger weight on the start "
          "token (32 val chains); streaming loss at positions >= 16 with a window of 16, without and with "
          "--keep-first 1, in all and in bigram / copy targets. The Bible: val loss, the largest --sinks share, "
          "streaming loss at positions >= 32 with a window of 32, without and with --keep-first 1.", "",
          "| run | val loss | sink ratio | largest bos weight | streams | window, pos >= W | + keep1 | "
          "bigram: window / keep1 | copy: window / keep1 |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    f = lambda v, fmt="{:.3f}": "-" if v is None else fmt.format(v)
    for r in runs:
        e = evals.get(r["name"], {})
        if "streams" not in e:
            continue
        st, W = e["streams"], r["stream_windows"][0]
        if r["data"] == "bb":
            gu = e.get("gu", {})
            big = largest_bos_weight(e) if gu else None
            md.append(f"| {r['name']} | {f(e['sinks']['val_loss'], '{:.4f}')} | {f(gu.get('sink_ratio'), '{:.2f}')} | "
                      f"{f(big)} | {e.get('stream_count', '-')} | {f(st.get(f'W{W}_ge_W'))} | {f(st.get(f'W{W}+keep1_ge_W'))} | "
                      f"{f(st.get(f'W{W}_bigram_ge'))} / {f(st.get(f'W{W}+keep1_bigram_ge'))} | "
                      f"{f(st.get(f'W{W}_copy_ge'))} / {f(st.get(f'W{W}+keep1_copy_ge'))} |")
        else:
            md.append(f"| {r['name']} | {f(e['sinks']['val_loss'], '{:.4f}')} | - | {f(largest_share(e))} (share) | "
                      f"{e.get('stream_count', '-')} | {f(st.get(f'W{W}_ge_W'))} | {f(st.get(f'W{W}+keep1_ge_W'))} | - | - |")
    return md


def table_heads(groups, evals, dataset):
    md = ["### Per head (mean over seeds)", ""]
    if dataset == "bb":
        md += ["| model | layer | head | bos weight, non-trigger | bos weight, trigger | row sum, non-trigger | row sum, trigger |",
               "|---|--:|--:|--:|--:|--:|--:|"]
    else:
        md += ["| model | layer | head | first (weight on the start token) | row sum | share |", "|---|--:|--:|--:|--:|--:|"]
    for g, rs in groups.items():
        if rs[0]["data"] != dataset:
            continue
        ev = [evals.get(r["name"], {}) for r in rs]
        key = "gu" if dataset == "bb" else "sinks"
        ev = [e for e in ev if key in e]
        if not ev:
            continue
        for i, h in enumerate(ev[0][key]["heads"]):
            col = lambda k: np.mean([e[key]["heads"][i][k] for e in ev])
            if dataset == "bb":
                md.append(f"| {g} | {h['layer']} | {h['head']} | {col('nontrigger_first'):.3f} | {col('trigger_first'):.3f} | "
                          f"{col('nontrigger_row_sum'):.3f} | {col('trigger_row_sum'):.3f} |")
            else:
                md.append(f"| {g} | {h['layer']} | {h['head']} | {col('first'):.3f} | {col('row_sum'):.3f} | {col('share'):.3f} |")
    return md


def table_bible(groups, evals):
    md = ["### Where the attention goes (Bible val, chunks of T, the model's window)", "",
          "first / row sum / share as printed by `train_swat --sinks`, for the head with the largest share "
          "among those that are on (row sum >= 0.05); "
          "sink heads: share > 0.3 among heads with a row sum >= 0.05.", "",
          "| model | seeds | val loss | sink heads | largest share | its first | its row sum |", "|---|--:|--:|--:|--:|--:|--:|"]
    for g, rs in groups.items():
        if rs[0]["data"] != "bible":
            continue
        ev = [evals[r["name"]] for r in rs if "sinks" in evals.get(r["name"], {})]
        if not ev:
            continue
        best = [max(heads_on(e), key=lambda h: h["share"]) for e in ev]
        md.append(f"| {g} | {len(ev)} | {spread([e['sinks']['val_loss'] for e in ev], '{:.4f}')} | "
                  f"{spread([e['sinks']['sink_heads'] for e in ev], '{:.1f}')} of {rs[0]['L'] * rs[0]['H']} | "
                  f"{spread([b['share'] for b in best])} | {spread([b['first'] for b in best])} | {spread([b['row_sum'] for b in best])} |")
    return md


# ---------------------------------------------------------------------------------- the chapter
# doc/sink.md's tables are made here from results.json, and `--check-chapter` (tests/sink_chapter.sh,
# in make test) checks that the chapter holds them as made: a table follows its marker
# <!-- sink-table: NAME --> line for line, and no other table is in the chapter.
CHAPTER_GROUPS = {
    "bb": [("bb-softmax-nope-L2", "softmax, no positions, dense (w = T = 128)"),
           ("bb-sliding-nope-L2", "softmax, no positions, sliding (w = 16)"),
           ("bb-softmax-rope-L2", "softmax, RoPE, dense (w = T = 128)"),
           ("bb-sliding-rope-L2", "softmax, RoPE, sliding (w = 16)"),
           ("bb-swat-L2", "SWAT (w = 16)")],
    "bb-more": [("bb-softmax-nope-L2-6k", "softmax, no positions, dense, 6000 steps"),
                (FINISHED, "softmax, no positions, dense, 10000 steps"),
                ("bb-softmax-nope-L3", "softmax, no positions, dense, 3 layers"),
                ("bb-swat-L3", "SWAT (w = 16), 3 layers")],
    "bible": [("bible-softmax-rope", "softmax, RoPE, dense (w = T = 128)"),
              ("bible-softmax-nope", "softmax, no positions, dense (w = T = 128)"),
              ("bible-sliding-rope", "softmax, RoPE, sliding (w = 32)"),
              ("bible-swat", "SWAT (w = 32)"),
              ("bible-deep-softmax-rope", "softmax, RoPE, dense, 6 layers x 8 heads (w = T = 256)"),
              ("bible-deep-swat", "SWAT (w = 32), 6 layers x 8 heads, T = 256")],
}


def ev_any(groups):
    """The ablation results of some run (their optimum is the same for every run), or {}."""
    return next((r["evals"]["ablation"] for rs in groups.values() for r in rs if "ablation" in r["evals"]), {})


def chapter_tables(results):
    """{name: markdown lines} of doc/sink.md's tables from results.json's {run: {settings, evals}};
    a group without measured runs is left out."""
    groups = {}
    for r in results.values():
        if r["evals"].get("streams"):
            groups.setdefault(r["settings"]["group"], []).append(r)
    tables = {}
    for name in ("bb", "bb-more"):
        md = ["| model | seeds | val loss (optimum 2.2948) | sink ratio | largest weight on the start token "
              "(non-trigger) | window 16, pos < 16 | window 16, pos >= 16 | + keep first 1, pos >= 16 |",
              "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for g, label in CHAPTER_GROUPS[name]:
            ev = [r["evals"] for r in groups.get(g, [])]
            if not ev:
                continue
            big = [largest_bos_weight(e) for e in ev]
            md.append(f"| {label} | {len(ev)} | {spread([e['sinks']['val_loss'] for e in ev], '{:.4f}')} | "
                      f"{spread([e['gu']['sink_ratio'] for e in ev], '{:.2f}')} | {spread(big)} | "
                      f"{spread([e['streams']['W16_lt_W'] for e in ev])} | {spread([e['streams']['W16_ge_W'] for e in ev])} | "
                      f"{spread([e['streams']['W16+keep1_ge_W'] for e in ev])} |")
        tables[name] = md
    md = ["| model | seeds | the start token at positions >= 16 | all targets | bigram targets | copy targets |",
          "|---|--:|---|--:|--:|--:|"]
    modes = (("window", "evicted (window 16)"), ("keep", "kept, key and value"), ("key", "key kept, value zeroed"),
             ("full", "all keys (full attention)"), ("full-key", "all keys, its value zeroed"))
    for g, label in CHAPTER_GROUPS["bb"] + CHAPTER_GROUPS["bb-more"]:
        ev = [r["evals"]["ablation"] for r in groups.get(g, []) if "ablation" in r["evals"]]
        for mode, what in modes if ev else ():
            md.append(f"| {label} | {len(ev)} | {what} | {spread([e[mode]['ge_W'] for e in ev])} | "
                      f"{spread([e[mode]['bigram_ge'] for e in ev])} | {spread([e[mode]['copy_ge'] for e in ev])} |")
    if len(md) > 2 and "optimum" in ev_any(groups):
        o = ev_any(groups)["optimum"]
        md.append(f"| Bayes optimum | | | {o['ge_W']:.3f} | {o['bigram_ge']:.3f} | 0 |")
    tables["ablation"] = md
    md = ["| model | seeds | streams | val loss | largest share on the start token | window 32, pos >= 32 | "
          "+ keep first 1, pos >= 32 |", "|---|--:|--:|--:|--:|--:|--:|"]
    for g, label in CHAPTER_GROUPS["bible"]:
        ev = [r["evals"] for r in groups.get(g, [])]
        if ev:
            md.append(f"| {label} | {len(ev)} | {stream_counts(ev)} | "
                      f"{spread([e['sinks']['val_loss'] for e in ev], '{:.4f}')} | "
                      f"{spread([largest_share(e) for e in ev])} | "
                      f"{spread([e['streams']['W32_ge_W'] for e in ev])} | {spread([e['streams']['W32+keep1_ge_W'] for e in ev])} |")
    tables["bible"] = md
    return tables


def stream_counts(evs):
    """"32", or "8 (2 seeds), 32 (3)" where the seeds of a model were measured on different streams."""
    counts = [e.get("stream_count") for e in evs]
    kinds = sorted(set(counts), key=lambda c: c or 0)
    if len(kinds) == 1:
        return str(kinds[0] or "-")
    return ", ".join(f"{c or '-'} ({counts.count(c)}{' seeds' if i == 0 else ''})" for i, c in enumerate(kinds))


def check_chapter(results_path, chapter_path):
    """Prints "ok - ..." / "FAIL - ..." per table of the chapter, then "N passed, M failed";
    returns the number failed."""
    results = read_json(results_path, None)
    if results is None:
        print(f"FAIL - {results_path} is missing or not JSON\n0 passed, 1 failed")
        return 1
    tables = chapter_tables(results)
    lines = open(chapter_path).read().splitlines()
    passed = failed = 0
    marked = set()
    for i, line in enumerate(lines):
        if not (line.startswith("<!-- sink-table: ") and line.endswith(" -->")):
            continue
        name = line[len("<!-- sink-table: "):-4]
        have = []
        for j in range(i + 1, len(lines)):
            if not lines[j].startswith("|"):
                break
            have.append(lines[j])
            marked.add(j)
        want = tables.get(name)
        if want is not None and have == want:
            passed += 1
            print(f"ok - {chapter_path}'s table {name}: {len(have) - 2} rows, every number as {results_path} gives it")
        else:
            failed += 1
            diff = next((f"chapter: {a}\n  results: {b}" for a, b in zip(have, want or []) if a != b),
                        f"{len(have)} lines, results give {len(want) if want else 'no such table'}")
            print(f"FAIL - {chapter_path}'s table {name} is not what {results_path} gives:\n  {diff}")
    rows = [j for j, l in enumerate(lines) if l.startswith("|") and j not in marked]
    if rows or not marked:
        failed += 1
        print(f"FAIL - {chapter_path}: tables without a sink-table marker (line {rows[0] + 1 if rows else '-'}), "
              f"or no marked table at all")
    else:
        passed += 1
        print(f"ok - every table of {chapter_path} is marked and checked ({len(marked)} lines)")
    print(f"{passed} passed, {failed} failed")
    return failed


def log_binned(x, bins=48):
    """Mean of x over bins of positions whose width grows with the position (about `bins`
    bins from position 1 to the end): single positions at the start, where the window edge
    is, and long averages later. Returns the bins' mean positions and means."""
    edges = np.unique(np.round(np.geomspace(1, len(x), bins + 1)).astype(int))
    pos = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    return np.array(pos), np.array([x[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])


MODE_STYLE = {"full": dict(color="#444444", ls=":", lw=1.5), "W": dict(color="#d62728", lw=1.6),
              "keep": dict(color="#1f77b4", lw=1.6, ls="--")}


def panel_order(g):
    """softmax without positions first (where the sink forms), then softmax with RoPE, then SWAT"""
    return (0 if "nope" in g else 1 if "rope" in g else 2, g)


def plot_streams(groups, out, dataset, path, title, smooth, shared=True):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted([(g, rs) for g, rs in groups.items() if rs[0]["data"] == dataset], key=lambda p: panel_order(p[0]))
    panels = [(g, rs) for g, rs in panels if all(os.path.exists(os.path.join(out, "runs", r["name"], "streams.json")) for r in rs)]
    if not panels:
        return
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axs = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    opt = None
    for i, (g, rs) in enumerate(panels):
        ax = axs[i // ncols][i % ncols]
        caches = [read_json(os.path.join(out, "runs", r["name"], "streams.json"), {}) for r in rs]
        if dataset == "bb" and opt is None:
            opt = np.mean([bb_optimal_losses(read_tokens(s)[:-1], read_json(os.path.join(
                REPO, "dev", "results", "sink", "data", "backcopy", "meta.json"), None))
                for s in sorted(p for p in (os.path.join(out, "streams", f) for f in os.listdir(os.path.join(out, "streams")))
                                if os.path.basename(p).startswith("bb_"))], axis=0)
        for key, W, keep in stream_modes(rs[0], None):
            curves = [np.array(c[key]["mean"]) for c in caches if key in c]
            if not curves:
                continue
            S = min(len(c) for c in curves)
            mean = np.mean([c[:S] for c in curves], axis=0)
            if opt is not None:  # the same streams: subtracting the optimum removes their shared noise
                mean = mean - opt[:S]
            x, y = log_binned(mean, smooth)
            st = MODE_STYLE["full" if key == "full" else "keep" if keep else "W"]
            if key != "full" and len(rs[0]["stream_windows"]) > 1 and W != rs[0]["stream_windows"][0]:
                st = dict(st, alpha=0.45)
            label = "full attention" if key == "full" else f"window {W}" + (" + keep first 1" if keep else "")
            ax.plot(x, y, label=label, **st)
            if key != "full" and not keep:
                ax.axvline(W, color=st["color"], alpha=0.25, lw=1)
        if opt is not None:
            ax.axhline(0, color="#2ca02c", lw=1, alpha=0.7, label="Bayes optimum")
        ax.axvline(rs[0]["T"], color="k", alpha=0.15, lw=4)
        ax.set_xscale("log")
        ylabel = "loss - Bayes optimum (nats/token)" if opt is not None else "loss (nats/token)"
        ax.set(title=f"{g} ({len(caches)} seed{'s' if len(caches) > 1 else ''})", xlabel="position in the stream",
               ylabel=ylabel if i % ncols == 0 else None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left")
    # one scale for all panels, set by the windowed modes; full attention of a SWAT model (sigmoid
    # rows over keys it never saw in training) is far above it: the axis is cut and the text says so
    used = [axs[i // ncols][i % ncols] for i in range(len(panels))]
    for scope in ([used] if shared else [[ax] for ax in used]):  # one scale for all panels, or one each
        windowed = [l.get_ydata() for ax in scope for l in ax.get_lines()
                    if l.get_label() not in ("full attention", "Bayes optimum") and len(l.get_ydata()) > 2]
        if not windowed:
            continue
        lo = min(min(np.min(y) for y in windowed), 0.0 if opt is not None else np.inf)
        hi = max(np.max(y) for y in windowed)
        top = hi + 0.15 * (hi - lo) + 0.02
        for ax in scope:
            full = [l for l in ax.get_lines() if l.get_label() == "full attention"]
            if full and np.max(full[0].get_ydata()) > top:
                ax.text(0.02, 0.97, f"full attention: up to {np.max(full[0].get_ydata()):.2f}, off the scale",
                        transform=ax.transAxes, fontsize=7, va="top", color="#444444")
            ax.set_ylim(lo - 0.05 * (hi - lo) - 0.02, top)
    for j in range(len(panels), nrows * ncols):
        axs[j // ncols][j % ncols].axis("off")
    fig.suptitle(title + " (mean over streams and seeds, in bins that widen with the position; thin vertical "
                 "lines: the windows; grey band: the training length T" + ("" if shared else "; each panel its own scale")
                 + ")", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_split(groups, evals, path, W=16):
    """Bigram-Backcopy, positions >= W: the loss above the optimum of the bigram (dormant) and copy
    (active) targets, with the window alone and with the start token kept."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = []
    for g, rs in sorted(groups.items(), key=lambda p: panel_order(p[0])):
        ev = [evals[r["name"]].get("streams", {}) for r in rs if evals.get(r["name"], {}).get("streams")]
        if rs[0]["data"] != "bb" or not ev or f"W{W}_bigram_ge" not in ev[0]:
            continue
        opt = np.mean([e[f"optimal_bigram_ge_W{W}"] for e in ev])
        vals = {(m, k): [e[f"{m}_{k}_ge"] - (opt if k == "bigram" else 0.0) for e in ev]
                for m in (f"W{W}", f"W{W}+keep1") for k in ("bigram", "copy")}
        rows.append((g, vals))
    if not rows:
        return
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, kind, what in zip(axs, ("bigram", "copy"), ("bigram targets (heads dormant): loss - optimum",
                                                          "copy targets (a head must fetch): loss (optimum 0)")):
        x = np.arange(len(rows))
        for j, (m, label, color) in enumerate(((f"W{W}", f"window {W}", "#d62728"),
                                                (f"W{W}+keep1", f"window {W} + keep first 1", "#1f77b4"))):
            v = [r[1][(m, kind)] for r in rows]
            ax.bar(x + (j - 0.5) * 0.38, [np.mean(a) for a in v], 0.38, color=color, alpha=0.8, label=label)
            for i, a in enumerate(v):  # every seed as a dot
                ax.plot([x[i] + (j - 0.5) * 0.38] * len(a), a, "k.", ms=4)
        ax.set_xticks(x)
        ax.set_xticklabels([r[0].replace("bb-", "") for r in rows], fontsize=7, rotation=15)
        ax.set(title=f"{what}, positions >= {W}", ylabel="nats/token")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.suptitle("Bigram-Backcopy streams: where the start token's eviction hurts (bars: mean over seeds, dots: seeds)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EVICTION_GROUPS = (("bb-softmax-nope-L2", "dense softmax, no positions", "#d62728", "-"),
                   ("bb-sliding-nope-L2", "sliding softmax (w = 16), no positions", "#ff9896", "-"),
                   ("bb-softmax-rope-L2", "dense softmax, RoPE", "#1f77b4", "--"),
                   ("bb-sliding-rope-L2", "sliding softmax (w = 16), RoPE", "#9ecae1", "--"),
                   ("bb-swat-L2", "SWAT (w = 16)", "#2ca02c", "-"))


def plot_eviction(groups, out, path, W=16, last=160):
    """Issue 23's figure: Bigram-Backcopy stream loss above the optimum against the position, as the
    start token leaves a window of 16, for dense softmax, sliding softmax and SWAT (two layers, 3000
    steps): window alone (left) and with --keep-first 1 (right). Lines: mean over seeds, band:
    their min-max, in bins of 8 positions after the window edge (single positions before it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sd = os.path.join(out, "streams")
    shards = sorted(os.path.join(sd, f) for f in os.listdir(sd) if f.startswith("bb_")) if os.path.isdir(sd) else []
    meta = read_json(os.path.join(REPO, "dev", "results", "sink", "data", "backcopy", "meta.json"), None)
    if not shards or meta is None:
        return
    opt = np.mean([bb_optimal_losses(read_tokens(s)[:-1], meta) for s in shards], axis=0)
    edges = list(range(1, W + 1)) + list(range(W + 8, last + 1, 8))
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    drawn = False
    for ax, key, what in zip(axs, (f"W{W}", f"W{W}+keep1"), (f"window {W}", f"window {W} + keep first 1")):
        for g, label, color, ls in EVICTION_GROUPS:
            caches = [read_json(os.path.join(out, "runs", r["name"], "streams.json"), {}) for r in groups.get(g, [])]
            curves = [np.array(c[key]["mean"]) - opt[:len(c[key]["mean"])] for c in caches if key in c]
            if not curves:
                continue
            binned = np.array([[c[a:b].mean() for a, b in zip(edges[:-1], edges[1:])] for c in curves])
            x = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
            ax.plot(x, binned.mean(0), color=color, ls=ls, lw=1.8, label=f"{label} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
            ax.fill_between(x, binned.min(0), binned.max(0), color=color, alpha=0.15, lw=0)
            drawn = True
        ax.axvline(W - 0.5, color="k", alpha=0.3, lw=1)
        ax.axhline(0, color="k", alpha=0.5, lw=0.8)
        ax.set(title=what, xlabel="position in the stream (the start token is at 0)",
               ylabel="loss - Bayes optimum (nats/token)" if key == f"W{W}" else None)
        ax.grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return
    axs[0].legend(fontsize=7)
    fig.suptitle(f"Bigram-Backcopy streams: the start token leaves the window at position {W} (thin line). "
                 "Mean over 32 streams, then over seeds (band: min-max over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_formation(groups, out, path):
    """The largest share on the start token over training (the trainer's `sink` log lines), for
    the softmax models, one thin line per seed and their mean. Sigmoid models are left out: a
    head that is off (row sum near 0) has a share of two numbers near 0 (see results.md)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = itertools.cycle(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                              "#17becf", "#bcbd22"])
    for ax, dataset in zip(axs, ("bb", "bible")):
        for g, rs in groups.items():
            if rs[0]["data"] != dataset or rs[0]["attn"] != "softmax":
                continue
            logs = [parse_log(os.path.join(out, "runs", r["name"], "log.txt"))["sinks"] for r in rs]
            logs = [l for l in logs if l]
            if not logs:
                continue
            c = next(colors)
            for l in logs:
                steps = sorted(l)
                ax.plot(steps, [max(l[k]) for k in steps], color=c, lw=0.8, alpha=0.45)
            steps = sorted(set.intersection(*[set(l) for l in logs]))
            ax.plot(steps, [np.mean([max(l[k]) for l in logs]) for k in steps], color=c, lw=2.2,
                    label=f"{g} (thin: each of {len(logs)} seeds)")
        ax.axhline(SINK_T, color="k", alpha=0.3, lw=1)
        ax.set(xlabel="training step", ylabel="largest share of a head on the start token", ylim=(0, 1.02),
               title=("Bigram-Backcopy" if dataset == "bb" else "The Bible") + ": softmax heads on the start token")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_finish(groups, data, out, path):
    """Issue 23, item 3: the long runs' validation loss above the optimum (left) and the largest
    share of a head on the start token (right) against the step, one colour per seed."""
    rs = groups.get(FINISHED, [])
    logs = [(r, parse_log(os.path.join(out, "runs", r["name"], "log.txt"))) for r in rs]
    logs = [(r, l) for r, l in logs if l["val"] and l["sinks"]]
    if not logs:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    opt64 = bb_val_optimum(data, VAL_CHUNKS)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.2))
    for r, log in logs:
        steps = sorted(log["val"])
        line, = ax0.plot(steps, [log["val"][k] - opt64 for k in steps], lw=1.5, label=f"seed {r['seed']}")
        steps = sorted(log["sinks"])
        ax1.plot(steps, [max(log["sinks"][k]) for k in steps], lw=1.5, color=line.get_color(),
                 label=f"seed {r['seed']}")
    ax0.axhline(0.01, color="k", alpha=0.4, lw=1)
    ax0.set(yscale="log", xlabel="training step", ylabel="val loss above the optimum (nats)",
            title="validation (first 64 chains) above their Bayes optimum; line: 0.01")
    ax1.axhline(SINK_T, color="k", alpha=0.3, lw=1)
    ax1.set(ylim=(0, 1.02), xlabel="training step", ylabel="largest share of a head on the start token",
            title=f"the sink (all queries; line: {SINK_T})")
    for ax in (ax0, ax1):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Bigram-Backcopy, softmax without positions, {logs[0][0]['steps']} steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_attention(pairs, args, path, title, npos=48, triggers=()):
    """For each (label, run, rdir, text, layers): every head of those layers over the first npos
    positions. Models side by side (layers as rows) when they show several layers, one model per
    row when each shows one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm
    one = all(len(p[4]) == 1 for p in pairs)
    H = max(p[1]["H"] for p in pairs)
    nrows, ncols = (len(pairs), H) if one else (max(len(p[4]) for p in pairs), sum(p[1]["H"] for p in pairs))
    fig, axs = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.5 * nrows + 0.5), squeeze=False)
    for ax in axs.flat:
        ax.axis("off")
    col0 = 0
    for i, (label, run, rdir, text, layers) in enumerate(pairs):
        for j, layer in enumerate(layers):
            d = dump_attention(args, os.path.join(rdir, "model.ckpt"), text, layer)
            A = d["weights"][:, :npos, :npos]
            for h in range(d["H"]):
                ax = axs[i][h] if one else axs[j][col0 + h]
                ax.axis("on")
                ax.imshow(A[h], cmap="magma", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
                ax.set_xticks([0, 16, 32])
                trig = [m for m in range(npos) if int(d["tokens"][m]) in triggers]
                if trig:  # the trigger queries, where the head has work: red ticks with their letter
                    ax.set_yticks(trig)
                    ax.set_yticklabels([chr(int(d["tokens"][m])) for m in trig], color="#d62728", fontsize=5)
                else:
                    ax.set_yticks([0, 16, 32])
                ax.tick_params(labelsize=6)
                ax.set_title(f"{label.rsplit('-s', 1)[0]} ({run['attn']})\nlayer {layer} head {h}", fontsize=7)
        col0 += run["H"]
    import textwrap
    fig.suptitle(textwrap.fill(title, int(ncols * 2.3 * 12)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(runs, evals, data, out, args):
    groups = groups_of(runs)
    md = ["# The attention sink at CPU scale (dev/sink.py)", "",
          f"`/usr/bin/python3 dev/sink.py --mode {args.mode}`. Every model has a start token "
          "(`--vocab 257 --bos 256`). Numbers are `mean (min-max)` over the seeds of a model. "
          "What they say, and what was tried before these settings: NOTES.md. Figures: bb_streams.png, "
          "bb_split.png, bb_attention.png, bible_streams.png, bible_attention.png, sink_formation.png, "
          "sink_finish.png.", "",
          "## Bigram-Backcopy", ""]
    md += table_rows_bb(groups, evals, data) + [""]
    md += table_streams(groups, evals, "bb", "Bigram-Backcopy") + [""]
    md += table_follows(groups, evals) + [""]
    finished = table_finished(groups, evals, data, out)
    md += finished + [""] * bool(finished)
    md += table_split(groups, evals) + [""]
    md += table_chunks(groups, evals) + [""]
    md += table_ablations(groups, evals) + [""]
    md += table_heads(groups, evals, "bb") + [""]
    md += ["## The Bible", ""] + table_bible(groups, evals) + [""]
    md += table_streams(groups, evals, "bible", "the Bible") + [""]
    md += table_heads(groups, evals, "bible") + [""]
    md += table_seeds(runs, evals) + [""]
    results = {r["name"]: dict(settings=r, evals=evals.get(r["name"], {})) for r in runs}
    md += ["## The chapter's tables", "", "doc/sink.md shows these, as `dev/sink.py --check-chapter` checks.", ""]
    for name, table in chapter_tables(results).items():
        md += [f"<!-- sink-table: {name} -->"] + table + [""]
    md += ["## Settings", "", "| run | data | attn | ALiBi | w | T | L | H | C | F | steps | lr | wd | seed |",
           "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        md.append(f"| {r['name']} | {r['data']} | {r['attn']} | {r['alibi']} | {r['w']} | {r['T']} | {r['L']} | {r['H']} | "
                  f"{r['C']} | {r['F']} | {r['steps']} | {r['lr']} | {r['wd']} | {r['seed']} |")
    md += ["", "Batches of 4096 tokens (32 x 128; T = 256: 16 x 256), warmup 50, AdamW defaults, shuffled chains.", ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    write_json(os.path.join(out, "results.json"), {r["name"]: dict(settings=r, evals=evals.get(r["name"], {})) for r in runs})
    print("\n".join(md))
    plot_streams(groups, out, "bb", os.path.join(out, "bb_streams.png"), "Bigram-Backcopy: streaming loss", 48)
    plot_streams(groups, out, "bible", os.path.join(out, "bible_streams.png"), "The Bible: streaming loss", 40, shared=False)
    plot_formation(groups, out, os.path.join(out, "sink_formation.png"))
    plot_finish(groups, data, out, os.path.join(out, "sink_finish.png"))
    plot_split(groups, evals, os.path.join(out, "bb_split.png"))
    plot_eviction(groups, out, os.path.join(out, "bb_eviction.png"))
    if args.plots_only and not os.path.exists(args.bin):
        return
    # attention maps: seed 1 of each two-layer Bigram-Backcopy model (every layer), and of each
    # Bible model (the layer holding its head with the largest share on the start token)
    for dataset, name in (("bb", "bb_attention.png"), ("bible", "bible_attention.png")):
        pairs, missing = [], []
        for g, rs in sorted(groups.items(), key=lambda p: panel_order(p[0])):
            r = rs[0]
            if r["data"] != dataset or (dataset == "bb" and r["L"] != 2):
                continue
            if not os.path.exists(os.path.join(out, "runs", r["name"], "model.ckpt")):
                missing.append(r["name"])  # the figure needs every model (a partial one would
                continue                   # replace a committed figure of other models)
            val = read_tokens(data[dataset]["val"])
            text = bytes(val[:r["T"] - 1].astype(np.uint8))  # the first val chain / val text
            layers = list(range(r["L"]))
            if dataset == "bible" and "sinks" in evals.get(r["name"], {}):
                layers = [max(evals[r["name"]]["sinks"]["heads"], key=lambda h: h["share"])["layer"]]
            pairs.append((r["name"], r, os.path.join(out, "runs", r["name"]), text, layers))
        if missing:
            say(f"{name} not drawn (the committed one is kept): no checkpoint of {', '.join(missing)}")
        elif pairs:
            plot_attention(pairs, args, os.path.join(out, name),
                           ("Bigram-Backcopy" if dataset == "bb" else "The Bible") +
                           ": attention over the first 48 positions of a val sequence (position 0 = the start token; "
                           "row = query, column = key; colour 0..1 on a square-root scale"
                           + ("; red ticks: trigger queries" if dataset == "bb" else "") + ")",
                           triggers=set(data["bb"]["meta"]["trigger_bytes"]) if dataset == "bb" else set())


# ---------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--mode", choices=list(MODES), default="quick")
    ap.add_argument("--out", help="results directory (default dev/results/sink, quick: dev/results/sink/quick)")
    ap.add_argument("--bin", default="./train_swat")
    ap.add_argument("--only", help="comma-separated run names or groups (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (each uses --threads)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plots-only", action="store_true", help="tables and figures from existing results")
    ap.add_argument("--ablate", action="store_true",
                    help="also the start-token ablations of the Bigram-Backcopy softmax runs (issue 23; PyTorch; "
                         "a committed run without its checkpoint is trained again)")
    ap.add_argument("--check-chapter", nargs="?", const="doc/sink.md", metavar="CHAPTER",
                    help="check the tables of CHAPTER (default doc/sink.md) against dev/results/sink/results.json "
                         "(make test) and exit")
    args = ap.parse_args()
    if args.check_chapter:
        args.check_chapter = os.path.abspath(args.check_chapter)
    os.chdir(REPO)
    if args.check_chapter:
        sys.exit(1 if check_chapter(os.path.join("dev", "results", "sink", "results.json"), args.check_chapter) else 0)
    out = args.out or os.path.join("dev", "results", "sink", *([] if args.mode == "full" else [args.mode]))
    runs = every_run = MODES[args.mode]["runs"]
    if args.only:
        wanted = set(args.only.split(","))
        runs = [r for r in runs if r["name"] in wanted or r["group"] in wanted]
        if not runs:
            sys.exit("error: --only matches no run")
    t0 = time.time()
    if not args.plots_only:
        if not os.path.exists(args.bin):
            sys.exit(f"error: {args.bin} not found: build it with `make train_swat`")
        if not os.path.exists(BIBLE["train"]):
            sys.exit(f"error: {BIBLE['train']} not found: prepare the data with `make data`")
    os.makedirs(out, exist_ok=True)
    data = prepare_data(out, args.mode)
    evals = {}
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futures = {r["name"]: pool.submit(process, r, out, data, args) for r in runs}
        for name, f in futures.items():
            evals[name] = f.result()
        for r in runs if args.ablate and not args.plots_only else []:
            if r["data"] == "bb" and r["attn"] == "softmax":
                evals[r["name"]] = ablate(r, out, data, args)
    except (Failure, KeyboardInterrupt) as e:
        # start nothing new; the trainers already running got the same Ctrl-C (or finish) and save
        STOP.set()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(e, KeyboardInterrupt):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    pool.shutdown()
    # the tables cover every run of the mode that has been measured, not only those of --only
    for r in every_run:
        if r["name"] not in evals:
            evals[r["name"]] = read_json(os.path.join(out, "runs", r["name"], "evals.json"), {})
    for r in every_run:
        ab = evals[r["name"]].get("ablation")
        if ab is not None and "optimum" not in ab:  # the same for every model: no checkpoint needed
            ab["optimum"] = ablation_optimum(data["bb"], r["T"], ab["W"])
            write_json(os.path.join(out, "runs", r["name"], "evals.json"), evals[r["name"]])
    for r in every_run:  # over how many streams each run was measured (a column of the tables)
        if evals[r["name"]].get("streams"):
            evals[r["name"]]["stream_count"] = streams_measured(os.path.join(out, "runs", r["name"]))
    runs = [r for r in every_run if evals[r["name"]]]
    report(runs, evals, data, out, args)
    print(f"wrote {out}/results.md, results.json and the figures; total wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: the checkpoints are saved; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
