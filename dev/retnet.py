"""
A linear recurrent baseline for SWAT: RetNet's multi-scale retention (Sun et al. 2023) in the
Llama-style block of dev/train_swat.py (RMSNorm, SwiGLU, untied head), trained with the same
data, batch order, AdamW, schedule, clipping and log format (it imports them from there).

Retention, head h with fixed decay gamma_h = 1 - 2^(-5-h) (RetNet's family: memories of about
32, 64, ... 32*2^(H-1) tokens), q and k rotated by RoPE as in SWAT (RetNet's xPos rotation; the
decay takes the place of xPos's scale), k scaled by D^-1/2:
  parallel   o = ((q k^T) * Dm) v,  Dm[m, n] = gamma^(m-n) for n <= m, else 0   (training)
  recurrent  S_t = gamma S_{t-1} + k_t^T v_t,  o_t = q_t S_t      (generation and streaming)
  chunked    per chunk of c: the parallel form inside it plus q_i gamma^(i+1) S_before, and
             S_after = gamma^c S_before + sum_j gamma^(c-1-j) k_j^T v_j (long evaluations)
The state is one D x D matrix per head: H*D*D = C*D floats per layer, whatever the length;
SWAT's is the last w keys and values, 2*w*C floats per layer. Each head's output is divided by
its root mean square (RetNet's GroupNorm without the affine gain and without its score
normalisations, which it cancels), then gated by swish(x W_g) as RetNet does (--gate on).
With the gate the block has 5 C x C matrices to SWAT's 4; --ffn makes the parameters equal.

Run with /usr/bin/python3 (Debian's torch), e.g.
  /usr/bin/python3 dev/retnet.py --train data/bible/train.bin --val data/bible/val.bin --out out/ret
  /usr/bin/python3 dev/retnet.py --init out/ret/model.pt --eval data/bible/val.bin --eval-len 2048
  /usr/bin/python3 dev/retnet.py --init out/ret/model.pt --eval data/bible/val.bin --stream
OUTDIR gets log.txt in train_swat's format and model.pt (weights and config, torch.save; the
run itself keeps no optimizer state: a stopped run starts again).
"""
import argparse, functools, math, os, sys, time
from dataclasses import dataclass, asdict
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # dev/train_swat.py
import train_swat as ts
from train_swat import die, rmsnorm, loss_fn, lr_at, train_step, Loader, sequences

NO_DECAY = {"attn_norm", "mlp_norm", "final_norm"}
GN_EPS = 1e-6   # the per-head normalisation's epsilon


@dataclass
class RetConfig:
    V: int = 256; L: int = 4; H: int = 8; C: int = 256; F: int = 704
    gate: bool = True         # RetNet's swish gate on the retention output
    rope: bool = True
    theta: int = 10000
    bos: int = -1

    def check(self):
        if min(self.V, self.L, self.H, self.C, self.F) < 1: die("model sizes must be >= 1")
        if self.C % self.H: die(f"dim {self.C} is not a multiple of heads {self.H}")
        if self.rope and (self.C // self.H) % 2: die("RoPE needs an even head width")
        if not -1 <= self.bos < self.V: die(f"start token {self.bos} is not below {self.V}")


def param_shapes(c):
    V, L, C, Fh = c.V, c.L, c.C, c.F
    s = {"wte": (V, C), "attn_norm": (L, C), "wq": (L, C, C), "wk": (L, C, C), "wv": (L, C, C)}
    if c.gate: s["wg"] = (L, C, C)
    s.update({"wo": (L, C, C), "mlp_norm": (L, C), "w_gate": (L, Fh, C), "w_up": (L, Fh, C),
              "w_down": (L, C, Fh), "final_norm": (C,), "lm_head": (V, C)})
    return s


def num_params(c):
    return sum(math.prod(s) for s in param_shapes(c).values())


def state_floats(c, w=None):
    """Floats of generation state per layer: retention H*D*D = C*D; SWAT (window w) 2*w*C."""
    return c.C * (c.C // c.H) if w is None else 2 * w * c.C


def init_params(c, seed):
    """train_swat's rule (ts.init_params_splitmix): matrices N(0, 0.02^2), wo and w_down with
    std / sqrt(2L), gains 1, from splitmix64 seeded with seed ^ INIT_SALT in this order."""
    state, p = (seed ^ ts.INIT_SALT) % 2 ** 64, {}
    for name, shape in param_shapes(c).items():
        n = math.prod(shape)
        if name in NO_DECAY:
            p[name] = torch.ones(shape)
            continue
        std = 0.02 / math.sqrt(2.0 * c.L) if name in ("wo", "w_down") else 0.02
        bits, state = ts.splitmix64(state, 2 * n)
        u = (bits >> ts.np.uint64(11)).astype(ts.np.float64) * 2.0 ** -53
        normal = ts.np.sqrt(-2.0 * ts.np.log(1.0 - u[0::2])) * ts.np.cos(2.0 * math.pi * u[1::2])
        p[name] = torch.from_numpy((std * normal).astype(ts.np.float32)).view(shape)
    return p


def decays(H):
    """gamma_h = 1 - 2^(-5-h), h = 0..H-1 (RetNet)"""
    return [1.0 - 2.0 ** (-5 - h) for h in range(H)]


@functools.lru_cache(maxsize=64)
def rope_table(T, D, theta, start, dtype):
    inv = float(theta) ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
    a = torch.arange(start, start + T, dtype=torch.float64)[:, None] * inv[None, :]
    return a.cos().to(dtype), a.sin().to(dtype)


def rope_at(x, theta, start):
    """ts.rope for positions start .. start+T-1 (a stream's later blocks): x (B, H, T, D)"""
    cos, sin = rope_table(x.shape[2], x.shape[3], theta, start, x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


@functools.lru_cache(maxsize=16)
def decay_mask_cached(gam, T, dtype):
    return decay_mask(list(gam), T, dtype)


def decay_mask(gam, T, dtype):
    """(H, T, T): gamma_h^(m-n) for n <= m, 0 above the diagonal"""
    d = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    g = torch.tensor(gam, dtype=torch.float64).view(-1, 1, 1)
    m = torch.where(d >= 0, g ** d.clamp(min=0).double(), torch.zeros((), dtype=torch.float64))
    return m.to(dtype)


def retention_parallel(q, k, v, gam):
    """q, k, v: (B, H, T, D), k already scaled -> (B, H, T, D), the parallel form"""
    return ((q @ k.transpose(-1, -2)) * decay_mask_cached(tuple(gam), q.shape[2], q.dtype)) @ v


def retention_recurrent(q, k, v, gam, S=None):
    """The recurrent form, one position at a time -> (outputs, state S (B, H, D, D))"""
    B, H, T, D = q.shape
    g = torch.tensor(gam, dtype=q.dtype).view(1, H, 1, 1)
    S = torch.zeros(B, H, D, D, dtype=q.dtype) if S is None else S
    out = []
    for t in range(T):
        S = g * S + k[:, :, t, :, None] * v[:, :, t, None, :]     # k_t^T v_t
        out.append((q[:, :, t, None, :] @ S)[:, :, 0])
    return torch.stack(out, dim=2), S


def retention_chunked(q, k, v, gam, chunk, S=None):
    """The chunked form: chunks of `chunk` positions in parallel, the state between them.
    -> (outputs, state after the last position)"""
    B, H, T, D = q.shape
    g = torch.tensor(gam, dtype=torch.float64).view(1, H, 1, 1)
    S = torch.zeros(B, H, D, D, dtype=q.dtype) if S is None else S
    out = []
    for s0 in range(0, T, chunk):
        n = min(chunk, T - s0)
        qc, kc, vc = q[:, :, s0:s0 + n], k[:, :, s0:s0 + n], v[:, :, s0:s0 + n]
        i = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1)
        inner = ((qc @ kc.transpose(-1, -2)) * decay_mask_cached(tuple(gam), n, q.dtype)) @ vc
        out.append(inner + (qc * (g ** (i + 1)).to(q.dtype)) @ S)      # q_i gamma^(i+1) S
        S = (g ** n).to(q.dtype) * S + (kc * (g ** (n - 1 - i)).to(q.dtype)).transpose(-1, -2) @ vc
    return torch.cat(out, dim=2), S


def group_norm(o):
    """Each head's output divided by its root mean square (GroupNorm without gain or bias)"""
    return o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + GN_EPS)


def forward(p, c, idx, form="parallel", chunk=256, state=None, start=0):
    """idx (B, T) -> logits (B, T, V). form: parallel, chunked or recurrent. state: a list of
    the L retention states of the positions before (a stream; start is the first position),
    updated in place for chunked and recurrent forms."""
    B, T = idx.shape
    H, D = c.H, c.C // c.H
    gam = decays(H)
    heads = lambda t: t.view(B, T, H, D).transpose(1, 2)
    x = p["wte"][idx]
    for l in range(c.L):
        h = rmsnorm(x, p["attn_norm"][l])
        q, k, v = heads(h @ p["wq"][l].T), heads(h @ p["wk"][l].T), heads(h @ p["wv"][l].T)
        if c.rope:
            q, k = rope_at(q, c.theta, start), rope_at(k, c.theta, start)
        k = k / math.sqrt(D)
        S = state[l] if state is not None else None
        if form == "parallel":
            o = retention_parallel(q, k, v, gam)
        elif form == "chunked":
            o, S = retention_chunked(q, k, v, gam, chunk, S)
        else:
            o, S = retention_recurrent(q, k, v, gam, S)
        if state is not None: state[l] = S
        o = group_norm(o).transpose(1, 2).reshape(B, T, c.C)
        if c.gate: o = F.silu(h @ p["wg"][l].T) * o
        x = x + o @ p["wo"][l].T
        h = rmsnorm(x, p["mlp_norm"][l])
        x = x + (F.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)) @ p["w_down"][l].T
    return rmsnorm(x, p["final_norm"]) @ p["lm_head"].T


@torch.no_grad()
def evaluate(p, c, tokens, E, max_chunks=0, chunk=256, per_forward=0, dump=None):
    """train_swat's evaluation (spec section 11): K chunks of E, each from position 0 (chunked
    form). -> (mean loss over K*E predictions, K). dump: a list that gets the per-token losses."""
    K = ts.eval_chunks(tokens, E, max_chunks)
    if K < 1: die(f"eval shard has {len(tokens)} tokens, too few for one chunk of {E}")
    x, y = sequences(tokens[:K * E + 1], K, E, c.bos)
    nb = per_forward or max(1, (1 << 15) // E)
    total = 0.0
    for i in range(0, K, nb):
        logits = forward(p, c, x[i:i + nb], "chunked", min(chunk, E))
        losses = loss_fn(logits, y[i:i + nb], reduction="none")
        total += losses.sum().item()
        if dump is not None: dump.append(losses.float())
    return total / (K * E), K


@torch.no_grad()
def evaluate_stream(p, c, tokens, block=1024):
    """The whole shard as one sequence, in blocks of `block` with the state carried between
    them: memory O(C*D) per layer plus one block. -> mean loss over len-1 predictions."""
    n = len(tokens) - 1
    if n < 1: die("the stream needs at least 2 tokens")
    state, total = [None] * c.L, 0.0
    for s0 in range(0, n, block):
        s1 = min(n, s0 + block)
        logits = forward(p, c, tokens[s0:s1][None], "chunked", 256, state, s0)
        total += loss_fn(logits, tokens[s0 + 1:s1 + 1][None], reduction="sum").item()
    return total / n


# ----------------------------------------------------------------------------- training

def make_optimizer(p, lr, wd, betas=(0.9, 0.95), eps=1e-8):
    decay = [t for n, t in p.items() if n not in NO_DECAY]
    no_decay = [t for n, t in p.items() if n in NO_DECAY]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=False)


def config_lines(c, a, threads):
    P = num_params(c)
    return [f"model: retention V={c.V} L={c.L} H={c.H} C={c.C} F={c.F} "
            f"gate={'on' if c.gate else 'off'} rope={'on' if c.rope else 'off'} theta={c.theta} "
            f"bos={c.bos if c.bos >= 0 else 'none'} "
            f"decays={','.join(f'{g:.6f}' for g in decays(c.H))}",
            f"parameters: {P} ({P / 1e6:.2f} M)",
            f"state per layer: {state_floats(c)} floats (H*D*D = C*D)",
            f"train: batch={a.batch} seq={a.seq} steps={a.steps} lr={a.lr:g} "
            f"min_lr_ratio={a.min_lr_ratio:g} warmup={a.warmup} wd={a.wd:g} clip={a.clip:g} "
            f"seed={a.seed} shuffle={a.shuffle} threads={threads}"]


def save_model(path, c, p):
    torch.save({"config": asdict(c), "params": {n: t.detach().float() for n, t in p.items()}},
               path + ".tmp")
    os.replace(path + ".tmp", path)


def load_model(path):
    try:
        blob = torch.load(path)
        c = RetConfig(**blob["config"])
        p = blob["params"]
    except (OSError, KeyError, TypeError, RuntimeError) as e:
        die(f"cannot read retention model {path}: {e}")
    c.check()
    if set(p) != set(param_shapes(c)) or any(tuple(p[n].shape) != s
                                              for n, s in param_shapes(c).items()):
        die(f"{path}: the tensors do not match the config")
    return c, p


def train(a, c):
    """train_swat's loop: validation every --val-every steps on --val-chunks chunks of T, the
    step and its log line, the final validation on the whole val shard, then model.pt."""
    if a.warmup is None: a.warmup = min(40, a.steps // 5)
    if a.steps < 1 or a.batch < 1 or a.seq < 1 or a.warmup > a.steps:
        die("--steps, --batch and --seq must be >= 1 and --warmup <= --steps")
    train_tok = ts.map_shards(a.train, c.V)
    val = ts.read_shard(a.val, c.V) if a.val else None
    p = {n: t.clone().requires_grad_(True) for n, t in init_params(c, a.seed).items()}
    opt = make_optimizer(p, a.lr, a.wd, (a.beta1, a.beta2))
    loader = Loader(train_tok, a.batch, a.seq, a.train, c.bos, a.shuffle == "on", a.seed)
    os.makedirs(a.out, exist_ok=True)
    log = ts.RunLog(os.path.join(a.out, "log.txt"), False)
    for line in config_lines(c, a, torch.get_num_threads()):
        print(line)
        log.write(line)
    plist = list(p.values())
    loss_of = lambda x, y: loss_fn(forward(p, c, x), y)
    for step in range(a.steps):
        if val is not None and a.val_every and step % a.val_every == 0:
            vl, _ = evaluate(p, c, val, a.seq, a.val_chunks)
            print(f"step {step} val_loss {vl:.6f}")
            log.write(f"val {step} loss {vl:.6f}")
        t0 = time.perf_counter()
        lr_s = lr_at(step, a.lr, a.warmup, a.steps, a.min_lr_ratio)
        loss, norm, _ = train_step(loss_of, plist, opt, [loader.next()], lr_s, a.clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            die(f"step {step + 1}: the loss went non-finite (loss {loss}, norm {norm}); stopping")
        ms = 1e3 * (time.perf_counter() - t0)
        tps = a.batch * a.seq / ms * 1e3
        print(f"step {step + 1}/{a.steps} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.4f} "
              f"ms {ms:.1f} tok/s {tps:.0f}")
        log.write(f"step {step + 1} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.6f} ms {ms:.2f} "
                  f"tok_s {tps:.1f}")
    if val is not None:
        vl, K = evaluate(p, c, val, a.seq, 0)
        log.write(f"val {a.steps} loss {vl:.6f}")
        log.write(f"final_val_loss {vl:.6f}")
        print(f"final validation: {K} chunks of {a.seq} tokens: {vl:.6f}")
    save_model(os.path.join(a.out, "model.pt"), c, p)
    print(f"saved {os.path.join(a.out, 'model.pt')}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="RetNet-style retention baseline for SWAT "
                                 "(dev/retnet.py; doc/linear.md)")
    a = ap.add_argument
    a("--train"); a("--val"); a("--out", help="directory for log.txt and model.pt")
    a("--steps", type=int, default=600); a("--batch", type=int, default=16)
    a("--seq", type=int, default=256); a("--warmup", type=int, help="default min(40, steps/5)")
    a("--lr", type=float, default=2e-3); a("--min-lr-ratio", type=float, default=0.1)
    a("--wd", type=float, default=0.1); a("--clip", type=float, default=1.0)
    a("--beta1", type=float, default=0.9); a("--beta2", type=float, default=0.95)
    a("--seed", type=int, default=1337); a("--shuffle", choices=["on", "off"], default="on")
    a("--layers", type=int, default=4); a("--heads", type=int, default=8)
    a("--dim", type=int, default=256); a("--ffn", type=int, default=704)
    a("--vocab", type=int, default=256); a("--bos", type=int, default=-1)
    a("--gate", choices=["on", "off"], default="on")
    a("--rope", choices=["on", "off"], default="on")
    a("--val-every", type=int, default=50); a("--val-chunks", type=int, default=64)
    a("--threads", type=int, default=1)
    a("--init", help="model.pt to evaluate"); a("--eval", help="token shard to evaluate")
    a("--eval-len", type=int, default=256); a("--eval-chunks", type=int, default=0)
    a("--stream", action="store_true", help="evaluate the whole shard as one sequence")
    return ap.parse_args(argv)


def main():
    a = parse_args()
    if a.threads < 1: die("--threads must be >= 1")
    torch.set_num_threads(a.threads)
    if a.eval:
        if not a.init: die("--eval needs --init model.pt")
        c, p = load_model(a.init)
        toks = ts.read_shard(a.eval, c.V)
        t0 = time.time()
        if a.stream:
            loss = evaluate_stream(p, c, toks)
            print(f"eval: one stream of {len(toks) - 1} predictions, {time.time() - t0:.1f}s")
        else:
            if a.eval_len < 1: die("--eval-len must be >= 1")
            loss, K = evaluate(p, c, toks, a.eval_len, a.eval_chunks)
            print(f"eval: {K} chunks of {a.eval_len} tokens, {time.time() - t0:.1f}s")
        print(f"eval_loss {loss:.8f}")
        return
    if not a.train or not a.out: die("training needs --train FILE and --out DIR (see --help)")
    c = RetConfig(V=a.vocab, L=a.layers, H=a.heads, C=a.dim, F=a.ffn, gate=a.gate == "on",
                  rope=a.rope == "on", bos=a.bos)
    c.check()
    train(a, c)


if __name__ == "__main__":
    main()
