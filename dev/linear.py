"""
SWAT against a linear recurrent model at CPU scale (doc/linear.md): RetNet-style retention
(dev/retnet.py) beside the SWAT models of the paper chapter, in three experiments.

  lm          language modelling on the Bible bytes at equal parameters and tokens: swat and
              sliding-softmax-rope of dev/experiments.py (./train_swat, 4 layers, width 144, 6
              heads, w = 32, T = 256, 16 x 256 bytes a step) and retention of the same width,
              depth and heads, with the FFN narrowed to 336 so that the parameters are equal
              (1,070,352 each). Evaluated at E = 32 .. 2048 (SWAT with W = w) on the same
              validation bytes, and streamed over the whole val shard (SWAT: --stream, the last
              w keys; retention: its D x D state per head). States differ: SWAT 2*w*C = 9216
              floats per layer, retention C*D = 3456: equal parameters, not equal state.
  recall      the key recall of doc/recall.md (dev/recall.py's data, test set, steps, batch,
              learning rate and seeds 1, 2, 3) for a 2-layer retention model of width 64 (4
              heads, FFN 155: 64 more parameters per layer than SWAT's FFN 176, 0.1%); the SWAT
              and full-attention rows are the committed ones (dev/results/recall/seeds/).
              State per layer: retention 1024 floats, SWAT (w = 16) 2048, full attention
              2*128*64 = 16384 at the end of an example: equal parameters, not equal state.
  throughput  generation (one token at a time, batch 1) and streaming (blocks of 1024) per
              token in PyTorch, float32, one thread, for the LM models of both (random
              weights: speed does not depend on them), with the state each holds; the C
              trainer's generation and --stream of a swat model beside.

Usage:  /usr/bin/python3 dev/linear.py [--mode quick|full|tiny] [--out DIR] [--only lm,recall,...]
                                        [--jobs N]
        /usr/bin/python3 dev/linear.py --report-only [--out dev/results/retnet]
        /usr/bin/python3 dev/linear.py --check-doc        (doc/linear.md's tables == results.json)
Runs go to a fresh dev/results/retnet-<mode>-YYYYmmdd-HHMMSS unless --out is given; an existing
--out is resumed (finished runs are skipped). One training at a time on --threads threads, or
--jobs N at a time on one thread each.
At the end the new table is printed beside the committed one (dev/results/retnet).
"""
import argparse, json, math, os, re, subprocess, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runs import REPO, Failure, call, fail, fresh_dir, parse_log, read_json, write_json
import experiments as ex

COMMITTED = os.path.join("dev", "results", "retnet")
TRAIN, VAL = ex.TRAIN, ex.VAL
EVAL_LENS, WINDOW = ex.EVAL_LENS, ex.WINDOW
SWAT_RUNS = {r[0]: r for r in ex.RUNS if r[0] in ("swat", "sliding-softmax-rope")}
LM_MODELS = ["retention", "swat", "sliding-softmax-rope"]
RET_LM = ["--layers", "4", "--dim", "144", "--heads", "6", "--ffn", "336"]
RET_RECALL = ["--layers", "2", "--dim", "64", "--heads", "4", "--ffn", "155"]
RECALL_REF = os.path.join("dev", "results", "recall", "seeds")
RECALL_REF_STEPS = 8000  # the training steps of the committed recall runs in RECALL_REF
MODES = {
    "full": dict(seeds=[1337, 1338, 1339], steps=1500, warmup=40, eval_tokens=32768,
                 recall_seeds=[1, 2, 3], recall_steps=RECALL_REF_STEPS, gen_tokens=1000,
                 stream_tokens=32768, stream=True),
    "quick": dict(seeds=[1337], steps=40, warmup=8, eval_tokens=16384,
                  recall_seeds=[1], recall_steps=400, gen_tokens=300, stream_tokens=8192,
                  stream=True),
    "tiny": dict(seeds=[1337], steps=4, warmup=1, eval_tokens=2048, recall_seeds=[1],
                 recall_steps=20, gen_tokens=20, stream_tokens=2048, stream=False),
}


def py():
    return [sys.executable, os.path.join("dev", "retnet.py")]


def swat_flags(name, m, seed):
    _, attn, alibi, rope, T = SWAT_RUNS[name]
    return ["--train", TRAIN, "--val", VAL, "--steps", str(m["steps"]),
            "--warmup", str(m["warmup"]), "--batch", str(ex.TOKENS_PER_STEP // T),
            "--seq", str(T), "--window", str(WINDOW),
            *ex.MODEL, "--attn", attn, "--alibi", alibi, "--rope", rope, "--seed", str(seed)]


def ret_flags(m, seed):
    return ["--train", TRAIN, "--val", VAL, "--steps", str(m["steps"]),
            "--warmup", str(m["warmup"]), "--batch", str(ex.TOKENS_PER_STEP // 256),
            "--seq", "256", *RET_LM, "--seed", str(seed)]


def run(cmd, what):
    rc, out, err = call(cmd, want_stdout=True)
    if rc != 0:
        fail(f"{what} failed (exit {rc})", cmd, err + out)
    return out


def train_lm(name, seed, m, rdir, threads):
    """One LM training unless its log has final_val_loss (and its weights are there)."""
    log = os.path.join(rdir, "log.txt")
    weights = os.path.join(rdir, "model.pt" if name == "retention" else "model.ckpt")
    flags = ret_flags(m, seed) if name == "retention" else swat_flags(name, m, seed)
    os.makedirs(rdir, exist_ok=True)
    old = read_json(os.path.join(rdir, "run.json"), None)
    if old is not None and old != flags:
        fail(f"{rdir} was made with other settings; delete it or give another --out")
    if parse_log(log)["final"] is not None and os.path.exists(weights):
        return
    write_json(os.path.join(rdir, "run.json"), flags)
    every = ["--val-every", str(max(1, m["steps"] // 10)), "--val-chunks", "32"]
    if name == "retention":
        cmd = py() + flags + ["--out", rdir, "--threads", str(threads)] + every
    else:
        cmd = ["./train_swat", "--out", rdir, "--overwrite"] + flags + every + [
            "--sample-every", "0", "--threads", str(threads)]
    print(f"[{name} seed {seed}] training {m['steps']} steps", flush=True)
    t0 = time.time()
    run(cmd, f"training {name} seed {seed}")
    print(f"[{name} seed {seed}] done in {time.time() - t0:.0f} s, final val loss "
          f"{parse_log(log)['final']:.4f}", flush=True)


def eval_lm(name, rdir, key, E, tokens, threads):
    """eval_loss of one evaluation (E or 'stream'), cached in rdir/evals.json"""
    path = os.path.join(rdir, "evals.json")
    cache = read_json(path, {})
    if key in cache and cache[key]["tokens"] == tokens:
        return cache[key]["loss"]
    if name == "retention":
        cmd = py() + ["--init", os.path.join(rdir, "model.pt"), "--eval", VAL,
                      "--threads", str(threads)]
    else:
        cmd = ["./train_swat", "--init", os.path.join(rdir, "model.ckpt"), "--eval", VAL,
               "--threads", str(threads)]
    if E == "stream":
        cmd += ["--stream"]
    else:
        cmd += ["--eval-len", str(E), "--eval-chunks", str(tokens // E)]
        if name != "retention": cmd += ["--eval-window", str(WINDOW)]
    t0 = time.time()
    out = run(cmd, f"evaluating {rdir} {key}")
    loss = float(out.strip().splitlines()[-1].split()[1])
    cache[key] = dict(loss=loss, tokens=tokens, seconds=round(time.time() - t0, 1))
    write_json(path, cache)
    print(f"[{os.path.basename(rdir)}] {key}: {loss:.4f} ({time.time() - t0:.0f} s)", flush=True)
    return loss


def lm_dir(out, name, seed):
    return os.path.join(out, "runs", f"lm-{name}-seed{seed}")


def lm_row(name, seed, rdir, m):
    log = parse_log(os.path.join(rdir, "log.txt"))
    ev = read_json(os.path.join(rdir, "evals.json"), {})
    row = dict(model=name, seed=seed, steps=m["steps"], final_val_loss=log["final"],
               train_s=round(log["train_s"], 1))
    for E in EVAL_LENS:
        row[f"E{E}"] = ev.get(f"E={E}", {}).get("loss")
    row["stream"] = ev.get("stream", {}).get("loss")
    return row


# ----------------------------------------------------------------------------- recall

def recall_dirs(seed, m, out):
    """The recall data (made once) and this seed's run directory -> (ddir, meta, rdir)"""
    import recall as rc
    ddir = os.path.join(out, "recall-data")
    rc.make_data(ddir, "full" if m["recall_steps"] >= 100 else "tiny")
    return ddir, rc.load_meta(ddir), os.path.join(out, "runs", f"recall-retention-seed{seed}")


def train_recall(seed, m, out, threads):
    """One retention training on dev/recall.py's task unless its log is finished."""
    import recall as rc
    ddir, _, rdir = recall_dirs(seed, m, out)
    flags = (["--train", os.path.join(ddir, "train.bin"), "--val", os.path.join(ddir, "val.bin")]
             + RET_RECALL + ["--steps", str(m["recall_steps"]),
                             "--warmup", str(min(100, max(1, m["recall_steps"] // 10))),
                             "--lr", "3e-3", "--batch", "16", "--seq", str(rc.E),
                             "--seed", str(seed)])
    os.makedirs(rdir, exist_ok=True)
    old = read_json(os.path.join(rdir, "run.json"), None)
    if old is not None and old != flags:
        fail(f"{rdir} was made with other settings; delete it or give another --out")
    write_json(os.path.join(rdir, "run.json"), flags)
    if parse_log(os.path.join(rdir, "log.txt"))["final"] is None or not os.path.exists(
            os.path.join(rdir, "model.pt")):
        print(f"[recall retention seed {seed}] training {m['recall_steps']} steps", flush=True)
        t0 = time.time()
        run(py() + flags + ["--out", rdir, "--val-every", "500", "--threads", str(threads)],
            f"training recall retention seed {seed}")
        print(f"[recall retention seed {seed}] done in {time.time() - t0:.0f} s", flush=True)


def recall_retention(seed, m, out, threads):
    """Train retention on dev/recall.py's task and measure recall per distance as recall.py does
    (a key is recalled when the query symbol gets p > 0.5). -> rows (model, seed, d, n, acc, p)"""
    import recall as rc
    import retnet as rn
    import torch
    train_recall(seed, m, out, threads)
    ddir, meta, rdir = recall_dirs(seed, m, out)
    torch.set_num_threads(threads)
    c, p = rn.load_model(os.path.join(rdir, "model.pt"))
    shard = os.path.join(ddir, "test.bin")
    toks = rn.ts.read_shard(shard, c.V)
    dump = []
    rn.evaluate(p, c, toks, rc.E, 0, dump=dump)
    loss = torch.cat([d.reshape(-1, rc.E) for d in dump]).numpy()
    n, K, per_d = loss.shape[0], meta["key_len"], meta["test_examples"]
    x = toks.numpy()[: n * rc.E].reshape(n, rc.E)
    q = np.argmax(x == ord("?"), axis=1)
    prob = np.exp(-loss[np.arange(n)[:, None], q[:, None] + np.arange(K)])
    hit = (prob > 0.5).all(axis=1)
    return [dict(model="retention-L2", seed=seed, d=d, n=per_d,
                 acc=float(hit[i * per_d:(i + 1) * per_d].mean()),
                 p=float(prob[i * per_d:(i + 1) * per_d].mean()))
            for i, d in enumerate(meta["test_d"])]


def recall_val(out, m):
    """The validation loss of every recall model and seed at the last periodic validation of
    the retention run (every 500 steps on the first 64 val examples, as the committed SWAT
    runs did up to 8000), and every run's final one at step 8000 (all 1000 examples; for
    retention only when it trained 8000 steps too). -> rows (model, seed, step, loss)"""
    rows, step = [], (m["recall_steps"] - 1) // 500 * 500
    for s in m["recall_seeds"]:
        log = parse_log(os.path.join(out, "runs", f"recall-retention-seed{s}", "log.txt"))
        if step in log["val"]:
            rows.append(dict(model="retention-L2", seed=s, step=step, loss=log["val"][step]))
        if m["recall_steps"] == RECALL_REF_STEPS and log["final"] is not None:
            rows.append(dict(model="retention-L2", seed=s, step=RECALL_REF_STEPS,
                             loss=log["final"]))
        for name in ("swat-L4", "swat-L2", "full-L2"):
            d = os.path.join(RECALL_REF, name if s == 1 else f"{name}-seed{s}", "log.txt")
            val = parse_log(d)["val"]
            if step in val: rows.append(dict(model=name, seed=s, step=step, loss=val[step]))
            if RECALL_REF_STEPS in val:
                rows.append(dict(model=name, seed=s, step=RECALL_REF_STEPS,
                                 loss=val[RECALL_REF_STEPS]))
    return rows


def recall_reference():
    """The committed SWAT and full-attention rows of doc/recall.md, per seed."""
    path = os.path.join(RECALL_REF, "recall_seeds.csv")
    if not os.path.exists(path):
        fail(f"{path} is missing: the SWAT rows of the recall comparison come from it")
    import csv
    with open(path) as f:
        return [dict(model=r["model"], seed=int(r["seed"]), d=int(r["d"]), n=int(r["examples"]),
                     acc=float(r["recall"]), p=float(r["mean_symbol_prob"]))
                for r in csv.DictReader(f)]


# ----------------------------------------------------------------------------- throughput

def swat_block(p, c, idx, cache, start):
    """SWAT on positions start .. start+n-1 given cache[l] = (K, V) of the up to w-1 positions
    before, per layer (the whole state of a stream, spec section 11): -> logits (B, n, V);
    the cache is updated. A block of 1 token is a generation step."""
    import torch
    import retnet as rn
    ts = rn.ts
    B, n = idx.shape
    H, D, w = c.H, c.C // c.H, c.w
    slope = torch.tensor(ts.alibi_slopes(c), dtype=p["wte"].dtype).view(1, H, 1, 1)
    heads = lambda t: t.view(B, n, H, D).transpose(1, 2)
    x = p["wte"][idx]
    for l in range(c.L):
        h = ts.rmsnorm(x, p["attn_norm"][l])
        q, k, v = heads(h @ p["wq"][l].T), heads(h @ p["wk"][l].T), heads(h @ p["wv"][l].T)
        if c.rope:
            q, k = rn.rope_at(q, c.theta, start), rn.rope_at(k, c.theta, start)
        if cache[l] is not None:
            k, v = torch.cat((cache[l][0], k), 2), torch.cat((cache[l][1], v), 2)
        before = k.shape[2] - n
        dist = (torch.arange(start, start + n)[:, None]
                - torch.arange(start - before, start + n)[None, :])
        outside = (dist < 0) | (dist >= w)
        s = q @ k.transpose(-1, -2) / math.sqrt(D) + slope * dist.to(q.dtype)
        a = (s.masked_fill(outside, float("-inf")).softmax(-1) if c.softmax
             else torch.sigmoid(s).masked_fill(outside, 0.0))
        o = (a @ v).transpose(1, 2).reshape(B, n, c.C)
        keep = min(w - 1, k.shape[2])
        cache[l] = (k[:, :, k.shape[2] - keep:], v[:, :, v.shape[2] - keep:])
        x = x + o @ p["wo"][l].T
        h = ts.rmsnorm(x, p["mlp_norm"][l])
        mlp = torch.nn.functional.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)
        x = x + mlp @ p["w_down"][l].T
    return ts.rmsnorm(x, p["final_norm"]) @ p["lm_head"].T


def bench_models():
    """The LM models of both, random weights (speed does not depend on them)."""
    import retnet as rn
    ts = rn.ts
    sc = ts.Config(L=4, H=6, C=144, F=384, w=WINDOW, neg=3, pos=3)
    rc = rn.RetConfig(L=4, H=6, C=144, F=336)
    return [("swat", sc, ts.init_params_splitmix(sc, 1)), ("retention", rc, rn.init_params(rc, 1))]


def bench_one(name, c, p, tokens, gen_n, stream_n, block={"swat": 128, "retention": 1024}):
    """tokens/s of generation (one token at a time) and of streaming (blocks), and the floats
    of state held after the stream (all layers), in this process, float32, its threads."""
    import torch
    import retnet as rn
    step = ((lambda idx, st, t: swat_block(p, c, idx, st, t)) if name == "swat" else
            (lambda idx, st, t: rn.forward(p, c, idx,
                                           "recurrent" if idx.shape[1] == 1 else "chunked",
                                           256, st, t)))
    res = {}
    with torch.no_grad():
        for kind, n, b in (("generation", gen_n, 1), ("streaming", stream_n, block[name])):
            st = [None] * c.L
            step(tokens[None, :b], st, 0)          # warm-up, not timed
            st = [None] * c.L
            t0 = time.perf_counter()
            for s0 in range(0, n, b):
                step(tokens[None, s0:min(n, s0 + b)], st, s0)
            dt = time.perf_counter() - t0
            res[f"{kind}_tokens_per_s"] = round(n / dt, 1)
            held = sum(t.numel() for s in st for t in (s if isinstance(s, tuple) else (s,)))
            res["state_floats_held"] = held
    res["state_floats_per_layer"] = (rn.state_floats(c) if name == "retention"
                                     else rn.state_floats(rn.RetConfig(C=c.C, H=c.H), c.w))
    res["state_bytes_float32"] = 4 * c.L * res["state_floats_per_layer"]
    return res


def c_trainer_bench(out, m, threads):
    """The C trainer's generation and --stream tokens/s for the first swat LM run."""
    ckpt = os.path.join(out, "runs", f"lm-swat-seed{m['seeds'][0]}", "model.ckpt")
    if not os.path.exists(ckpt):
        return None
    t0 = time.time()
    rc, _, err = call(["./train_swat", "--init", ckpt, "--generate", str(m["gen_tokens"] * 4),
                       "--temperature", "0", "--threads", str(threads)], want_stdout=True)
    g = re.search(r"in ([\d.]+) s: ([\d.]+) tokens/s", err)
    t0 = time.time()
    rc2, out2, _ = call(["./train_swat", "--init", ckpt, "--eval", VAL, "--stream",
                         "--threads", str(threads)], want_stdout=True)
    dt = time.time() - t0
    n = os.path.getsize(VAL) // 2 - 512 - 1
    if rc or rc2 or not g:
        fail("the C trainer's generation or stream failed", None, err)
    return dict(generation_tokens_per_s=float(g.group(2)), streaming_tokens_per_s=round(n / dt, 1),
                stream_tokens=n)


def throughput(out, m, threads):
    import torch
    import retnet as rn
    torch.set_num_threads(threads)
    toks = rn.ts.read_shard(VAL, 256)[:max(m["gen_tokens"], m["stream_tokens"]) + 1]
    rows = []
    for name, c, p in bench_models():
        r = bench_one(name, c, p, toks, m["gen_tokens"], m["stream_tokens"])
        rows.append(dict(model=name, impl="pytorch", threads=threads, **r))
        print(f"[throughput] {name}: {r}", flush=True)
    cb = c_trainer_bench(out, m, threads)
    if cb: rows.append(dict(model="swat", impl="train_swat (C)", threads=threads, **cb))
    return rows


# ----------------------------------------------------------------------------- tables

def stats(values):
    v = np.array([x for x in values if x is not None], dtype=float)
    if len(v) == 0: return None
    return dict(mean=float(v.mean()), sd=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                min=float(v.min()), max=float(v.max()), n=int(len(v)))


def summarise(res):
    """The per-seed rows of results.json -> the means and spreads the tables show."""
    lm = {}
    for name in LM_MODELS:
        rows = [r for r in res["lm"]["per_seed"] if r["model"] == name]
        if rows:
            lm[name] = {k: stats([r[k] for r in rows])
                        for k in ["final_val_loss"] + [f"E{E}" for E in EVAL_LENS] + ["stream"]}
    rec = {}
    for r in res["recall"]["per_seed"]:
        rec.setdefault(r["model"], {}).setdefault(str(r["d"]), []).append(r["acc"])
    res["lm"]["summary"] = lm
    res["recall"]["summary"] = {m: {d: stats(v) for d, v in ds.items()} for m, ds in rec.items()}


def cell(s, digits=3):
    if s is None: return "–"
    if s["n"] == 1: return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


RECALL_MODELS = [("retention-L2", "retention, 2 layers"), ("swat-L4", "SWAT, 4 layers (reach 61)"),
                 ("swat-L2", "SWAT, 2 layers (reach 31)"), ("full-L2", "full attention, 2 layers")]
RECALL_SHOWN = [2, 8, 16, 24, 31, 40, 48, 56, 61, 64, 72, 96, 126]


def render(res):
    """{table name: lines}: what results.md holds and doc/linear.md copies (--check-doc)."""
    t = {}
    lm = res["lm"]["summary"]
    info = res["lm"]["models"]
    head = ("| model | parameters | state floats per layer | seeds | final val (E=256) | "
            + " | ".join(f"E={E}" for E in EVAL_LENS) + " | stream |")
    lines = [head, "|---|--:|--:|--:|" + "--:|" * (len(EVAL_LENS) + 2)]
    for name in LM_MODELS:
        if name not in lm: continue
        s = lm[name]
        keys = ["final_val_loss"] + [f"E{E}" for E in EVAL_LENS] + ["stream"]
        n = s["final_val_loss"]["n"] if s["final_val_loss"] else 0
        lines.append(f"| {name} | {info[name]['params']} | "
                     f"{info[name]['state_floats_per_layer']} | {n} | "
                     + " | ".join(cell(s[k]) for k in keys) + " |")
    t["lm"] = lines
    lines = ["| model | seed | steps | train s | final val | "
             + " | ".join(f"E={E}" for E in EVAL_LENS) + " | stream |",
             "|---|--:|--:|--:|--:|" + "--:|" * (len(EVAL_LENS) + 1)]
    f3 = lambda v: "–" if v is None else f"{v:.4f}"
    for r in res["lm"]["per_seed"]:
        lines.append(f"| {r['model']} | {r['seed']} | {r['steps']} | {r['train_s']:.0f} | "
                     f"{f3(r['final_val_loss'])} | "
                     + " | ".join(f3(r[f"E{E}"]) for E in EVAL_LENS) + f" | {f3(r['stream'])} |")
    t["lm_seeds"] = lines
    rec = res["recall"]["summary"]
    shown = [m for m in RECALL_MODELS if m[0] in rec]
    lines = ["| d | " + " | ".join(label for _, label in shown) + " |",
             "|--:|" + "--:|" * len(shown)]
    for d in RECALL_SHOWN:
        lines.append(f"| {d} | " + " | ".join(cell(rec[m].get(str(d)), 2) for m, _ in shown) + " |")
    t["recall"] = lines
    lines = ["| model | seed | " + " | ".join(f"d={d}" for d in RECALL_SHOWN) + " |",
             "|---|--:|" + "--:|" * len(RECALL_SHOWN)]
    by = {(r["model"], r["seed"], r["d"]): r["acc"] for r in res["recall"]["per_seed"]}
    for m, _ in shown:
        for seed in sorted({r["seed"] for r in res["recall"]["per_seed"] if r["model"] == m}):
            accs = ["–" if (m, seed, d) not in by else f"{by[m, seed, d]:.2f}"
                    for d in RECALL_SHOWN]
            lines.append(f"| {m} | {seed} | " + " | ".join(accs) + " |")
    t["recall_seeds"] = lines
    vals = res["recall"].get("val", [])
    steps = sorted({r["step"] for r in vals})
    lines = ["| model | " + " | ".join(f"val loss at step {st}" for st in steps) + " |",
             "|---|" + "--:|" * len(steps)]
    for m, _ in shown:
        cells = [cell(stats([r["loss"] for r in vals if r["model"] == m and r["step"] == st]), 4)
                 for st in steps]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    t["recall_val"] = lines
    lines = ["| model | implementation | threads | generation tokens/s | streaming tokens/s | "
             "state floats per layer | state bytes (4 layers) |", "|---|---|--:|--:|--:|--:|--:|"]
    for r in res.get("throughput", []):
        sf = r.get("state_floats_per_layer")
        lines.append(f"| {r['model']} | {r['impl']} | {r['threads']} | "
                     f"{r['generation_tokens_per_s']:.0f} | {r['streaming_tokens_per_s']:.0f} | "
                     f"{sf if sf else '–'} | "
                     f"{r['state_bytes_float32'] if sf else '–'} |")
    t["throughput"] = lines
    return t


def write_md(res, out):
    t = render(res)
    s = res["settings"]
    md = [f"# SWAT against retention: {s['mode']} mode", "",
          f"Language modelling, Bible bytes: {s['steps']} steps of {ex.TOKENS_PER_STEP} bytes per "
          f"model and seed (seeds {', '.join(map(str, s['seeds']))}), equal parameters; eval loss "
          f"in nats per byte on {s['eval_tokens']} validation bytes at each E (SWAT with W = w = "
          f"{WINDOW}), stream: the whole val shard as one sequence. Mean ± standard deviation "
          "across the seeds.", "",
          *t["lm"], "", "Per seed:", "", *t["lm_seeds"], "",
          f"Key recall (doc/recall.md's task) against the distance d: the fraction of the "
          f"{res['recall']['per_seed'][0]['n'] if res['recall']['per_seed'] else 0} test keys per "
          f"distance recalled, mean ± sd over the seeds. Retention: {s['recall_steps']} steps, "
          f"seeds "
          f"{', '.join(map(str, s['recall_seeds']))}; the SWAT and full-attention rows: "
          f"{RECALL_REF} ({RECALL_REF_STEPS} steps, seeds 1, 2, 3).", "", *t["recall"], "",
          "Per seed:", "",
          *t["recall_seeds"], "", "Validation loss of the recall models (mean ± sd over the "
          "seeds): at retention's last periodic validation (64 examples), and at step "
          f"{RECALL_REF_STEPS}, "
          "the runs' end (all 1000 validation examples; retention only when it trained as "
          "long):", "", *t["recall_val"], "",
          f"Generation (one token at a time, batch 1, {s['gen_tokens']} tokens) and streaming "
          f"({s['stream_tokens']} tokens in blocks: 1024 for retention, 128 for SWAT, whose blocks "
          "compute every score of block x (block + w)) per token, float32; the C trainer streams "
          "the whole val shard and generates 4x the tokens.", "", *t["throughput"], ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


def check_doc(path="doc/linear.md", results=os.path.join(COMMITTED, "results.json")):
    """Every table of results.md is in the chapter line for line. Prints ok/FAIL lines and
    "N passed, M failed"; -> exit status."""
    res = read_json(results, None)
    if res is None:
        print(f"FAIL - {results} is missing\n0 passed, 1 failed")
        return 1
    if not os.path.exists(path):
        print(f"FAIL - {path} is missing\n0 passed, 1 failed")
        return 1
    summarise(res)
    doc = open(path).read().splitlines()
    good = bad = 0
    for name, lines in render(res).items():
        at = [i for i, l in enumerate(doc) if l == lines[0]]
        same = len(at) == 1 and doc[at[0]:at[0] + len(lines)] == lines
        why = "" if same else f" ({'no single header' if len(at) != 1 else 'a row differs'})"
        print(f"{'ok' if same else 'FAIL'} - {path}'s table '{name}' equals the one rendered "
              f"from {results}{why}")
        good, bad = good + same, bad + (not same)
    nums = set(re.findall(r"\d+\.\d+", json.dumps(res))) | {f"{v:.3f}" for v in floats(res)} | \
        {f"{v:.2f}" for v in floats(res)} | {f"{v:.4f}" for v in floats(res)}
    text = "\n".join(l for l in doc if not l.startswith("|"))
    marked = re.findall(r"<!-- results: (.*?) -->", text)
    missing = [x for group in marked for x in group.split() if x not in nums]
    print(f"{'ok' if not missing else 'FAIL'} - the {sum(len(g.split()) for g in marked)} numbers "
          f"of the <!-- results: --> notes are in {results}"
          + (f"; not: {missing[:5]}" if missing else ""))
    good, bad = good + (not missing), bad + bool(missing)
    print(f"{good} passed, {bad} failed")
    return 1 if bad else 0


def floats(obj):
    if isinstance(obj, dict): return [x for v in obj.values() for x in floats(v)]
    if isinstance(obj, list): return [x for v in obj for x in floats(v)]
    return [float(obj)] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


# ----------------------------------------------------------------------------- plots

COLORS = {"retention": "#9467bd", "swat": "#d62728", "sliding-softmax-rope": "#ff7f0e",
          "retention-L2": "#9467bd", "swat-L4": "#d62728", "swat-L2": "#1f77b4",
          "full-L2": "#2ca02c"}


def plot(res, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: no plots: matplotlib is missing (sudo apt-get install python3-matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = EVAL_LENS + [2 * EVAL_LENS[-1] * 2]
    for name, s in res["lm"]["summary"].items():
        # the stream reads the whole val shard, the E columns its first bytes: not joined
        pts = [(x, s[f"E{E}"]) for x, E in zip(xs, EVAL_LENS) if s[f"E{E}"]]
        ax.plot([x for x, _ in pts], [v["mean"] for _, v in pts], marker="o", color=COLORS[name],
                label=f"{name} ({pts[0][1]['n']} seeds)")
        ax.fill_between([x for x, _ in pts], [v["min"] for _, v in pts], [v["max"] for _, v in pts],
                        color=COLORS[name], alpha=0.15, lw=0)
        if s["stream"]:
            st = s["stream"]
            ax.errorbar([xs[-1]], [st["mean"]], yerr=[[st["mean"] - st["min"]],
                        [st["max"] - st["mean"]]], marker="s", color=COLORS[name])
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(E) for E in EVAL_LENS] + ["stream\n(whole val shard)"])
    ax.set(xlabel="evaluation length E (bytes; first 32 K val bytes); SWAT with W = w = 32",
           ylabel="eval loss (nats/byte)",
           title="Bible bytes, equal parameters: mean over seeds, band lowest to highest")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "lm_vs_length.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    rec = res["recall"]["summary"]
    for m, label in RECALL_MODELS:
        if m not in rec: continue
        ds = sorted(int(d) for d in rec[m])
        st = [rec[m][str(d)] for d in ds]
        ax.plot(ds, [v["mean"] for v in st], marker="o", ms=3, color=COLORS[m],
                label=f"{label} ({st[0]['n']} seeds)")
        ax.fill_between(ds, [v["min"] for v in st], [v["max"] for v in st], color=COLORS[m],
                        alpha=0.15, lw=0)
    for x, c in ((16, "grey"), (31, COLORS["swat-L2"]), (61, COLORS["swat-L4"])):
        ax.axvline(x, color=c, ls="--", lw=1)
    ax.set(xlabel="distance d from key to query (bytes); dashed: window 16, reach 31 and 61",
           ylabel="recall (p > 0.5)", ylim=(-0.03, 1.05), xlim=(0, 128),
           title="Key recall against distance: mean over seeds, band lowest to highest")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "recall_vs_distance.png"), dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def train_all(out, m, parts, jobs):
    """Every training of the LM and recall parts, `jobs` at a time with one thread each (the
    evaluations and the throughput part then run alone)."""
    from concurrent.futures import ThreadPoolExecutor
    tasks = []
    if "lm" in parts:
        tasks += [(train_lm, (name, seed, m, lm_dir(out, name, seed), 1))
                  for seed in m["seeds"] for name in LM_MODELS]
    if "recall" in parts:
        recall_dirs(m["recall_seeds"][0], m, out)  # the data, made once before the pool starts
        tasks += [(train_recall, (s, m, out, 1)) for s in m["recall_seeds"]]
    with ThreadPoolExecutor(jobs) as pool:
        for f in [pool.submit(fn, *args) for fn, args in tasks]:
            f.result()


def collect(out, m, threads, parts):
    """Runs what is missing (one training at a time), seed by seed, so that a stopped run leaves
    whole seeds; -> results dict."""
    res = read_json(os.path.join(out, "results.json"), None) or {}
    lm_rows, rec_rows = [], []
    more = max(0, len(m["recall_seeds"]) - len(m["seeds"]))
    for i, seed in enumerate(m["seeds"] + [None] * more):
        if "lm" in parts and seed is not None:
            for name in LM_MODELS:
                rdir = lm_dir(out, name, seed)
                train_lm(name, seed, m, rdir, threads)
                for E in EVAL_LENS:
                    eval_lm(name, rdir, f"E={E}", E, m["eval_tokens"], threads)
                if m["stream"]: eval_lm(name, rdir, "stream", "stream", 0, threads)
                lm_rows.append(lm_row(name, seed, rdir, m))
        if "recall" in parts and i < len(m["recall_seeds"]):
            s = m["recall_seeds"][i]
            cache = os.path.join(out, "runs", f"recall-retention-seed{s}", "recall.json")
            rows = read_json(cache, None)
            if rows is None:
                rows = recall_retention(s, m, out, threads)
                write_json(cache, rows)
            rec_rows += rows
    if "lm" not in parts: lm_rows = res.get("lm", {}).get("per_seed", [])
    if "recall" not in parts:
        rec_rows = [r for r in res.get("recall", {}).get("per_seed", [])
                    if r["model"] == "retention-L2"]
    import retnet as rn
    info = {"retention": dict(params=rn.num_params(rn.RetConfig(L=4, H=6, C=144, F=336)),
                              state_floats_per_layer=144 * 24)}
    for name in SWAT_RUNS:
        info[name] = dict(params=rn.ts.num_params(rn.ts.Config(L=4, H=6, C=144, F=384)),
                          state_floats_per_layer=2 * WINDOW * 144)
    res["lm"] = dict(per_seed=lm_rows, models=info)
    res["recall"] = dict(per_seed=rec_rows + (recall_reference() if rec_rows else []))
    if "throughput" in parts:
        res["throughput"] = throughput(out, m, threads)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    ap.add_argument("--mode", choices=list(MODES), default="quick")
    ap.add_argument("--out", help="results directory (default: fresh dev/results/retnet-MODE-...)")
    ap.add_argument("--only", default="lm,recall,throughput", help="parts: lm,recall,throughput")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1,
                    help="trainings run this many at a time, one thread each (then the rest)")
    ap.add_argument("--report-only", action="store_true", help="tables and plots from results.json")
    ap.add_argument("--check-doc", action="store_true",
                    help="doc/linear.md's tables == results.json")
    ap.add_argument("--compare", default=COMMITTED, help="results printed beside ('none': none)")
    a = ap.parse_args()
    os.chdir(REPO)
    # OpenBLAS starts a thread per core whatever torch.set_num_threads says, and its idle
    # threads spin: beside a second training they take a core's time from it
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    if a.check_doc:
        sys.exit(check_doc())
    parts = a.only.split(",")
    if set(parts) - {"lm", "recall", "throughput"} or a.threads < 1 or a.jobs < 1:
        fail("--only takes lm, recall, throughput; --threads and --jobs must be >= 1")
    if a.report_only:
        out = a.out or COMMITTED
        res = read_json(os.path.join(out, "results.json"), None)
        if res is None: fail(f"{out}/results.json is missing")
    else:
        for f in ("./train_swat", TRAIN, VAL):
            if not os.path.exists(f):
                fail(f"{f} is missing: `make train_swat data` makes it")
        out = a.out or fresh_dir(os.path.join("dev", "results", f"retnet-{a.mode}"))
        if not os.path.exists(out):
            os.makedirs(out)
            with open(os.path.join(out, ".gitignore"), "w") as f:
                f.write("# made by dev/linear.py: weights and data stay local\n"
                        "*.ckpt\n*.pt\n*.tmp\nrecall-data/\n")
        print(f"results go to {out}; the same command with --out {out} continues it", flush=True)
        m = MODES[a.mode]
        t0 = time.time()
        if a.jobs > 1: train_all(out, m, parts, a.jobs)
        res = collect(out, m, a.threads, parts)
        res["settings"] = dict(mode=a.mode, **m, threads=a.threads, jobs=a.jobs,
                               command=" ".join(["/usr/bin/python3", "dev/linear.py"]
                                                + sys.argv[1:]),
                               wall_s=round(time.time() - t0))
    if "settings" in res and res["recall"]["per_seed"]:
        res["recall"]["val"] = recall_val(out, res["settings"])
    summarise(res)
    write_json(os.path.join(out, "results.json"), res)
    write_md(res, out)
    plot(res, out)
    ref = None if a.compare == "none" else read_json(os.path.join(a.compare, "results.json"), None)
    if ref is not None and os.path.abspath(a.compare) != os.path.abspath(out):
        summarise(ref)
        print(f"\nThe committed results ({a.compare}, {ref['settings']['mode']} mode) beside:\n")
        for name in ("lm", "recall"):
            print("\n".join(render(ref)[name]) + "\n")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        if e.detail: print(e.detail, file=sys.stderr)
        print(f"error: {e.msg}", file=sys.stderr)
        sys.exit(1)
