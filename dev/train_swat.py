"""
Reference PyTorch implementation of SWAT (Sliding Window Attention Training, Fu et al. 2025)
for the C trainer train_swat.c. It follows /work/shared/SWAT_SPEC.md exactly: same model,
checkpoint format, token shards, batch order, AdamW, LR schedule, clipping and evaluation.
It also writes the debug states that test_swat.c checks the C code against (--write-states).

Run with a Python that has torch (Debian: /usr/bin/python3 with python3-torch), e.g.
  /usr/bin/python3 dev/train_swat.py --write-states dev/states
  /usr/bin/python3 dev/train_swat.py --train train.bin --steps 100 --save model.ckpt
  /usr/bin/python3 dev/train_swat.py --init model.ckpt --eval val.bin --eval-len 1024 --eval-window 128
"""
import argparse, math, os, sys, time
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

CKPT_MAGIC, CKPT_VERSION = 0x54415753, 1     # bytes "SWAT"
STATE_MAGIC, STATE_VERSION = 0x44574153, 1   # debug state; on disk the bytes "SAWD" (see README)
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
HEADER_BYTES = 256 * 4
# checkpoint parameter order; the norm gains get no weight decay
PARAM_NAMES = ["wte", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm",
               "w_gate", "w_up", "w_down", "final_norm", "lm_head"]
NO_DECAY = {"attn_norm", "mlp_norm", "final_norm"}


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


@dataclass
class Config:
    V: int = 256; L: int = 4; H: int = 4; C: int = 128; F: int = 352
    w: int = 64                  # attention window (keys m-w+1..m)
    softmax: bool = False        # False = SWAT sigmoid attention
    neg: int = 2; pos: int = 2   # balanced ALiBi NEG:POS
    rope: bool = True
    theta: int = 10000

    def check(self):
        if min(self.V, self.L, self.H, self.C, self.F, self.w) < 1: die("model sizes and window must be >= 1")
        if self.C % self.H: die(f"dim {self.C} is not a multiple of heads {self.H}")
        if self.rope and (self.C // self.H) % 2: die("RoPE needs an even head width")
        if self.neg < 0 or self.pos < 0 or self.neg + self.pos > self.H: die("ALiBi NEG:POS must satisfy NEG+POS <= heads")
        if self.theta < 1: die("rope theta must be >= 1")


def param_shapes(c):
    V, L, C, Fh = c.V, c.L, c.C, c.F
    return {"wte": (V, C), "attn_norm": (L, C), "wq": (L, C, C), "wk": (L, C, C), "wv": (L, C, C),
            "wo": (L, C, C), "mlp_norm": (L, C), "w_gate": (L, Fh, C), "w_up": (L, Fh, C),
            "w_down": (L, C, Fh), "final_norm": (C,), "lm_head": (V, C)}


def num_params(c):
    return sum(math.prod(s) for s in param_shapes(c).values())


def init_params(c, gen, std=0.02, gain_std=0.0):
    """float32 init drawn in checkpoint order from `gen`: matrices N(0, std^2), gains 1 + N(0, gain_std^2)."""
    p = {}
    for name, shape in param_shapes(c).items():
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        p[name] = 1.0 + gain_std * r if name in NO_DECAY else std * r
    return p


# ----------------------------------------------------------------------------- model

def alibi_slopes(c):
    # heads 0..NEG-1: -2^-(h+1) (favour recent keys); NEG..NEG+POS-1: +2^-(h-NEG+1) (favour old); rest 0
    s = [0.0] * c.H
    for h in range(c.neg): s[h] = -2.0 ** -(h + 1)
    for h in range(c.neg, c.neg + c.pos): s[h] = 2.0 ** -(h - c.neg + 1)
    return s


def rmsnorm(x, g):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g


def rope(x, theta):
    # x: (B, H, T, D); rotate interleaved pairs (x[2i], x[2i+1]) at position p by a = p * theta^(-2i/D)
    T, D = x.shape[2], x.shape[3]
    inv = float(theta) ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
    a = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]        # (T, D/2), float64 angles
    cos, sin = a.cos().to(x.dtype), a.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def swat_attention(q, k, v, w, slopes, softmax, block=256):
    """q, k, v: (B, H, T, D). Query m sees keys n with m-w < n <= m; s = q.k/sqrt(D) + slope_h*(m-n).
    Sigmoid mode: a = sigmoid(s), unnormalised. Softmax mode: softmax over the window.
    Plain masked attention, done per block of queries: queries [s0, s1) only need keys
    [s0-w+1, s1), so the cost is O(T*(block+w)) instead of O(T^2) (long evaluations)."""
    B, H, T, D = q.shape
    slope = torch.tensor(slopes, dtype=q.dtype).view(1, H, 1, 1)
    out = []
    for s0 in range(0, T, block):
        s1, k0 = min(T, s0 + block), max(0, s0 - w + 1)
        dist = torch.arange(s0, s1)[:, None] - torch.arange(k0, s1)[None, :]     # m - n
        outside = (dist < 0) | (dist >= w)
        s = q[:, :, s0:s1] @ k[:, :, k0:s1].transpose(-1, -2) / math.sqrt(D) + slope * dist.to(q.dtype)
        if softmax:
            a = s.masked_fill(outside, float("-inf")).softmax(-1)
        else:
            a = torch.sigmoid(s).masked_fill(outside, 0.0)
        out.append(a @ v[:, :, k0:s1])
    return torch.cat(out, dim=2)


def forward(p, c, idx, window=None, block=256):
    """idx: (B, T) int64 -> logits (B, T, V). `window` overrides c.w (evaluation)."""
    B, T = idx.shape
    H, D = c.H, c.C // c.H
    w = c.w if window is None else window
    slopes = alibi_slopes(c)
    heads = lambda t: t.view(B, T, H, D).transpose(1, 2)               # (B, H, T, D)
    x = p["wte"][idx]
    for l in range(c.L):
        h = rmsnorm(x, p["attn_norm"][l])
        q, k, v = heads(h @ p["wq"][l].T), heads(h @ p["wk"][l].T), heads(h @ p["wv"][l].T)
        if c.rope:
            q, k = rope(q, c.theta), rope(k, c.theta)
        o = swat_attention(q, k, v, w, slopes, c.softmax, block).transpose(1, 2).reshape(B, T, c.C)
        x = x + o @ p["wo"][l].T
        h = rmsnorm(x, p["mlp_norm"][l])
        x = x + (F.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)) @ p["w_down"][l].T
    return rmsnorm(x, p["final_norm"]) @ p["lm_head"].T


def loss_fn(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


# ----------------------------------------------------------------------------- files

def write_checkpoint(path, c, p, T, steps):
    hdr = np.zeros(256, dtype="<i4")
    hdr[:16] = [CKPT_MAGIC, CKPT_VERSION, c.V, c.L, c.H, c.C, c.F, c.w, int(c.softmax),
                c.neg, c.pos, int(c.rope), c.theta, T, steps, 0]   # [15] = 0: parameters only
    with open(path, "wb") as f:
        f.write(hdr.tobytes())
        for name in PARAM_NAMES:
            f.write(p[name].detach().to(torch.float32).numpy().astype("<f4").tobytes())


def read_with_header(path, kind, what, magic, version):
    """-> (file bytes, int32 header of 256) after checking the magic and the version."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"cannot read {kind} {path}: {e.strerror}")
    if len(data) < HEADER_BYTES: die(f"{path}: too small for a {kind} header")
    hdr = np.frombuffer(data[:HEADER_BYTES], dtype="<i4")
    if hdr[0] != magic: die(f"{path}: bad magic (not {what})")
    if hdr[1] != version: die(f"{path}: unsupported {kind} version {hdr[1]}")
    return data, hdr


def read_checkpoint(path):
    """-> (Config, dict of float32 params, header). An optimizer/trainer tail (header[15]=1) is skipped."""
    data, hdr = read_with_header(path, "checkpoint", "a SWAT checkpoint", CKPT_MAGIC, CKPT_VERSION)
    if hdr[8] not in (0, 1) or hdr[11] not in (0, 1) or hdr[15] not in (0, 1): die(f"{path}: corrupt header")
    c = Config(V=int(hdr[2]), L=int(hdr[3]), H=int(hdr[4]), C=int(hdr[5]), F=int(hdr[6]), w=int(hdr[7]),
               softmax=bool(hdr[8]), neg=int(hdr[9]), pos=int(hdr[10]), rope=bool(hdr[11]), theta=int(hdr[12]))
    c.check()
    P = num_params(c)
    need = HEADER_BYTES + 4 * P
    if len(data) < need or (hdr[15] == 0 and len(data) != need):
        die(f"{path}: file size {len(data)} does not match the header (parameters need {need} bytes)")
    flat = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=P, offset=HEADER_BYTES).copy())
    p, off = {}, 0
    for name, shape in param_shapes(c).items():
        n = math.prod(shape)
        p[name] = flat[off:off + n].view(shape).clone()
        off += n
    return c, p, hdr


def read_shard(path, V):
    data, hdr = read_with_header(path, "shard", "a token shard", SHARD_MAGIC, SHARD_VERSION)
    n = int(hdr[2])
    if n < 0 or len(data) != HEADER_BYTES + 2 * n: die(f"{path}: header says {n} tokens, file size is {len(data)}")
    tok = np.frombuffer(data, dtype="<u2", count=n, offset=HEADER_BYTES)
    if n and int(tok.max()) >= V: die(f"{path}: token {int(tok.max())} >= vocab {V}")
    return torch.from_numpy(tok.astype(np.int64))


def write_shard(path, tokens):
    hdr = np.zeros(256, dtype="<i4"); hdr[:3] = [SHARD_MAGIC, SHARD_VERSION, len(tokens)]
    with open(path, "wb") as f:
        f.write(hdr.tobytes()); f.write(np.asarray(tokens, dtype="<u2").tobytes())


class Loader:
    """Spec section 5: contiguous batches from a cursor at 0; advance by B*T; wrap to 0 when
    fewer than B*T+1 tokens remain after the cursor."""
    def __init__(self, tokens, B, T, what):
        if len(tokens) < B * T + 1: die(f"{what}: {len(tokens)} tokens, need at least B*T+1 = {B * T + 1}")
        self.tokens, self.B, self.T, self.pos = tokens, B, T, 0

    def next(self):
        B, T = self.B, self.T
        buf = self.tokens[self.pos:self.pos + B * T + 1]
        self.pos += B * T
        if self.pos + B * T + 1 > len(self.tokens): self.pos = 0
        return buf[:-1].view(B, T), buf[1:].view(B, T)


# ----------------------------------------------------------------------------- training

def lr_at(s, lr, warmup, steps, min_lr_ratio):
    if s < warmup:
        return lr * (s + 1) / warmup
    progress = (s - warmup) / max(1, steps - warmup)
    min_lr = lr * min_lr_ratio
    # = min_lr + 0.5*(lr - min_lr)*(1 + cos(pi*progress)), written so that progress 0 gives exactly lr
    return lr - 0.5 * (lr - min_lr) * (1.0 - math.cos(math.pi * progress))


def make_optimizer(p, lr, wd, betas=(0.9, 0.95), eps=1e-8):
    decay = [p[n] for n in PARAM_NAMES if n not in NO_DECAY]       # every tensor with >= 2 dims
    no_decay = [p[n] for n in PARAM_NAMES if n in NO_DECAY]        # RMSNorm gains
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=False)


def train_step(p, c, opt, x, y, lr_s, clip, block=256):
    """One step: loss and grads at the current params, clip, AdamW at lr_s.
    Returns (loss before the update, grad norm before clipping, clipping active)."""
    for g in opt.param_groups: g["lr"] = lr_s
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(forward(p, c, x, block=block), y)
    loss.backward()
    plist = [p[n] for n in PARAM_NAMES]
    if clip > 0:   # grads *= clip/(norm+1e-6) if that is < 1
        norm = torch.nn.utils.clip_grad_norm_(plist, clip).item()
    else:
        norm = torch.norm(torch.stack([t.grad.norm() for t in plist])).item()
    opt.step()
    return loss.item(), norm, clip > 0 and clip / (norm + 1e-6) < 1.0


def leaf(p, dtype):
    return {n: t.detach().to(dtype).clone().requires_grad_(True) for n, t in p.items()}


@torch.no_grad()
def evaluate(p, c, tokens, E, W, max_chunks=0):
    """Spec section 5: K = min(max_chunks, floor((N-1)/E)) chunks of E, each on its own
    (positions 0..E-1) with window W; mean loss over K*E predictions."""
    K = (len(tokens) - 1) // E
    if max_chunks > 0: K = min(K, max_chunks)
    if K < 1: die(f"eval shard has {len(tokens)} tokens, too few for one chunk of {E}")
    x, y = tokens[:K * E].view(K, E), tokens[1:K * E + 1].view(K, E)
    nb = max(1, (1 << 16) // E)          # chunks per forward, to bound memory
    total = 0.0
    for i in range(0, K, nb):
        total += loss_fn(forward(p, c, x[i:i + nb], window=W), y[i:i + nb], reduction="sum").item()
    return total / (K * E)


# ----------------------------------------------------------------------------- debug states

# name, attention softmax?, ALiBi NEG, POS, RoPE, window, clip (None: half the initial grad norm)
STATE_CONFIGS = [
    ("swat",                False, 2, 2, True,  7,  None),
    ("vanilla",             True,  0, 0, True,  32, 0.0),
    ("sig_onesided_norope", False, 4, 0, False, 7,  1.0),
    ("softmax_window",      True,  2, 2, True,  5,  1.0),
    ("sig_noalibi_rope",    False, 0, 0, True,  9,  1.0),
    ("swat_w1",             False, 1, 3, True,  1,  1.0),
]
S_B, S_T, S_STEPS, S_WARMUP = 2, 24, 10, 3
S_LR, S_BETAS, S_EPS, S_WD, S_MINLR = 1e-2, (0.9, 0.95), 1e-8, 0.1, 0.1


def flat_f32(ts):
    return np.concatenate([t.detach().to(torch.float32).reshape(-1).numpy() for t in ts]).astype("<f4")


def write_states(outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, (name, sm, neg, pos, rp, w, clip) in enumerate(STATE_CONFIGS):
        t0 = time.time()
        c = Config(V=40, L=2, H=4, C=32, F=56, w=w, softmax=sm, neg=neg, pos=pos, rope=rp, theta=10000)
        gen = torch.Generator().manual_seed(1000 + i)
        p32 = init_params(c, gen, std=0.2, gain_std=0.1)   # large init so that every term matters
        tok = torch.randint(0, c.V, (S_B * S_T + 1,), generator=gen)
        x, y = tok[:-1].view(S_B, S_T), tok[1:].view(S_B, S_T)
        write_checkpoint(os.path.join(outdir, name + ".ckpt"), c, p32, S_T, 0)
        # initial logits, loss and gradients in float64 from the float32 weights
        p = leaf(p32, torch.float64)
        logits = forward(p, c, x)
        loss0 = loss_fn(logits, y)
        loss0.backward()
        grads = [p[n].grad for n in PARAM_NAMES]
        gnorm0 = torch.norm(torch.stack([g.norm() for g in grads])).item()
        if clip is None: clip = float(f"{0.5 * gnorm0:.4g}")
        # NSTEPS AdamW steps on the same batch
        p = leaf(p32, torch.float64)
        opt = make_optimizer(p, S_LR, S_WD, S_BETAS, S_EPS)
        losses, clipped = [], False
        for s in range(S_STEPS):
            l, _, active = train_step(p, c, opt, x, y, lr_at(s, S_LR, S_WARMUP, S_STEPS, S_MINLR), clip)
            losses.append(l); clipped |= active
        P = num_params(c)
        hdr = np.zeros(256, dtype="<i4")
        hdr[:10] = [STATE_MAGIC, STATE_VERSION, S_B, S_T, c.V, P, S_STEPS, S_WARMUP, w, int(clipped)]
        hyper = np.zeros(16, dtype="<f8")
        hyper[:7] = [S_LR, S_BETAS[0], S_BETAS[1], S_EPS, S_WD, clip, S_MINLR]
        with open(os.path.join(outdir, name + ".state"), "wb") as f:
            for a in (hdr, hyper, x.numpy().astype("<i4"), y.numpy().astype("<i4"),
                      logits.detach().numpy().astype("<f4"), np.array([loss0.item()], dtype="<f8"),
                      flat_f32(grads), np.array(losses, dtype="<f8"), flat_f32([p[n] for n in PARAM_NAMES])):
                f.write(a.tobytes())
        print(f"wrote {name}: P {P} loss {loss0.item():.6f} -> {losses[-1]:.6f} grad_norm {gnorm0:.4f} "
              f"clip {clip:g} clipped {int(clipped)} ({time.time() - t0:.2f}s)")


# ----------------------------------------------------------------------------- self test

def self_test():
    """Checks: autograd vs finite differences, blocked == unblocked attention, checkpoint round
    trip, LR schedule, loader wrap."""
    ok = True
    def check(what, good):
        nonlocal ok
        ok &= bool(good); print(f"{'ok  ' if good else 'FAIL'} {what}")
    for sm, neg, pos, rp, w in [(False, 2, 2, True, 5), (True, 1, 2, False, 3)]:
        c = Config(V=11, L=2, H=4, C=16, F=24, w=w, softmax=sm, neg=neg, pos=pos, rope=rp)
        gen = torch.Generator().manual_seed(7)
        p = leaf(init_params(c, gen, 0.3, 0.1), torch.float64)
        x = torch.randint(0, c.V, (2, 13), generator=gen); y = torch.randint(0, c.V, (2, 13), generator=gen)
        loss_fn(forward(p, c, x), y).backward()
        worst = 0.0
        for name in PARAM_NAMES:
            for j in torch.randint(0, p[name].numel(), (3,), generator=gen).tolist():
                with torch.no_grad():
                    flat, h = p[name].view(-1), 1e-5
                    old = flat[j].item()
                    flat[j] = old + h; lp = loss_fn(forward(p, c, x), y).item()
                    flat[j] = old - h; lm = loss_fn(forward(p, c, x), y).item()
                    flat[j] = old
                fd, ag = (lp - lm) / (2 * h), p[name].grad.view(-1)[j].item()
                worst = max(worst, abs(fd - ag) / max(1e-3, abs(fd)))
        check(f"grad vs finite differences ({'softmax' if sm else 'sigmoid'}), worst err {worst:.1e}", worst < 1e-6)
        with torch.no_grad():
            a, b = forward(p, c, x, block=256), forward(p, c, x, block=4)
        check("blocked attention == full attention", torch.allclose(a, b, rtol=0, atol=1e-12))
    path = "/tmp/swat_selftest.ckpt"
    write_checkpoint(path, c, p, 13, 5)
    c2, p2, hdr = read_checkpoint(path)
    check("checkpoint round trip", c2 == c and hdr[13] == 13 and hdr[14] == 5 and
          all(torch.equal(p2[n], p[n].detach().float()) for n in PARAM_NAMES))
    os.remove(path)
    check("lr: warmup 0, 1 step -> lr", lr_at(0, 3e-4, 0, 1, 0.1) == 3e-4)
    check("lr: warmup ramp, then cosine", lr_at(0, 1.0, 4, 10, 0.1) == 0.25 and lr_at(3, 1.0, 4, 10, 0.1) == 1.0
          and lr_at(4, 1.0, 4, 10, 0.1) == 1.0 and abs(lr_at(7, 1.0, 4, 10, 0.1) - 0.55) < 1e-15)
    ld = Loader(torch.arange(25), 2, 4, "test")   # 25 tokens: batches at 0, 8, 16 (9 left), then wrap
    check("loader cursor and wrap", [ld.next()[0][0, 0].item() for _ in range(5)] == [0, 8, 16, 0, 8])
    print("self test passed" if ok else "self test FAILED")
    return ok


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="PyTorch reference for train_swat.c (see dev/README.md)")
    a = ap.add_argument
    a("--train"); a("--val"); a("--init"); a("--save")
    a("--batch", type=int, default=8); a("--seq", type=int, default=256)
    a("--window", type=int); a("--layers", type=int); a("--heads", type=int); a("--dim", type=int)
    a("--ffn", type=int); a("--vocab", type=int); a("--attn", choices=["sigmoid", "softmax"])
    a("--alibi"); a("--rope", choices=["on", "off"]); a("--rope-theta", type=int)
    a("--lr", type=float, default=1e-3); a("--min-lr-ratio", type=float, default=0.1)
    a("--steps", type=int, default=100); a("--warmup", type=int, default=10)
    a("--wd", type=float, default=0.1); a("--clip", type=float, default=1.0)
    a("--seed", type=int, default=1337); a("--dtype", choices=["float32", "float64"], default="float32")
    a("--threads", type=int, default=os.cpu_count())
    a("--val-every", type=int, default=0, help="val loss every N steps (0: only at the end)")
    a("--val-batches", type=int, default=4, help="val loss = mean over the first N B x T batches of --val")
    a("--eval"); a("--eval-len", type=int, default=1024); a("--eval-window", type=int)
    a("--eval-chunks", type=int, default=0, help="max chunks, 0 = all")
    a("--bench-steps", type=int, default=0)
    a("--attn-block", type=int, default=256,
      help="queries per attention block in training (0: one block = the usual masked T x T attention)")
    a("--write-states"); a("--self-test", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))

    if args.self_test: sys.exit(0 if self_test() else 1)
    if args.write_states: return write_states(args.write_states)

    # model config: from the checkpoint if --init (shape flags must then agree), else from flags
    if args.init:
        c, p32, ihdr = read_checkpoint(args.init)
        for flag, field in [("vocab", "V"), ("layers", "L"), ("heads", "H"), ("dim", "C"), ("ffn", "F")]:
            if getattr(args, flag) is not None and getattr(args, flag) != getattr(c, field):
                die(f"--{flag} {getattr(args, flag)} does not match the checkpoint ({getattr(c, field)})")
    else:
        c = Config()
        for flag, field in [("vocab", "V"), ("layers", "L"), ("heads", "H"), ("dim", "C"), ("ffn", "F")]:
            if getattr(args, flag) is not None: setattr(c, field, getattr(args, flag))
        c.neg = c.pos = c.H // 2
    # non-shape settings may be changed by flags also with --init
    if args.window is not None: c.w = args.window
    if args.attn: c.softmax = args.attn == "softmax"
    if args.rope: c.rope = args.rope == "on"
    if args.rope_theta is not None: c.theta = args.rope_theta
    if args.alibi:
        try: c.neg, c.pos = (int(v) for v in args.alibi.split(":"))
        except ValueError: die(f"--alibi wants NEG:POS, got {args.alibi}")
    c.check()
    if not args.init:
        p32 = init_params(c, torch.Generator().manual_seed(args.seed))

    if args.eval:   # evaluation in float64
        toks = read_shard(args.eval, c.V)
        W = args.eval_window if args.eval_window is not None else c.w
        if args.eval_len < 1 or W < 1: die("--eval-len and --eval-window must be >= 1")
        print(f"eval_loss {evaluate(leaf(p32, torch.float64), c, toks, args.eval_len, W, args.eval_chunks):.8f}")
        return

    B, T = args.batch, args.seq
    if B < 1 or T < 1: die("--batch and --seq must be >= 1")
    if args.steps < 0 or args.warmup < 0 or args.bench_steps < 0: die("--steps, --warmup, --bench-steps must be >= 0")
    bench = args.bench_steps > 0
    if args.attn_block < 0: die("--attn-block must be >= 0")
    block = args.attn_block or T
    dtype = torch.float32 if bench else getattr(torch, args.dtype)
    if args.train:
        train = read_shard(args.train, c.V)
    elif bench:
        train = torch.randint(0, c.V, (B * T * 4 + 1,), generator=torch.Generator().manual_seed(args.seed))
    else:
        die("nothing to do: give --train, --eval, --bench-steps, --write-states or --self-test")
    loader = Loader(train, B, T, "train shard")
    val = read_shard(args.val, c.V) if args.val else None
    p = leaf(p32, dtype)
    opt = make_optimizer(p, args.lr, args.wd)
    print(f"model V {c.V} L {c.L} H {c.H} C {c.C} F {c.F} w {c.w} attn {'softmax' if c.softmax else 'sigmoid'} "
          f"alibi {c.neg}:{c.pos} rope {'on' if c.rope else 'off'} theta {c.theta} params {num_params(c)} dtype {dtype}")

    def val_loss():   # the first --val-batches batches of the val shard, training window
        vl = Loader(val, B, T, "val shard")
        with torch.no_grad():
            return sum(loss_fn(forward(p, c, xb), yb).item()
                       for xb, yb in (vl.next() for _ in range(args.val_batches))) / args.val_batches

    if bench:
        steps = args.bench_steps
        sched = lambda s: lr_at(s, args.lr, args.warmup, steps + 1, args.min_lr_ratio)
        train_step(p, c, opt, *loader.next(), sched(0), args.clip, block)  # warm-up step, not timed
        t0 = time.perf_counter()
        for s in range(steps):
            train_step(p, c, opt, *loader.next(), sched(s + 1), args.clip, block)
        dt = time.perf_counter() - t0
        print(f"bench tokens_per_s {steps * B * T / dt:.1f} ms_per_step {1000 * dt / steps:.3f}")
        return

    for s in range(args.steps):
        lr_s = lr_at(s, args.lr, args.warmup, args.steps, args.min_lr_ratio)
        loss, norm, _ = train_step(p, c, opt, *loader.next(), lr_s, args.clip, block)
        print(f"step {s + 1}/{args.steps} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.4f}")
        if val is not None and args.val_every > 0 and (s + 1) % args.val_every == 0 and s + 1 < args.steps:
            print(f"val_loss {val_loss():.6f}")
    if val is not None: print(f"val_loss {val_loss():.6f}")
    if args.save:
        write_checkpoint(args.save, c, p, T, args.steps)
        print(f"saved {args.save}")


if __name__ == "__main__":
    main()
